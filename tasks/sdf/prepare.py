"""Dataset preparation: a mesh or point-cloud file -> normalised SDF samples in `samples/<shape_id>`."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from prefect import task

from inrcore.geometry.settings import SamplingConfig
from inrcore.sdf.fitshape import load_shape_input
from inrcore.settings import config_to_dict, fingerprint

from .. import locations
from ..results import StageResult
from ..store import finished_attrs, fresh_group, mark_finished, open_store, remove_group


ROWS_PER_CHUNK = 65536


@dataclass(frozen=True, kw_only=True)
class PreparedSamples(StageResult):
    """A shape's samples in the store: `samples/<shape_id>`, made under `fingerprint`, and the
    normalisation that moved the input into the unit cube (`Normalisation.to_dict()`)."""

    shape_id: str
    fingerprint: str
    normalisation: dict


@task(name="prepare-samples")
def prepare_samples(shape_id: str, source: str, store_url: str, sampling: SamplingConfig) -> PreparedSamples:
    """Load, validate and normalise one mesh or point cloud; store oriented surface points and SDF samples.

    Writes `samples/<shape_id>/{points [N,3], normals [N,3], sdf [N]}`; the first
    `n_surface` rows are surface points (sdf 0, mesh or cloud normal), the rest off-surface
    points (meshes: true SDF and unit SDF gradient; point clouds: NaN, unknown). The attribute
    "input_kind" is "mesh" or "points". Reuses a finished group made from the same file bytes
    and sampler settings.

    """
    start = time.perf_counter()
    config = sampling
    # one local copy of a URL's file, hashed and then loaded (a local path is used as it is)
    with locations.input_file(source) as local:
        source_hash = locations.file_sha256(local)  # None when it is not there: loading says so
        key = fingerprint("samples", source_hash, config)
        root = open_store(store_url)
        path = f"samples/{shape_id}"
        done = finished_attrs(root, path, key) if source_hash else None
        if done is not None:
            return PreparedSamples(shape_id=shape_id, fingerprint=key, normalisation=done["normalisation"],
                                   reused=True, seconds=time.perf_counter() - start)
        shape = load_shape_input(local, config)  # raises ShapeError naming the file
    samples, normalisation = shape.samples, shape.normalisation
    try:
        group = fresh_group(root, path)
        for name, values in (("points", samples.points), ("normals", samples.normals), ("sdf", samples.sdf)):
            values = np.ascontiguousarray(values, dtype=np.float32)
            array = group.create_array(name, shape=values.shape, dtype="float32",
                                       chunks=(ROWS_PER_CHUNK,) + values.shape[1:])
            array[...] = values
        mark_finished(group, key, {
            "source": str(source),
            "source_sha256": source_hash,
            "normalisation": normalisation.to_dict(),
            "sampling": config_to_dict(config),
            "n_surface": int(samples.n_surface),
            "counts": samples.counts,
            "input_kind": shape.kind,
            **shape.reference.size(),
        })
    except BaseException:
        remove_group(root, path)
        raise
    return PreparedSamples(shape_id=shape_id, fingerprint=key, normalisation=normalisation.to_dict(),
                           seconds=time.perf_counter() - start)

