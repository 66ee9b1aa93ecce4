"""Training: stored samples -> a fitted SDF, tracked in MLflow and registered.

`train_sdf` fits one shape; `train_sdf_batch` fits several shapes together with stacked
weights (`inrcore.sdf.batched.fit_sdf_batch`). Both record each shape the same way: one MLflow
run with the settings and the loss curve, one registered model version tagged with the
fingerprint of the samples and the training settings, so either reuses what the other made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from prefect import task

from inrcore.device import free_memory, resolve_device
from inrcore.sdf.batched import fit_sdf_batch, shape_step_bytes, shapes_for_memory
from inrcore.sdf.settings import TrainConfig
from inrcore.sdf.training import FitResult, fit_sdf
from inrcore.settings import config_to_dict, execution_only_fields, fingerprint, result_settings

from .. import registry
from ..cluster import workers_on_this_machine
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import open_store, volume_sdf_of


# Settings that change how shapes are trained, not what is fitted: left out of the fingerprint.
EXECUTION_ONLY = execution_only_fields(TrainConfig)


@dataclass
class StoredSamples:
    """One shape's training samples from the store: surface_points [S, 3], surface_normals [S, 3],
    volume_points [V, 3], volume_sdf [V] (None for point clouds: distances unknown), and the
    normalisation (a dict)."""

    surface_points: np.ndarray
    surface_normals: np.ndarray
    volume_points: np.ndarray
    volume_sdf: Optional[np.ndarray]
    normalisation: dict

    def for_fit(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(surface_points, surface_normals, volume_points, volume_sdf), as `fit_sdf_batch` takes them."""
        return self.surface_points, self.surface_normals, self.volume_points, self.volume_sdf


def training_fingerprint(samples_fingerprint: str, config: TrainConfig) -> str:
    """The registry tag of a field fitted from these samples with these settings.

    `result_settings` leaves out the execution-only ones (a shape trained in a batch is the field
    it would be alone, and fingerprints stay those of configs that predate them) and the iso-point
    settings while iso-points are off (they change nothing).
    """
    return fingerprint("field", samples_fingerprint, result_settings(config))


def read_samples(store_url: str, shape_id: str) -> StoredSamples:
    """`samples/<shape_id>` from the store: the first `n_surface` rows are surface points."""
    group = open_store(store_url, mode="r")[f"samples/{shape_id}"]
    n_surface = int(group.attrs["n_surface"])
    points = np.asarray(group["points"][...])
    normals = np.asarray(group["normals"][...])
    return StoredSamples(points[:n_surface], normals[:n_surface], points[n_surface:],
                         volume_sdf_of(group, n_surface), dict(group.attrs["normalisation"]))


@dataclass(frozen=True, kw_only=True)
class TrainedField(StageResult):
    """A shape's fitted field in the registry: `model_uri` (models:/<name>@<alias>), its version,
    MLflow run and fingerprint; steps, final loss and device of a fit made now (None when reused).
    A shape trained in a batch also says how many shapes trained with it (`batch_shapes`)."""

    model_uri: str
    model_name: str
    version: str
    run_id: str
    fingerprint: str
    steps: Optional[int] = None
    loss: Optional[float] = None
    device: Optional[str] = None
    batch_shapes: Optional[int] = None


def reuse_registered(tracking_uri: str, name: str, key: str, alias: str, start: float) -> Optional[TrainedField]:
    """When a version of `name` tagged `key` exists: point `alias` at it and return its result, else None."""
    found = registry.find_model_version(tracking_uri, name, key)
    if found is None:
        return None
    registry.set_alias(tracking_uri, name, alias, found.version)
    return TrainedField(model_uri=f"models:/{name}@{alias}", model_name=name, version=found.version,
                        run_id=found.run_id, fingerprint=key, reused=True, seconds=time.perf_counter() - start)


def start_training_run(tracking_uri: str, experiment_id: str, shape_id: str, dataset: str,
                       samples_fingerprint: str, config: TrainConfig) -> str:
    """An MLflow run for one shape's training, with its settings as parameters; returns the run id."""
    return registry.start_run(
        tracking_uri, experiment_id, run_name=shape_id,
        params={"training": config_to_dict(config), "shape_id": shape_id, "dataset": dataset,
                "samples_fingerprint": samples_fingerprint},
        tags={"inrflow.shape_id": shape_id, "inrflow.dataset": dataset, "inrflow.stage": "train"},
    )


def loss_logger(tracking_uri: str, run_id: str) -> Callable[[dict], None]:
    """A history-entry callback logging "train/<term>" metrics to the run at the entry's step."""
    def log(entry: dict) -> None:
        registry.log_metrics(tracking_uri, run_id, {f"train/{k}": v for k, v in entry.items() if k != "step"},
                             entry["step"])
    return log


def register_fit(tracking_uri: str, run_id: str, name: str, alias: str, key: str, result: FitResult,
                 shape_id: str, dataset: str, samples: StoredSamples, config: TrainConfig) -> tuple[str, str]:
    """Log the run's totals and register the fitted field; returns (model URI, version)."""
    registry.log_metrics(tracking_uri, run_id, {"train/seconds_total": result.seconds,
                                                "train/steps_total": result.steps})
    return registry.register_field(
        tracking_uri, run_id, name, alias, result.spec, result.params,
        metadata={"shape_id": shape_id, "dataset": dataset, "fingerprint": key,
                  "normalisation": samples.normalisation, "training": config_to_dict(config)},
        fingerprint=key,
    )


