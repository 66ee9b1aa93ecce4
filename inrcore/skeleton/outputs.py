"""A skeleton's files, in the input's own coordinates, numbers before pictures.

skeleton.ply (points with a `radius` property, edges and faces), skeleton.ma (`v x y z r`,
`e i j`, `f i j k` lines), balls.ply (the union of the selected balls as one mesh),
metrics.json, then skeleton.png (the skeleton inside the translucent surface, normalised view).
Each file is written atomically: a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import trimesh

from inrcore.files import write_atomic, write_json_atomic
from inrcore.geometry.images import write_png
from inrcore.geometry.meshes import Normalisation
from inrcore.geometry.settings import ViewConfig
from inrcore.sdf.fitshape import ShapeReference
from inrcore.skeleton.pictures import render_skeleton
from inrcore.skeleton.skeletonfiles import balls_mesh, write_ma, write_skeleton_ply
from inrcore.skeleton.skeletonise import Skeleton


SKELETON_FILES = {"skeleton": "skeleton.ply", "ma": "skeleton.ma", "balls": "balls.ply",
                  "metrics": "metrics.json", "image": "skeleton.png"}


def skeleton_picture(skeleton: Skeleton, reference: Optional[ShapeReference],
                     view: ViewConfig = ViewConfig()) -> np.ndarray:
    """The skeleton (normalised frame) inside its translucent input surface (a mesh, or a cloud's points)."""
    mesh = reference.mesh if reference is not None and reference.kind == "mesh" else None
    points = reference.points if reference is not None and reference.kind == "points" else None
    return render_skeleton(mesh, points, skeleton.points, skeleton.radii, skeleton.edges, skeleton.faces, view)


def balls_in_input_frame(skeleton: Skeleton, normalisation: Normalisation, resolution: int = 128) -> trimesh.Trimesh:
    """The union of a (normalised) skeleton's balls as a mesh, moved to the input's coordinates."""
    union = balls_mesh(skeleton.points, skeleton.radii, resolution=resolution)
    vertices = normalisation.invert(np.asarray(union.vertices, np.float64)) if len(union.vertices) else \
        np.zeros((0, 3))
    return trimesh.Trimesh(vertices=vertices, faces=np.asarray(union.faces), process=False, validate=False)


def write_skeleton_files(out_dir, skeleton: Skeleton, normalisation: Normalisation, metrics: dict,
                         reference: Optional[ShapeReference] = None, picture: bool = True,
                         view: ViewConfig = ViewConfig()) -> dict[str, str]:
    """Write a skeleton computed in the normalised frame into `out_dir` (see the module docstring).

    Returns:
        {"skeleton", "ma", "balls", "metrics", "image"}: the paths written ("image" only with `picture`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {key: out / name for key, name in SKELETON_FILES.items()}
    original = skeleton.in_input_frame(normalisation)
    write_skeleton_ply(paths["skeleton"], original.points, original.radii, original.edges, original.faces)
    write_ma(paths["ma"], original.points, original.radii, original.edges, original.faces)
    union = balls_in_input_frame(skeleton, normalisation)
    write_atomic(paths["balls"], lambda tmp: union.export(tmp, file_type="ply"))
    write_json_atomic(paths["metrics"], metrics, sort_keys=False)
    if not picture:
        del paths["image"]
        return {key: str(path) for key, path in paths.items()}
    write_png(skeleton_picture(skeleton, reference, view), paths["image"])
    return {key: str(path) for key, path in paths.items()}
