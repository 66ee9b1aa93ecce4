"""Range-bound meshing of a fitted field: signs certified by range analysis and leaf blocks sampled on
Dask into Zarr, one mesh file from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import dask
import numpy as np
from prefect import task

from inrcore.device import resolve_device
from inrcore.geometry.grids import grid_spacing
from inrcore.geometry.marching import marching_cubes_blocks
from inrcore.geometry.settings import GridConfig
from inrcore.queries.rangemesh import (
    RangeMeshPlan,
    estimate_range_mesh,
    evaluate_leaf_values,
    mesh_from_leaf_values,
    plan_range_mesh,
)
from inrcore.queries.settings import RangeMeshConfig
from inrcore.settings import config_to_dict, fingerprint

from .. import locations, registry
from ..cluster import compute_on_cluster, field_of_shared, shared_field, store_grid
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import (
    finished_attrs,
    fresh_group,
    mark_finished,
    open_store,
    remove_group,
)
from ..timing import TaskClock, timed


@dataclass(frozen=True, kw_only=True)
class RangeMeshed(StageResult):
    """A field meshed by range analysis: the mesh file, the Zarr group at `path`, its fingerprint,
    and `stats`, the record's counts and choices: method ("range" or "dense"), fallback,
    evaluations, box_evaluations, point_evaluations, vertices, faces, tasks, leaves (range),
    estimate (with fallback), the settings that shaped them and per-level box counts."""

    mesh_path: str
    path: str
    fingerprint: str
    stats: dict


@task(name="range-mesh", retries=1, retry_condition_fn=retry_unless_bad_input)
def range_mesh_field(shape_id: str, store_url: str, model_uri: str, model_fingerprint: str,
                     settings: RangeMeshConfig, out_dir: str, tracking_uri: str, run_id: str) -> RangeMeshed:
    """Mesh a registered field by range analysis (`inrcore.queries.rangemesh`).

    The subdivision runs here; the surviving leaf blocks are then sampled by `settings.tasks`
    Dask tasks (on the flow's cluster when there is one), each writing its leaves' values into
    `range/<shape_id>/values` [L, n, n, n] of the Zarr store next to the certified signs and
    the leaf indices; marching cubes reads them back into `<out_dir>/meshes/<shape_id>-range.ply`.
    Counts (`evaluations`, `box_evaluations`, `point_evaluations`, `seconds`, `vertices`,
    `faces`) go to the group's attributes, the record `<out_dir>/shapes/<shape_id>-range.json`
    and the shape's MLflow run. A finished group and mesh from the same field and settings are reused.

    With `settings.fallback` (the default) a few hundred boxes per level are bounded first
    (`inrcore.queries.rangemesh.estimate_range_mesh`); when the plan is predicted to cost more than the
    dense lattice, every lattice point is evaluated instead into `range/<shape_id>/dense`
    [R, R, R], one Dask task per chunk, and meshed from there (the same mesh; the record says
    "method": "dense", "fallback": true, and keeps the estimate).

    Its `seconds` are the task's own running time, the time its Dask tasks waited for a free
    worker left out (that is `waiting_seconds`, `tasks.timing.TaskClock`).
    """
    clock = TaskClock()
    config = settings
    key = fingerprint("range-mesh", model_fingerprint, config)
    mesh_path = locations.join(out_dir, "meshes", f"{shape_id}-range.ply")
    record_path = locations.join(out_dir, "shapes", f"{shape_id}-range.json")
    root = open_store(store_url)
    path = f"range/{shape_id}"
    record = locations.read_json(record_path)
    if (finished_attrs(root, path, key) is not None and locations.is_file(mesh_path) and record
            and record.get("fingerprint") == key):
        return _range_meshed(record["result"], reused=True, **clock.result())

    spec, params, _, _ = registry.load_registered_field(tracking_uri, model_uri)
    device = resolve_device("auto")
    weights = shared_field(spec, params)
    settings_stats = {"resolution": config.resolution, "leaf": config.leaf, "mode": config.mode,
                      "max_symbols": config.max_symbols}
    estimated, sampled = {}, 0
    if config.fallback:
        estimate = estimate_range_mesh(spec, params, config.resolution, config.bound, config.leaf, config.mode,
                                       config.max_symbols, samples=config.samples, batch_boxes=config.batch_boxes,
                                       device=device)
        estimated, sampled = {"estimate": estimate.to_dict()}, estimate.sampled_boxes
    try:
        group = fresh_group(root, path)
        since = clock.now()
        if estimated and not estimated["estimate"]["worthwhile"]:
            mesh, stats, intervals = _dense_fallback(group, weights, config)
        else:
            mesh, stats, intervals = _range_plan_mesh(group, spec, params, weights, config, device)
        clock.pieces_done(since, intervals)
        boxes = stats.pop("box_evaluations", 0) + sampled
        stats = {**settings_stats, **stats, "box_evaluations": boxes,
                 "evaluations": boxes + stats["point_evaluations"], **estimated,
                 "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}
        locations.write_file(mesh_path, mesh.export)
        stats.update(clock.result())
        mark_finished(group, key, {"model_uri": model_uri, "settings": config_to_dict(config), **stats})
    except BaseException:
        remove_group(root, path)
        raise
    registry.log_metrics(tracking_uri, run_id, {f"range/{k}": float(v) for k, v in stats.items()
                                                if isinstance(v, (int, float)) and v is not None})
    result = {"mesh_path": mesh_path, "path": path, "fingerprint": key, **stats}
    locations.write_json(record_path, {"fingerprint": key, "result": result})
    return _range_meshed(result, seconds=stats["seconds"], waiting_seconds=stats["waiting_seconds"])


def _range_meshed(record: dict, **timing) -> RangeMeshed:
    """The task's result from the record it writes ({"mesh_path", "path", "fingerprint", **stats})."""
    stats = {k: v for k, v in record.items() if k not in ("mesh_path", "path", "fingerprint", "seconds",
                                                           "waiting_seconds")}
    return RangeMeshed(mesh_path=record["mesh_path"], path=record["path"], fingerprint=record["fingerprint"],
                       stats=stats, **timing)


def _range_plan_mesh(group, spec, params, weights, config: RangeMeshConfig, device):
    """The subdivision here, the surviving leaves sampled by `config.tasks` Dask tasks into `values`
    [L, n, n, n] next to `signs` and `leaves`, one mesh stitched from them. Returns the mesh, its
    counts and the wall-clock interval each Dask task ran in."""
    plan = plan_range_mesh(spec, params, config.resolution, config.bound, config.leaf, config.mode,
                           config.max_symbols, batch_boxes=config.batch_boxes, device=device)
    n = config.leaf + 1
    leaves = plan.leaves
    per_task = max(1, math.ceil(len(leaves) / config.tasks))
    group.create_array("signs", shape=plan.signs.shape, dtype="int8")[...] = plan.signs
    group.create_array("leaves", shape=(len(leaves), 3), dtype="int64")[...] = leaves
    values = group.create_array("values", shape=(len(leaves), n, n, n), chunks=(per_task, n, n, n),
                                dtype="float32", fill_value=np.nan)
    parts = [slice(s, min(s + per_task, len(leaves))) for s in range(0, len(leaves), per_task)]
    shared_plan = dask.delayed(plan, pure=True)
    done = compute_on_cluster([dask.delayed(_leaf_values_into)(weights, shared_plan, leaves[part], values, part,
                                                              config.batch_points) for part in parts])
    point_evaluations = int(sum(count for count, _ in done))
    intervals = [interval for _, interval in done]
    mesh = mesh_from_leaf_values(plan, np.asarray(values[...]))
    boxes = int(sum(plan.box_evaluations))
    return mesh, {"method": "range", "fallback": False, "box_evaluations": boxes,
                  "box_evaluations_per_level": list(plan.box_evaluations), "point_evaluations": point_evaluations,
                  "leaves": int(len(leaves)), "tasks": len(parts), "seconds_plan": plan.seconds}, intervals


def _dense_fallback(group, weights, config: RangeMeshConfig):
    """Every lattice point evaluated into `dense` [R, R, R] (one Dask task per chunk, as `evaluate_field`)
    and meshed block by block: range analysis was predicted to cost more."""
    grid = GridConfig(resolution=config.resolution, bound=config.bound, batch_points=config.batch_points)
    values, intervals = store_grid(group, "dense", weights, grid)
    mesh = marching_cubes_blocks(lambda block: values[block], values.shape, grid.chunk, grid_spacing(grid),
                                 (-config.bound,) * 3)
    return mesh, {"method": "dense", "fallback": True, "point_evaluations": config.resolution ** 3,
                  "tasks": len(intervals)}, intervals


def _leaf_values_into(weights: dict, plan: RangeMeshPlan, leaves: np.ndarray, values, part: slice,
                      batch_points: int) -> tuple[int, tuple[float, float]]:
    """Sample `leaves` (rows `part` of the plan's leaves) and write them into values[part], their own
    Zarr chunk; returns the point evaluations and the wall-clock interval this took (`timed`)."""
    def sample_and_write() -> int:
        sampled, count = _leaf_values(weights, plan, leaves, batch_points)
        values[part] = sampled
        return count

    return timed(sample_and_write)


def _leaf_values(weights: dict, plan: RangeMeshPlan, leaves: np.ndarray, batch_points: int) -> tuple[np.ndarray, int]:
    spec, params = field_of_shared(weights)
    return evaluate_leaf_values(spec, params, plan, leaves, resolve_device("auto"), batch_points)
