"""Shape-space sample preparation: a mesh file -> `shapespace/samples/<shape_id>` in the store.

One Dask task per shape; a finished group made from the same file bytes and sampler settings is
reused, a failed write leaves no group behind (`tasks.store.write_group`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from prefect import task

from inrcore.geometry.meshes import Normalisation
from inrcore.settings import config_to_dict, fingerprint
from inrcore.shapespace.samples import ShapeSpaceSamples, check_samples, load_normalised_mesh, sample_shape_space
from inrcore.shapespace.settings import DeepSdfSamplingConfig

from .. import locations
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, open_store, read_arrays, write_group


ARRAYS = ("points", "sdf", "surface", "normals", "occupancy_points", "inside")


def samples_path(shape_id: str) -> str:
    return f"shapespace/samples/{shape_id}"


@dataclass(frozen=True, kw_only=True)
class PreparedShape(StageResult):
    """A shape's samples in the store, made under `fingerprint`; the normalisation that moved the
    input into the unit frame (`Normalisation.to_dict()`) and the sample counts."""

    shape_id: str
    fingerprint: str
    normalisation: dict
    counts: dict


@task(name="shapespace-samples", retries=1, retry_condition_fn=retry_unless_bad_input)
def prepare_shape_samples(shape_id: str, source: str, store_url: str, sampling: DeepSdfSamplingConfig) -> PreparedShape:
    """Normalise one mesh and store its DeepSDF samples, surface points and occupancy samples."""
    start = time.perf_counter()
    with locations.input_file(source) as local:  # one local copy of a URL's file, hashed and loaded
        key = fingerprint("shapespace-samples", locations.file_sha256(local) or source, sampling)
        root = open_store(store_url)
        path = samples_path(shape_id)
        done = finished_attrs(root, path, key)
        if done is not None:
            return PreparedShape(shape_id=shape_id, fingerprint=key, normalisation=done["normalisation"],
                                 counts=done["counts"], reused=True, seconds=time.perf_counter() - start)
        mesh, normalisation = load_normalised_mesh(local, sampling.extent)  # ShapeError naming the file
    samples = sample_shape_space(mesh, sampling)
    check_samples(samples, source)
    write_group(root, path, key, {name: getattr(samples, name) for name in ARRAYS},
                {"source": str(source), "normalisation": normalisation.to_dict(), "counts": samples.counts(),
                 "sampling": config_to_dict(sampling)})
    return PreparedShape(shape_id=shape_id, fingerprint=key, normalisation=normalisation.to_dict(),
                         counts=samples.counts(), seconds=time.perf_counter() - start)


def read_shape_samples(store_url: str, shape_id: str) -> tuple[ShapeSpaceSamples, Normalisation]:
    """A shape's stored samples and its normalisation."""
    root = open_store(store_url, mode="r")
    arrays = read_arrays(root, samples_path(shape_id), ARRAYS)
    normalisation = Normalisation.from_dict(dict(root[samples_path(shape_id)].attrs["normalisation"]))
    return ShapeSpaceSamples(*[np.asarray(a) for a in arrays]), normalisation
