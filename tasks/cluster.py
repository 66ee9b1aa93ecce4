"""Farming a task's pieces out to the Dask cluster it runs in, with one shared copy of a field's weights."""

from __future__ import annotations

import dask
import numpy as np

from inrcore.fields.build import field_spec_from_json, field_spec_to_json
from inrcore.fields.networks import FieldSpec, Params


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


def shared_field(spec: FieldSpec, params: Params):
    """A field's weights as one `dask.delayed` value that every piece of a graph shares (sent to
    each worker once): {"spec": its JSON description, "params": {name: numpy array}}."""
    return dask.delayed({"spec": field_spec_to_json(spec), "params": {k: v.numpy() for k, v in params.items()}},
                        pure=True)


def field_of_shared(weights: dict) -> tuple[FieldSpec, dict]:
    """(spec, params as CPU tensors) back from the value `shared_field` shares."""
    import torch

    return field_spec_from_json(weights["spec"]), {k: torch.from_numpy(np.asarray(v)) for k, v in weights["params"].items()}
