"""Training: stored samples -> a fitted SIREN SDF, tracked in MLflow and registered."""

from __future__ import annotations

import time

import numpy as np
from prefect import task

from inrcore.config import TrainConfig, config_from_dict, config_to_dict, fingerprint
from inrcore.training import fit_sdf

from . import registry
from .options import retry_unless_bad_input
from .store import open_store


@task(name="train-sdf", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_sdf(
    shape_id: str,
    dataset: str,
    store_url: str,
    samples_fingerprint: str,
    training: dict,
    tracking_uri: str,
    experiment_id: str,
    alias: str,
) -> dict:
    """Fit the shape's field, log the run (parameters, loss curve) and register the model.

    A registered version made from the same samples and training settings is reused: the
    alias is pointed at it and nothing is retrained.

    Returns {"model_uri", "model_name", "version", "run_id", "fingerprint", "reused",
    "seconds", "steps", "loss", "device"}.
    """
    start = time.perf_counter()
    config = config_from_dict(TrainConfig, training, "training")
    key = fingerprint("field", samples_fingerprint, config)
    name = registry.model_name(dataset, shape_id)
    found = registry.find_model_version(tracking_uri, name, key)
    if found is not None:
        registry.set_alias(tracking_uri, name, alias, found.version)
        return {"model_uri": f"models:/{name}@{alias}", "model_name": name, "version": found.version,
                "run_id": found.run_id, "fingerprint": key, "reused": True,
                "seconds": time.perf_counter() - start, "steps": None, "loss": None, "device": None}

    group = open_store(store_url, mode="r")[f"samples/{shape_id}"]
    n_surface = int(group.attrs["n_surface"])
    points = np.asarray(group["points"][...])
    normals = np.asarray(group["normals"][...])

    run_id = registry.start_run(
        tracking_uri, experiment_id, run_name=shape_id,
        params={"training": config_to_dict(config), "shape_id": shape_id, "dataset": dataset,
                "samples_fingerprint": samples_fingerprint},
        tags={"inrflow.shape_id": shape_id, "inrflow.dataset": dataset, "inrflow.stage": "train"},
    )
    try:
        def log(entry: dict) -> None:
            registry.log_metrics(tracking_uri, run_id,
                                 {f"train/{k}": v for k, v in entry.items() if k != "step"}, entry["step"])

        sdf = np.asarray(group["sdf"][n_surface:])
        result = fit_sdf(points[:n_surface], normals[:n_surface], points[n_surface:], config, volume_sdf=sdf, on_log=log)
        registry.log_metrics(tracking_uri, run_id, {"train/seconds_total": result.seconds,
                                                    "train/steps_total": result.steps})
        model_uri, version = registry.register_field(
            tracking_uri, run_id, name, alias, result.spec, result.params,
            metadata={"shape_id": shape_id, "dataset": dataset, "fingerprint": key,
                      "normalisation": dict(group.attrs["normalisation"]), "training": config_to_dict(config)},
            fingerprint=key,
        )
    except BaseException:
        registry.end_run(tracking_uri, run_id, "FAILED")
        raise
    registry.end_run(tracking_uri, run_id)
    return {"model_uri": model_uri, "model_name": name, "version": version, "run_id": run_id,
            "fingerprint": key, "reused": False, "seconds": time.perf_counter() - start,
            "steps": result.steps, "loss": result.history[-1]["loss"], "device": result.device}