def trained_result(model_uri: str, name: str, version: str, run_id: str, key: str, seconds: float,
                   result: FitResult, **batch) -> TrainedField:
    """A training task's result for one shape fitted now (`batch`: batch_shapes and batch_seconds)."""
    return TrainedField(model_uri=model_uri, model_name=name, version=version, run_id=run_id, fingerprint=key,
                        seconds=seconds, steps=result.steps, loss=result.history[-1]["loss"], device=result.device,
                        **batch)


@task(name="train-sdf", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_sdf(
    shape_id: str,
    dataset: str,
    store_url: str,
    samples_fingerprint: str,
    training: TrainConfig,
    tracking_uri: str,
    experiment_id: str,
    alias: str,
) -> TrainedField:
    """Fit the shape's field, log the run (parameters, loss curve) and register the model.

    A registered version made from the same samples and training settings is reused: the
    alias is pointed at it and nothing is retrained.
    """
    start = time.perf_counter()
    config = training
    key = training_fingerprint(samples_fingerprint, config)
    name = registry.model_name(dataset, shape_id)
    reused = reuse_registered(tracking_uri, name, key, alias, start)
    if reused is not None:
        return reused

    samples = read_samples(store_url, shape_id)
    run_id = start_training_run(tracking_uri, experiment_id, shape_id, dataset, samples_fingerprint, config)
    with registry.ending_run(tracking_uri, run_id):
        result = fit_sdf(samples.surface_points, samples.surface_normals, samples.volume_points, config,
                         volume_sdf=samples.volume_sdf, on_log=loss_logger(tracking_uri, run_id))
        model_uri, version = register_fit(tracking_uri, run_id, name, alias, key, result, shape_id, dataset,
                                          samples, config)
    return trained_result(model_uri, name, version, run_id, key, time.perf_counter() - start, result)


@dataclass(frozen=True)
class BatchPlan:
    """How many shapes a stacked training task takes (`plan_training_batch`), and from what: the
    device, its free bytes, the Dask workers on its machine sharing it, the bytes one shape takes."""

    shapes: int
    device: str
    free_bytes: int = 0
    workers_sharing: int = 1
    shape_bytes: int = 0


@task(name="plan-training-batch")
def plan_training_batch(training: TrainConfig, surface_samples: int, volume_samples: int) -> BatchPlan:
    """Shapes per stacked training task for `shapes_per_batch: auto`, decided on a worker, for the device
    it trains on: on a GPU as many as fit in 80% of its free memory shared among the Dask workers of its
    machine (`inrcore.sdf.batched.shape_step_bytes` of one shape with that many stored samples); on the
    CPU 1 (stacking does not pay there, BENCHMARKS.md)."""
    device = resolve_device(training.device)
    if device.type != "cuda":
        return BatchPlan(shapes=1, device=str(device))
    free, sharing = free_memory(device), workers_on_this_machine()
    per_shape = shape_step_bytes(training, surface_samples, volume_samples)
    return BatchPlan(shapes=shapes_for_memory(free // sharing, per_shape), device=str(device), free_bytes=free,
                     workers_sharing=sharing, shape_bytes=per_shape)


@task(name="train-sdf-batch", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_sdf_batch(
    shape_ids: list[str],
    dataset: str,
    store_url: str,
    samples_fingerprints: list[str],
    training: TrainConfig,
    tracking_uri: str,
    experiment_id: str,
    alias: str,
) -> list[TrainedField]:
    """Fit several shapes' fields together (stacked weights, one device), each recorded as
    `train_sdf` records it: its own MLflow run and registered version, with the fingerprint
    `train_sdf` would give it, so a shape registered either way is reused and not retrained.

    Returns one `train_sdf` result per shape, in the order of `shape_ids`. A shape trained
    here reports its share of the batch's time as "seconds" and also carries
    "batch_shapes" (how many shapes trained together) and "batch_seconds" (the task's time).
    """
    start = time.perf_counter()
    if len(samples_fingerprints) != len(shape_ids):
        raise ValueError(f"{len(shape_ids)} shapes but {len(samples_fingerprints)} samples fingerprints")
    config = training
    keys = [training_fingerprint(fp, config) for fp in samples_fingerprints]
    names = [registry.model_name(dataset, shape_id) for shape_id in shape_ids]
    outcomes: list[Optional[TrainedField]] = [reuse_registered(tracking_uri, name, key, alias, start)
                                              for name, key in zip(names, keys)]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if not todo:
        return outcomes

    samples = {i: read_samples(store_url, shape_ids[i]) for i in todo}
    run_ids = {i: start_training_run(tracking_uri, experiment_id, shape_ids[i], dataset, samples_fingerprints[i],
                                     config) for i in todo}
    loggers = [loss_logger(tracking_uri, run_ids[i]) for i in todo]
    unfinished = set(todo)
    registered: dict[int, tuple[FitResult, str, str]] = {}
    try:
        results = fit_sdf_batch([samples[i].for_fit() for i in todo], config,
                                on_log=lambda position, entry: loggers[position](entry))
        for i, result in zip(todo, results):
            model_uri, version = register_fit(tracking_uri, run_ids[i], names[i], alias, keys[i], result,
                                              shape_ids[i], dataset, samples[i], config)
            registry.end_run(tracking_uri, run_ids[i])
            unfinished.discard(i)
            registered[i] = (result, model_uri, version)
    except BaseException:
        for i in sorted(unfinished):
            registry.end_run(tracking_uri, run_ids[i], "FAILED")
        raise
    seconds = time.perf_counter() - start
    for i, (result, model_uri, version) in registered.items():
        outcomes[i] = trained_result(model_uri, names[i], version, run_ids[i], keys[i], seconds / len(todo), result,
                                     batch_shapes=len(todo), batch_seconds=seconds)
    return outcomes
