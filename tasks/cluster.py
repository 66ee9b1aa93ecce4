"""Farming a task's pieces out to the Dask cluster it runs in, with one shared copy of a field's weights;
a field evaluated on a grid that way, chunk by chunk into Zarr (`store_grid`)."""

from __future__ import annotations

import dask
import numpy as np

from inrcore.device import resolve_device
from inrcore.fields.build import field_spec_from_json, field_spec_to_json
from inrcore.fields.evaluation import evaluate_grid_block
from inrcore.fields.networks import FieldSpec, Params
from inrcore.geometry.grids import grid_blocks
from inrcore.geometry.settings import GridConfig

from .timing import timed


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


def workers_on_this_machine() -> int:
    """The Dask workers on the machine of the worker this runs in (1 outside a Dask worker)."""
    try:
        from distributed import get_client, get_worker

        host = get_worker().address.rsplit(":", 1)[0]
        return max(1, sum(address.rsplit(":", 1)[0] == host
                          for address in get_client().scheduler_info()["workers"]))
    except (ImportError, ValueError):
        return 1


def shared_field(spec: FieldSpec, params: Params):
    """A field's weights as one `dask.delayed` value that every piece of a graph shares (sent to
    each worker once): {"spec": its JSON description, "params": {name: numpy array}}."""
    return dask.delayed({"spec": field_spec_to_json(spec), "params": {k: v.numpy() for k, v in params.items()}},
                        pure=True)


def field_of_shared(weights: dict) -> tuple[FieldSpec, dict]:
    """(spec, params as CPU tensors) back from the value `shared_field` shares."""
    import torch

    return field_spec_from_json(weights["spec"]), {k: torch.from_numpy(np.asarray(v)) for k, v in weights["params"].items()}


def store_grid(group, name: str, weights, config: GridConfig):
    """Evaluate a field on the grid of `config` into a new array `name` of `group`, one Dask task per chunk.

    weights: a field's weights as `shared_field` shares them with every chunk's task. Computed on the
    Dask cluster this runs in, else on local threads. Returns the array and the wall-clock interval
    (start, end) in which each chunk was evaluated and written (one per chunk).
    """
    shape = (config.resolution,) * 3
    array = group.create_array(name, shape=shape, chunks=(config.chunk,) * 3, dtype="float32",
                               dimension_names=("x", "y", "z"), fill_value=np.nan)
    pieces = [dask.delayed(_evaluate_into)(weights, config, block, array)
              for block in grid_blocks(shape, config.chunk)]
    return array, compute_on_cluster(pieces)


def _evaluate_into(weights: dict, grid: GridConfig, block, array) -> tuple[float, float]:
    """Evaluate one block of the grid and write it into its own chunk of `array` (a Zarr array);
    returns the wall-clock interval this took (`timed`)."""
    def write() -> None:
        array[block] = _block_values(weights, grid, block)

    return timed(write)[1]


def _block_values(weights: dict, grid: GridConfig, block) -> np.ndarray:
    spec, params = field_of_shared(weights)
    return evaluate_grid_block(spec, params, grid, block, resolve_device("auto"))
