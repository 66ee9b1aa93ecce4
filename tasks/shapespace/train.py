"""Training a collection's shape spaces: the DeepSDF auto-decoder (registered in MLflow as one model:
decoder and codes) and the Occupancy Network (logged and registered beside it).

Each reads the training shapes' samples from the store, trains, writes its file into the run folder
(a path or URL, `tasks.locations`) whole, logs the loss curve to its MLflow run and registers the
model tagged with the fingerprint of the samples and settings; a re-run whose fingerprint matches a
finished file reuses it.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from prefect import task

from inrcore.device import resolve_device
from inrcore.fields.weights import load_field
from inrcore.settings import config_to_dict, fingerprint
from inrcore.shapespace.autodecoder import train_auto_decoder
from inrcore.shapespace.settings import AutoDecoderConfig, OccNetConfig
from inrcore.shapespace.space import save_shape_space

from .. import locations, registry
from ..options import retry_unless_bad_input
from ..outages import ServiceUnavailable
from ..results import StageResult
from .samples import read_shape_samples


@dataclass(frozen=True, kw_only=True)
class TrainedSpace(StageResult):
    """A trained model: its file in the run folder, registry URI and version, MLflow run, fingerprint,
    and (when trained now) epochs or steps and the last logged loss."""

    path: str
    model_uri: str
    version: str
    run_id: str
    fingerprint: str
    steps: Optional[int] = None
    loss: Optional[float] = None


def space_model_name(dataset: str, kind: str) -> str:
    return f"{dataset}-{kind}"


def _reuse(path: str, key: str, tracking_uri: str, name: str, alias: str, start: float,
           read_metadata) -> Optional[TrainedSpace]:
    """The registered version tagged `key` when the run folder's file is the one it was made from."""
    try:
        with locations.local_copy(path) as local:
            made_from = read_metadata(local).get("fingerprint")
    except ServiceUnavailable:
        raise
    except Exception:  # noqa: BLE001 - a missing or unreadable file is trained again
        return None
    found = registry.find_model_version(tracking_uri, name, key) if made_from == key else None
    if found is None:
        return None
    registry.set_alias(tracking_uri, name, alias, found.version)
    return TrainedSpace(path=path, model_uri=f"models:/{name}@{alias}", version=found.version, run_id=found.run_id,
                        fingerprint=key, reused=True, seconds=time.perf_counter() - start)


