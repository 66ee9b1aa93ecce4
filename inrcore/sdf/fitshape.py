"""One shape from file to fitted field, mesh and metrics, in this process (no orchestration).

A shape is a triangle mesh (`meshes.load_mesh`) or an oriented point cloud
(`pointclouds.load_point_cloud`; normals a cloud lacks are estimated). `.ply` is both: a
.ply with faces is a mesh, one without faces a point cloud. `load_shape_input` normalises
the shape into [-extent, extent]^3 and draws its training samples; `fit_shape` fits a field
to them, extracts its zero level set on the grid and measures it against the input;
`save_shape_fit` writes the results of `inr fit`. The pipeline's tasks use the same
loading (`load_shape_input`, `load_reference`) and measuring (`measure_reconstruction`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import trimesh

from inrcore.device import resolve_device
from inrcore.errors import InrflowError, ShapeError
from inrcore.fields.evaluation import evaluate_grid_block
from inrcore.fields.weights import save_field
from inrcore.files import make_readable, write_atomic
from inrcore.geometry.grids import grid_spacing
from inrcore.geometry.images import write_png
from inrcore.geometry.marching import marching_cubes_blocks
from inrcore.geometry.meshes import (
    SUPPORTED_SUFFIXES,
    Normalisation,
    load_mesh,
    normalisation_for,
    normalisation_for_points,
)
from inrcore.geometry.metrics import POINT_METRIC_NAMES, compare_mesh_to_points, compare_meshes
from inrcore.geometry.plyfiles import read_ply_header
from inrcore.geometry.pointclouds import POINT_SUFFIXES, estimate_normals, load_point_cloud
from inrcore.geometry.render import render_mesh, render_point_cloud
from inrcore.geometry.sampling import ShapeSamples, known_distances, sample_point_cloud, sample_sdf
from inrcore.geometry.settings import GridConfig, MetricsConfig, SamplingConfig, ViewConfig
from inrcore.sdf.settings import PipelineConfig
from inrcore.sdf.training import FitResult, fit_sdf
from inrcore.settings import config_to_dict


SHAPE_SUFFIXES = tuple(sorted(set(SUPPORTED_SUFFIXES) | set(POINT_SUFFIXES)))
METRICS_FILE_KEYS = ("chamfer_l1", "fscore", "normal_consistency", "hausdorff", "seconds", "steps", "method")


class EmptySurfaceError(InrflowError):
    """The fitted field has no zero level set inside the grid (it never changes sign)."""


@dataclass(frozen=True, eq=False)
class ShapeReference:
    """The input shape as the reconstruction is measured against it.

    kind "mesh": `mesh` is set. kind "points": `points` [P, 3] float64 and unit `normals`
    [P, 3] are set; `normals_estimated` says the file had none.
    """

    kind: str
    mesh: Optional[trimesh.Trimesh] = None
    points: Optional[np.ndarray] = None
    normals: Optional[np.ndarray] = None
    normals_estimated: bool = False

    def normalised(self, normalisation: Normalisation) -> "ShapeReference":
        """The same shape moved by `normalisation` (normals are unchanged by a similarity)."""
        if self.kind == "mesh":
            moved = trimesh.Trimesh(vertices=normalisation.apply(np.asarray(self.mesh.vertices, dtype=np.float64)),
                                    faces=np.array(self.mesh.faces, dtype=np.int64), process=False, validate=False)
            return replace(self, mesh=moved)
        return replace(self, points=normalisation.apply(self.points))

    def size(self) -> dict:
        """Counts for records: {"vertices", "faces"} of a mesh or {"points"} of a cloud."""
        if self.kind == "mesh":
            return {"vertices": int(len(self.mesh.vertices)), "faces": int(len(self.mesh.faces))}
        return {"points": int(len(self.points)), "normals_estimated": self.normals_estimated}


@dataclass(frozen=True, eq=False)
class ShapeInput:
    """A shape ready to fit: its training samples and its reference, both normalised.

    Attributes:
        path: the input file.
        normalisation: original -> normalised coordinates.
        samples: the training samples (`sampling.sample_sdf` or `sampling.sample_point_cloud`).
        reference: the normalised input shape, for metrics and pictures.
    """

    path: str
    normalisation: Normalisation
    samples: ShapeSamples
    reference: ShapeReference

    @property
    def kind(self) -> str:
        """"mesh" or "points"."""
        return self.reference.kind


@dataclass(eq=False)
class ShapeFit:
    """The result of `fit_shape`.

    Attributes:
        fit: the fitted field and its loss history.
        mesh: its zero level set in normalised coordinates.
        metrics: `compare_meshes` / `compare_mesh_to_points` of `mesh` against the input.
        normalisation: original -> normalised coordinates of the input.
        input_kind: "mesh" or "points".
        seconds: wall time per phase {"prepare", "train", "extract", "metrics"}.
        reference: the normalised input shape.
        path: the input file.
    """

    fit: FitResult
    mesh: trimesh.Trimesh
    metrics: dict
    normalisation: Normalisation
    input_kind: str
    seconds: dict = field(default_factory=dict)
    reference: Optional[ShapeReference] = None
    path: str = ""


def input_kind_of(path) -> str:
    """"mesh" or "points" for a shape file, by suffix; a .ply by whether its header declares faces.

    Raises ShapeError for a missing file or a suffix that is neither a mesh nor a cloud format.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in SHAPE_SUFFIXES:
        shown = f"'{suffix}'" if suffix else "(no extension)"
        raise ShapeError(path, f"unsupported format {shown}; expected a mesh ({', '.join(SUPPORTED_SUFFIXES)}) "
                               f"or a point cloud ({', '.join(POINT_SUFFIXES)})")
    if suffix == ".ply" and os.path.isfile(path):
        return "mesh" if ply_declares_faces(path) else "points"
    return "points" if suffix in POINT_SUFFIXES and suffix not in SUPPORTED_SUFFIXES else "mesh"


