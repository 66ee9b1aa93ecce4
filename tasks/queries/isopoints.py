"""Iso-points of a fitted field (`inrcore.queries.isopoints`) into the Zarr store."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from prefect import task

from inrcore.device import resolve_device
from inrcore.settings import fingerprint

from .. import registry
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, fresh_group, mark_finished, open_store, remove_group


@dataclass(frozen=True, kw_only=True)
class IsoPointSet(StageResult):
    """A field's iso-points in the store: the group at `path` holding `count` points, and its fingerprint."""

    path: str
    count: int
    fingerprint: str


@task(name="extract-isopoints", retries=1, retry_condition_fn=retry_unless_bad_input)
def extract_isopoints(shape_id: str, store_url: str, model_uri: str, model_fingerprint: str, count: int,
                      tracking_uri: str, run_id: str, seed: int = 0) -> IsoPointSet:
    """About `count` iso-points of a registered field (`inrcore.queries.isopoints.extract_isopoints`: Newton
    projection, uniform resampling, edge-aware upsampling) into `isopoints/<shape_id>` of the Zarr
    store: `points` [M, 3] and `normals` [M, 3] float32 in the field's coordinates. Reuses a finished
    group made from the same field, count and seed.
    """
    import torch

    from inrcore.fields.gradients import field_of_network
    from inrcore.queries.isopoints import extract_isopoints as isopoints_of

    start = time.perf_counter()
    key = fingerprint("isopoints", model_fingerprint, int(count), int(seed))
    root = open_store(store_url)
    path = f"isopoints/{shape_id}"
    attrs = finished_attrs(root, path, key)
    if attrs is not None:
        return IsoPointSet(path=path, count=int(attrs["count"]), fingerprint=key, reused=True,
                           seconds=time.perf_counter() - start)
    spec, params, _, _ = registry.load_registered_field(tracking_uri, model_uri)
    device = resolve_device("auto")
    params = {k: v.to(device) for k, v in params.items()}
    iso = isopoints_of(field_of_network(spec, params), int(count), device=device,
                       generator=torch.Generator().manual_seed(int(seed)))
    points = iso.points.detach().cpu().numpy().astype(np.float32)
    normals = iso.normals.detach().cpu().numpy().astype(np.float32)
    try:
        group = fresh_group(root, path)
        for name, data in (("points", points), ("normals", normals)):
            group.create_array(name, shape=data.shape, dtype="float32", dimension_names=("point", "xyz"))[...] = data
        mark_finished(group, key, {"model_uri": model_uri, "count": int(len(points)), "requested": int(count),
                                   "seed": int(seed)})
    except BaseException:
        remove_group(root, path)
        raise
    registry.log_metrics(tracking_uri, run_id, {"isopoints/count": float(len(points))})
    return IsoPointSet(path=path, count=int(len(points)), fingerprint=key, seconds=time.perf_counter() - start)