@task(name="deepsdf-train", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_deepsdf(dataset: str, store_url: str, shape_ids: list[str], sample_keys: list[str], config: AutoDecoderConfig,
                  out_dir: str, tracking_uri: str, experiment_id: str, alias: str, device_name: str) -> TrainedSpace:
    """Train the auto-decoder on the shapes' stored samples; write `<out>/shapespace/deepsdf.safetensors`
    and register it as `<dataset>-deepsdf`."""
    start = time.perf_counter()
    device = resolve_device(device_name)
    config = config.for_device(device.type)  # the authors' size on CUDA unless set otherwise
    key = fingerprint("deepsdf", sample_keys, config)
    name = space_model_name(dataset, "deepsdf")
    path = locations.join(out_dir, "shapespace", "deepsdf.safetensors")
    reused = _reuse(path, key, tracking_uri, name, alias, start, lambda p: load_field(p)[2])
    if reused is not None:
        return reused
    shapes = []
    for shape_id in shape_ids:
        samples, _ = read_shape_samples(store_url, shape_id)
        shapes.append((samples.points, samples.sdf))
    run_id = registry.start_run(tracking_uri, experiment_id, run_name="deepsdf",
                                params={"training": config_to_dict(config), "shapes": len(shape_ids)},
                                tags={"inrflow.dataset": dataset, "inrflow.stage": "deepsdf-train"})
    with registry.ending_run(tracking_uri, run_id):
        log = lambda e: registry.log_metrics(tracking_uri, run_id, {"train/loss": e["loss"]}, e["epoch"])  # noqa: E731
        result = train_auto_decoder(shapes, config, device, on_log=log)
        registry.log_metrics(tracking_uri, run_id, {"train/seconds_total": result.seconds, "train/epochs": result.epochs,
                                                    "train/steps_total": result.steps})
        metadata = {"dataset": dataset, "fingerprint": key, "training": config_to_dict(config)}
        locations.write_file(path, lambda tmp: save_shape_space(tmp, result, shape_ids, metadata))
        spec, params = result.spec, {**result.params, "codes": result.codes}
        uri, version = registry.register_field(
            tracking_uri, run_id, name, alias, spec, params,
            metadata={**metadata, "kind": "deepsdf-shape-space", "shape_ids": list(shape_ids),
                      "latent": int(result.codes.shape[1])},
            fingerprint=key, description="DeepSDF shape space (decoder and codes) trained by inrflow")
    loss = result.history[-1]["loss"] if result.history else None
    return TrainedSpace(path=path, model_uri=uri, version=version, run_id=run_id, fingerprint=key,
                        steps=result.steps, loss=loss, seconds=time.perf_counter() - start)


@task(name="occnet-train", retries=1, retry_condition_fn=retry_unless_bad_input)
def train_occupancy_network(dataset: str, store_url: str, shape_ids: list[str], sample_keys: list[str],
                            config: OccNetConfig, out_dir: str, tracking_uri: str, experiment_id: str, alias: str,
                            device_name: str) -> TrainedSpace:
    """Train the Occupancy Network on the shapes' surface and occupancy samples; write
    `<out>/shapespace/occnet.safetensors`, log it to its MLflow run and register it as `<dataset>-occnet`."""
    from inrcore.shapespace.occnet import load_occnet, save_occnet
    from inrcore.shapespace.occnet_training import train_occnet
    from inrcore.shapespace.samples import occupancy_shape

    start = time.perf_counter()
    device = resolve_device(device_name)
    config = config.for_device(device.type)
    key = fingerprint("occnet", sample_keys, config)
    name = space_model_name(dataset, "occnet")
    path = locations.join(out_dir, "shapespace", "occnet.safetensors")
    reused = _reuse(path, key, tracking_uri, name, alias, start, lambda p: load_occnet(p)[2])
    if reused is not None:
        return reused
    shapes = []
    for shape_id in shape_ids:
        samples, _ = read_shape_samples(store_url, shape_id)
        shapes.append(occupancy_shape(samples))
    run_id = registry.start_run(tracking_uri, experiment_id, run_name="occnet",
                                params={"occnet": config_to_dict(config), "shapes": len(shape_ids)},
                                tags={"inrflow.dataset": dataset, "inrflow.stage": "occnet-train"})
    with registry.ending_run(tracking_uri, run_id):
        log = lambda e: registry.log_metrics(tracking_uri, run_id, {"train/loss": e["loss"]}, e["step"])  # noqa: E731
        result = train_occnet(shapes, config, device, on_log=log)
        if result.thresholds:  # chosen on the training shapes: each candidate's median IoU, and the choice
            registry.log_metrics(tracking_uri, run_id, {"threshold": result.config.threshold, **{
                f"threshold_iou/{t:.2f}": iou for t, iou in result.thresholds.items()}}, result.steps)
        with tempfile.TemporaryDirectory(prefix="inrflow-occnet-") as folder:
            local = Path(folder) / "occnet.safetensors"
            save_occnet(local, result.params, result.config, {"dataset": dataset, "fingerprint": key})
            locations.copy_to(local, path)
            uri, version = registry.register_occnet(tracking_uri, run_id, name, alias, local, key)
    loss = result.history[-1]["loss"] if result.history else None
    return TrainedSpace(path=path, model_uri=uri, version=version, run_id=run_id, fingerprint=key,
                        steps=result.steps, loss=loss, seconds=time.perf_counter() - start)
