"""The skeleton stage of the collection flow, as four tasks over `skeletons/<shape_id>/` in the Zarr store.

skeleton-field (neural method only): the TV-regularised field, its weights in `field/`.
skeleton-trace: surface samples and candidate balls in `candidates/` (`surface`, `points`, `radii`).
skeleton-select: the Coverage-Axis cover in `selection/` (`selected`, `uncovered`; the solver's record
  in its attributes).
skeleton-link: the linked skeleton in `skeleton/` (`points`, `radii`, `edges`, `faces`, `isolated`,
  normalised frame) and its files in the run folder (`skeletons/<shape_id>/`: skeleton.ply,
  skeleton.ma, balls.ply, metrics.json, skeleton.png, in the input's coordinates).

Each group is written whole and marked finished last (`tasks.store`); a re-run reuses every group
whose fingerprint (its inputs and settings) still matches.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from prefect import task

from inrcore.geometry.meshes import Normalisation
from inrcore.settings import config_to_dict, fingerprint
from inrcore.skeleton.settings import SkeletonConfig

from .. import locations, registry
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, open_store, read_arrays, write_group


@dataclass(frozen=True, kw_only=True)
class SkeletonPart(StageResult):
    """One skeleton stage's group in the store (`path`), made under `fingerprint`, and its counts."""

    path: str
    fingerprint: str
    counts: dict


@dataclass(frozen=True, kw_only=True)
class SkeletonFiles(SkeletonPart):
    """The linked skeleton's group, its files in the run folder and its figures (`metrics.json`)."""

    files: dict
    metrics: dict


def group_path(shape_id: str, part: str) -> str:
    return f"skeletons/{shape_id}/{part}"


def source_fingerprint(source: str) -> Optional[str]:
    return locations.file_sha256(source)


def input_of(source: str, config: SkeletonConfig):
    from inrcore.skeleton.inputs import read_skeleton_input

    with locations.input_file(source) as local:
        return read_skeleton_input(local, config.n_input, config.extent, seed=config.candidates.seed)


@task(name="skeleton-field", retries=1, retry_condition_fn=retry_unless_bad_input)
def fit_skeleton_field(shape_id: str, source: str, store_url: str, config: SkeletonConfig) -> SkeletonPart:
    """Fit the TV-regularised neural SDF (`inrcore.skeleton.tvfield`) to the shape; weights into the store."""
    from inrcore.fields.build import field_spec_to_json
    from inrcore.skeleton.tvfield import fit_skeleton_field as fit

    start = time.perf_counter()
    key = fingerprint("skeleton-field", source_fingerprint(source), config.n_input, config.extent, config.field,
                      config.candidates.seed)
    root, path = open_store(store_url), group_path(shape_id, "field")
    done = finished_attrs(root, path, key)
    if done is not None:
        return SkeletonPart(path=path, fingerprint=key, counts={"steps": done["steps"]}, reused=True,
                            seconds=time.perf_counter() - start)
    shape = input_of(source, config)
    result = fit(shape.points, shape.normals, config.field, config.device)
    arrays = {name: value.detach().cpu().numpy() for name, value in result.params.items()}
    write_group(root, path, key, arrays, {"spec": field_spec_to_json(result.spec), "steps": result.steps,
                                          "seconds": result.seconds, "device": result.device,
                                          "loss": result.history[-1]["loss"] if result.history else None})
    return SkeletonPart(path=path, fingerprint=key, counts={"steps": result.steps}, seconds=time.perf_counter() - start)


def load_field(root, path: str):
    """The spec and parameters (CPU tensors) of a stored skeleton field."""
    import torch

    from inrcore.fields.build import field_spec_from_json

    group = root[path]
    spec = field_spec_from_json(group.attrs["spec"])
    return spec, {name: torch.as_tensor(np.asarray(array[...])) for name, array in group.arrays()}


@task(name="skeleton-trace", retries=1, retry_condition_fn=retry_unless_bad_input)
def trace_skeleton_candidates(shape_id: str, source: str, store_url: str, config: SkeletonConfig,
                              field: Optional[SkeletonPart] = None) -> SkeletonPart:
    """Surface samples and candidate balls (`inrcore.skeleton.candidates`): traced in the stored field
    (`field`, neural) or from the input by winding number (coverage-axis)."""
    from inrcore.skeleton.skeletonise import check_candidates, skeleton_candidates

    start = time.perf_counter()
    upstream = field.fingerprint if field is not None else source_fingerprint(source)
    key = fingerprint("skeleton-trace", upstream, config.method, config.n_input, config.extent, config.trace,
                      config.candidates)
    root, path = open_store(store_url), group_path(shape_id, "candidates")
    done = finished_attrs(root, path, key)
    if done is not None:
        return SkeletonPart(path=path, fingerprint=key, counts=done["counts"], reused=True,
                            seconds=time.perf_counter() - start)
    shape = input_of(source, config)
    if config.method == "neural" and field is None:
        raise ValueError("the neural method needs the skeleton-field stage's result")
    candidates = skeleton_candidates(shape, config, load_field(root, field.path) if field is not None else None)
    check_candidates(candidates, source)
    counts = {"surface": int(len(candidates.surface)), "candidates": int(len(candidates.points)),
              "considered": int(candidates.considered)}
    write_group(root, path, key, {"surface": candidates.surface, "points": candidates.points,
                                  "radii": candidates.radii},
                {"counts": counts, "method": config.method, "normalisation": shape.normalisation.to_dict()})
    return SkeletonPart(path=path, fingerprint=key, counts=counts, seconds=time.perf_counter() - start)