def ply_declares_faces(path) -> bool:
    """Whether a PLY file's header declares faces: a `face` or `tristrips` element with rows, or
    rows of vertex indices of another kind (which `load_mesh` then refuses by name).

    A file whose header cannot be read counts as having faces, so that `load_mesh` reports
    what is wrong with it.
    """
    try:
        return read_ply_header(path).declares_faces()
    except ShapeError:
        return True


def read_shape(path) -> ShapeReference:
    """A shape file in its own coordinates: a mesh, or a cloud with (possibly estimated) normals.

    Raises ShapeError naming the file for anything that makes it unusable. A cloud without
    normals gets `estimate_normals` (each separate piece oriented outward).
    """
    if input_kind_of(path) == "mesh":
        return ShapeReference(kind="mesh", mesh=load_mesh(path))
    points, normals = load_point_cloud(path)
    estimated = normals is None
    if estimated:
        normals = estimate_normals(points, path=path)
    return ShapeReference(kind="points", points=points, normals=normals, normals_estimated=estimated)


def normalisation_of(reference: ShapeReference, extent: float) -> Normalisation:
    """The normalisation into [-extent, extent]^3 of a mesh (`normalisation_for`) or a cloud."""
    if reference.kind == "mesh":
        return normalisation_for(reference.mesh, extent)
    return normalisation_for_points(reference.points, extent, what="point cloud")


def load_shape_input(path, sampling: SamplingConfig) -> ShapeInput:
    """Read, normalise and sample one shape file.

    Meshes give `sample_sdf(normalised mesh, sampling)` (exact distances); point clouds give
    `sample_point_cloud(normalised points, normals, sampling)` (sdf NaN off the surface).
    """
    reference = read_shape(path)
    normalisation = normalisation_of(reference, sampling.extent)
    moved = reference.normalised(normalisation)
    if moved.kind == "mesh":
        samples = sample_sdf(moved.mesh, sampling)
    else:
        samples = sample_point_cloud(moved.points, moved.normals, sampling)
    return ShapeInput(path=str(path), normalisation=normalisation, samples=samples, reference=moved)


def load_reference(path, normalisation: Normalisation) -> ShapeReference:
    """The shape file moved by a stored normalisation (as the pipeline measures against it)."""
    return read_shape(path).normalised(normalisation)


def measure_reconstruction(mesh: trimesh.Trimesh, reference: ShapeReference, config: MetricsConfig) -> dict:
    """Surface metrics of `mesh` against the reference mesh or cloud (see `inrcore.geometry.metrics`)."""
    if reference.kind == "mesh":
        return compare_meshes(mesh, reference.mesh, config)
    return compare_mesh_to_points(mesh, reference.points, reference.normals, config)


def field_surface(spec, params: dict, grid: GridConfig, device: torch.device | str = "cpu",
                  where: str = "field") -> trimesh.Trimesh:
    """The zero level set of a field (any spec `fields.evaluate_points` takes) on `grid`, block by block.

    Returns the mesh in the field's (normalised) coordinates. Raises EmptySurfaceError,
    naming `where` and the field's range, when the field does not change sign on the grid.
    """
    low, high = [math.inf], [-math.inf]

    def read_block(block) -> np.ndarray:
        values = evaluate_grid_block(spec, params, grid, block, device)
        finite = values[np.isfinite(values)]
        if finite.size:
            low[0], high[0] = min(low[0], float(finite.min())), max(high[0], float(finite.max()))
        return values

    shape = (grid.resolution,) * 3
    mesh = marching_cubes_blocks(read_block, shape, grid.chunk, grid_spacing(grid), (-grid.bound,) * 3)
    if len(mesh.faces) == 0:
        raise EmptySurfaceError(
            f"{where}: the fitted field has no zero level set inside the grid [-{grid.bound:g}, {grid.bound:g}]^3 "
            f"(its values there range from {low[0]:.4g} to {high[0]:.4g}); try more steps or other settings")
    return mesh


