"""Field evaluation: a registered field -> a dense grid in `fields/<shape_id>/sdf`, block by block on Dask."""

from __future__ import annotations

import dask
import numpy as np
from prefect import task

from inrcore.device import resolve_device
from inrcore.fields.build import field_spec_from_json, field_spec_to_json
from inrcore.fields.evaluation import evaluate_grid_block
from inrcore.geometry.grids import grid_axis, grid_blocks, grid_spacing
from inrcore.settings import GridConfig, config_from_dict, config_to_dict, fingerprint

from . import registry
from .options import retry_unless_bad_input
from .store import finished_attrs, fresh_group, mark_finished, open_store, remove_group
from .timing import TaskClock, timed


@task(name="evaluate-field", retries=1, retry_condition_fn=retry_unless_bad_input)
def evaluate_field(shape_id: str, store_url: str, model_uri: str, model_fingerprint: str,
                   grid: dict, tracking_uri: str) -> dict:
    """Evaluate the field on a `resolution`^3 grid and store it chunk by chunk.

    The grid is one Dask task per chunk, all sharing one copy of the weights; each task
    writes its block straight into its Zarr chunk, so no process ever holds the whole grid. With a Dask cluster (the flow's task runner) the chunks spread over its
    workers; otherwise Dask's local threads compute them.

    Returns {"path", "fingerprint", "reused", "seconds", "waiting_seconds", "blocks"}: "seconds"
    is the task's own running time, the time its chunks waited for a free worker left out
    (that is "waiting_seconds", `tasks.timing.TaskClock`).
    """
    clock = TaskClock()
    config = config_from_dict(GridConfig, grid, "grid")
    key = fingerprint("grid", model_fingerprint, config)
    root = open_store(store_url)
    path = f"fields/{shape_id}"
    if finished_attrs(root, path, key) is not None:
        return {"path": f"{path}/sdf", "fingerprint": key, "reused": True, **clock.result(), "blocks": 0}

    spec, params, _, _ = registry.load_registered_field(tracking_uri, model_uri)
    weights = dask.delayed({"spec": field_spec_to_json(spec), "params": {k: v.numpy() for k, v in params.items()}},
                           pure=True)
    shape = (config.resolution,) * 3
    blocks = list(grid_blocks(shape, config.chunk))
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
    return {"path": f"{path}/sdf", "fingerprint": key, "reused": False, **clock.result(), "blocks": len(blocks)}


def store_grid(group, name: str, weights, config: GridConfig):
    """Evaluate a field on the grid of `config` into a new array `name` of `group`, one Dask task per chunk.

    weights: a `dask.delayed` {"spec": field_spec_to_json(spec), "params": {name: numpy array}}, shared by
    every chunk's task. Computed on the Dask cluster this runs in, else on local threads. Returns the array
    and the wall-clock interval (start, end) in which each chunk was evaluated and written.
    """
    shape = (config.resolution,) * 3
    array = group.create_array(name, shape=shape, chunks=(config.chunk,) * 3, dtype="float32",
                               dimension_names=("x", "y", "z"), fill_value=np.nan)
    grid = config_to_dict(config)
    pieces = [dask.delayed(_evaluate_into)(weights, grid, block, array) for block in grid_blocks(shape, config.chunk)]
    return array, compute_on_cluster(pieces)


def _evaluate_into(weights: dict, grid: dict, block, array) -> tuple[float, float]:
    """Evaluate one block of the grid and write it into its own chunk of `array` (a Zarr array);
    returns the wall-clock interval this took (`timed`)."""
    def write() -> None:
        array[block] = _block_values(weights, grid, block)

    return timed(write)[1]


def _block_values(weights: dict, grid: dict, block) -> np.ndarray:
    import torch

    spec = field_spec_from_json(weights["spec"])
    params = {k: torch.from_numpy(v) for k, v in weights["params"].items()}
    return evaluate_grid_block(spec, params, config_from_dict(GridConfig, grid), block, resolve_device("auto"))


def compute_on_cluster(wanted: list) -> list:
    """Compute `wanted` delayed values in one graph, on the Dask cluster this task runs in
    (seceding from the worker's slot while they run), else on local threads."""
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        return list(dask.compute(*wanted, scheduler="threads"))
    with worker_client() as client:
        return list(client.gather(client.compute(wanted)))