@task(name="skeleton-select", retries=1, retry_condition_fn=retry_unless_bad_input)
def select_skeleton_balls(shape_id: str, store_url: str, config: SkeletonConfig,
                          candidates: SkeletonPart) -> SkeletonPart:
    """The fewest candidate balls covering the surface samples (`inrcore.skeleton.cover.select_balls`)."""
    from inrcore.skeleton.cover import select_balls

    start = time.perf_counter()
    key = fingerprint("skeleton-select", candidates.fingerprint, config.cover)
    root, path = open_store(store_url), group_path(shape_id, "selection")
    done = finished_attrs(root, path, key)
    if done is not None:
        return SkeletonPart(path=path, fingerprint=key, counts=done["counts"], reused=True,
                            seconds=time.perf_counter() - start)
    surface, points, radii = read_arrays(root, candidates.path, ("surface", "points", "radii"))
    cover = select_balls(surface, points, radii, config.cover)
    counts = {"balls": int(len(cover.selected)), "uncovered": int(len(cover.uncovered)), "method": cover.method}
    write_group(root, path, key, {"selected": np.asarray(cover.selected, np.int64),
                                  "uncovered": np.asarray(cover.uncovered, np.int64)},
                {"counts": counts, "cover": cover.to_dict()})
    return SkeletonPart(path=path, fingerprint=key, counts=counts, seconds=time.perf_counter() - start)


@task(name="skeleton-link", retries=1, retry_condition_fn=retry_unless_bad_input)
def link_skeleton(shape_id: str, source: str, store_url: str, config: SkeletonConfig, candidates: SkeletonPart,
                  selection: SkeletonPart, out_dir: str, tracking_uri: Optional[str] = None,
                  run_id: Optional[str] = None) -> SkeletonFiles:
    """Link the selected balls (`inrcore.skeleton.skeletonise.link_selected`) into the store, and write the
    skeleton's files into `<out_dir>/skeletons/<shape_id>/`; its figures go to the shape's MLflow run."""
    from inrcore.sdf.fitshape import load_reference
    from inrcore.skeleton.candidates import Candidates
    from inrcore.skeleton.outputs import SKELETON_FILES, write_skeleton_files
    from inrcore.skeleton.skeletonise import link_selected, skeleton_figures

    start = time.perf_counter()
    key = fingerprint("skeleton-link", selection.fingerprint, config.cover.delta)
    root, path = open_store(store_url), group_path(shape_id, "skeleton")
    folder = locations.join(out_dir, "skeletons", shape_id)
    files = {name: locations.join(folder, file) for name, file in SKELETON_FILES.items()}
    done = finished_attrs(root, path, key)
    if done is not None and all(locations.is_file(file) for file in files.values()):
        return SkeletonFiles(path=path, fingerprint=key, counts=done["counts"], files=files, metrics=done["metrics"],
                             reused=True, seconds=time.perf_counter() - start)
    surface, points, radii = read_arrays(root, candidates.path, ("surface", "points", "radii"))
    (selected,) = read_arrays(root, selection.path, ("selected",))
    cover = dict(root[selection.path].attrs)["cover"]
    normalisation = Normalisation.from_dict(dict(root[candidates.path].attrs)["normalisation"])
    skeleton = link_selected(Candidates(surface, points, radii, 0), selected, config.cover.delta)
    metrics = {"method": config.method, **skeleton_figures(skeleton, cover, len(points), len(surface)),
               "normalisation": normalisation.to_dict(), "input": source}
    with locations.input_file(source) as local:
        reference = load_reference(local, normalisation)
    with tempfile.TemporaryDirectory(prefix="inrflow-skeleton-") as made:  # then each file put whole
        write_skeleton_files(made, skeleton, normalisation, metrics, reference)
        for name, file in SKELETON_FILES.items():
            locations.copy_to(Path(made) / file, files[name])
    counts = {key_: metrics[key_] for key_ in ("balls", "edges", "faces", "components", "betti1", "isolated")}
    write_group(root, path, key, {"points": skeleton.points, "radii": skeleton.radii,
                                  "edges": np.asarray(skeleton.edges, np.int64),
                                  "faces": np.asarray(skeleton.faces, np.int64),
                                  "isolated": np.asarray(skeleton.isolated, np.int64)},
                {"counts": counts, "metrics": metrics, "settings": config_to_dict(config)})
    if tracking_uri and run_id:
        registry.log_metrics(tracking_uri, run_id, {f"skeleton/{name}": float(value) for name, value in counts.items()})
    return SkeletonFiles(path=path, fingerprint=key, counts=counts, files=files, metrics=metrics,
                         seconds=time.perf_counter() - start)