def fit_shape(path, config: PipelineConfig, on_log: Optional[Callable[[dict], None]] = None) -> ShapeFit:
    """Fit a field to one mesh or point cloud, extract its surface and measure it.

    Steps: `load_shape_input(path, config.sampling)`; `fit_sdf` on its samples (with the
    stored distances for meshes, none for point clouds); `field_surface` on `config.grid`;
    `measure_reconstruction` with `config.metrics`.

    Args:
        path: a mesh or point-cloud file.
        config: sampling, training (network kind, steps, device), grid and metric settings.
        on_log: called with each training history entry.
    Raises:
        ShapeError: the file cannot be used. EmptySurfaceError: the field has no surface.
    """
    clock = time.perf_counter()
    shape = load_shape_input(path, config.sampling)
    seconds = {"prepare": time.perf_counter() - clock}

    samples, n = shape.samples, shape.samples.n_surface
    fit = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], config.training,
                  volume_sdf=known_distances(samples.sdf[n:]), on_log=on_log)
    seconds["train"] = fit.seconds

    clock = time.perf_counter()
    mesh = field_surface(fit.spec, fit.params, config.grid, resolve_device(fit.device), where=str(path))
    seconds["extract"] = time.perf_counter() - clock

    clock = time.perf_counter()
    metrics = measure_reconstruction(mesh, shape.reference, config.metrics)
    seconds["metrics"] = time.perf_counter() - clock
    return ShapeFit(fit=fit, mesh=mesh, metrics=metrics, normalisation=shape.normalisation, input_kind=shape.kind,
                    seconds=seconds, reference=shape.reference, path=str(path))


def fit_record(shape_fit: ShapeFit, method: str) -> dict:
    """The metrics.json content of `inr fit`: METRICS_FILE_KEYS first, then details.

    `seconds` is the total wall time of all phases; `seconds_per_phase` splits it. The
    distances are `inrcore.geometry.metrics`' point-to-surface figures; the point-to-point ones of
    earlier versions follow among the details as "<name>_points" (POINT_METRIC_NAMES).
    """
    record = {key: shape_fit.metrics[key] for key in ("chamfer_l1", "fscore", "normal_consistency", "hausdorff")}
    record.update({
        "seconds": float(sum(shape_fit.seconds.values())),
        "steps": int(shape_fit.fit.steps),
        "method": method,
        "precision": shape_fit.metrics["precision"],
        "recall": shape_fit.metrics["recall"],
        **{key: shape_fit.metrics[key] for key in POINT_METRIC_NAMES if key in shape_fit.metrics},
        "seconds_per_phase": {k: float(v) for k, v in shape_fit.seconds.items()},
        "device": shape_fit.fit.device,
        "input": shape_fit.path,
        "input_kind": shape_fit.input_kind,
        "loss": float(shape_fit.fit.history[-1]["loss"]) if shape_fit.fit.history else None,
        "vertices": int(len(shape_fit.mesh.vertices)),
        "faces": int(len(shape_fit.mesh.faces)),
    })
    if shape_fit.reference is not None:
        record.update(shape_fit.reference.size())
    return record


def save_shape_fit(shape_fit: ShapeFit, out_dir, config: PipelineConfig) -> dict:
    """Write `inr fit`'s results into `out_dir`, each file atomically, numbers before pictures.

    field.safetensors (metadata: method, normalisation, config, input), mesh.ply (in the
    input's original coordinates), metrics.json (`fit_record`), then mesh.png (the
    reconstruction, normalised view). Returns {"field", "mesh", "image", "metrics"}: the paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    method = config.training.network.kind
    paths = {"field": out / "field.safetensors", "mesh": out / "mesh.ply", "image": out / "mesh.png",
             "metrics": out / "metrics.json"}
    save_field(paths["field"], shape_fit.fit.spec, shape_fit.fit.params, metadata={
        "method": method, "normalisation": shape_fit.normalisation.to_dict(), "config": config_to_dict(config),
        "input": shape_fit.path, "input_kind": shape_fit.input_kind})
    make_readable(paths["field"])
    original = trimesh.Trimesh(vertices=shape_fit.normalisation.invert(np.asarray(shape_fit.mesh.vertices)),
                               faces=np.asarray(shape_fit.mesh.faces), process=False, validate=False)
    write_atomic(paths["mesh"], lambda tmp: original.export(tmp, file_type="ply"))
    text = json.dumps(fit_record(shape_fit, method), indent=2) + "\n"
    write_atomic(paths["metrics"], lambda tmp: Path(tmp).write_text(text))
    write_png(render_mesh(shape_fit.mesh), paths["image"])
    return paths


def render_reference(reference: ShapeReference, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """A picture of the normalised input: `render_mesh`, or `render_point_cloud` for a cloud."""
    if reference.kind == "mesh":
        return render_mesh(reference.mesh, ViewConfig(size=size))
    return render_point_cloud(reference.points, reference.normals, ViewConfig(size=size))
