"""Field evaluation: a registered field -> a dense grid in `fields/<shape_id>/sdf`, block by block on Dask."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import task

from inrcore.geometry.grids import grid_axis, grid_spacing
from inrcore.geometry.settings import GridConfig
from inrcore.settings import config_to_dict, fingerprint

from .. import registry
from ..cluster import shared_field, store_grid
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, fresh_group, mark_finished, open_store, remove_group
from ..timing import TaskClock


@dataclass(frozen=True, kw_only=True)
class EvaluatedGrid(StageResult):
    """A field's values on a grid in the store: the array at `path`, made under `fingerprint`,
    by `blocks` chunk tasks (0 when reused)."""

    path: str
    fingerprint: str
    blocks: int


@task(name="evaluate-field", retries=1, retry_condition_fn=retry_unless_bad_input)
def evaluate_field(shape_id: str, store_url: str, model_uri: str, model_fingerprint: str,
                   grid: GridConfig, tracking_uri: str) -> EvaluatedGrid:
    """Evaluate the field on a `resolution`^3 grid and store it chunk by chunk.

    The grid is one Dask task per chunk, all sharing one copy of the weights; each task
    writes its block straight into its Zarr chunk, so no process ever holds the whole grid. With a Dask cluster (the flow's task runner) the chunks spread over its
    workers; otherwise Dask's local threads compute them.

    Its `seconds` are the task's own running time, the time its chunks waited for a free worker
    left out (that is `waiting_seconds`, `tasks.timing.TaskClock`).
    """
    clock = TaskClock()
    config = grid
    key = fingerprint("grid", model_fingerprint, config)
    root = open_store(store_url)
    path = f"fields/{shape_id}"
    if finished_attrs(root, path, key) is not None:
        return EvaluatedGrid(path=f"{path}/sdf", fingerprint=key, reused=True, blocks=0, **clock.result())

    spec, params, _, _ = registry.load_registered_field(tracking_uri, model_uri)
    weights = shared_field(spec, params)
    shape = (config.resolution,) * 3
    try:
        group = fresh_group(root, path)
        axis = grid_axis(config)
        for name in ("x", "y", "z"):
            coord = group.create_array(name, shape=(config.resolution,), dtype="float64", dimension_names=(name,))
            coord[...] = axis
        since = clock.now()
        _, intervals = store_grid(group, "sdf", weights, config)
        clock.pieces_done(since, intervals)
        mark_finished(group, key, {
            "model_uri": model_uri,
            "grid": config_to_dict(config),
            "bounds_min": [-config.bound] * 3,
            "bounds_max": [config.bound] * 3,
            "spacing": grid_spacing(config),
            "shape": list(shape),
            "indexing": "sdf[i, j, k] is the value at (x[i], y[j], z[k])",
        })
    except BaseException:
        remove_group(root, path)
        raise
    return EvaluatedGrid(path=f"{path}/sdf", fingerprint=key, blocks=len(intervals), **clock.result())
