"""The shape-space flow: a collection's samples -> a DeepSDF shape space and an Occupancy Network
trained on its "train" shapes -> held-out reconstruction, completion from partial scans at each
depth-noise level, Occupancy Network reconstructions, a latent interpolation -> metrics and report.

Sample preparation, meshing and measuring are one Dask task per shape; training is one task per
model (the two train side by side); code fitting one task per mode. A shape whose samples cannot be
made fails alone (recorded with its error). Every stage keeps its finished record (Zarr groups,
registry tags, files), so a re-run reuses what was done. Writes `shapespace_summary.json`,
`shapespace_report.html` and the pictures under `<run>/shapespace/`.
"""

from __future__ import annotations

import statistics
from typing import Optional, Union

from prefect import flow

from flows.collection import run_collection
from flows.manifest import DatasetManifest
from flows.stages import error_message, progress_printer
from inrcore.report import report_html
from inrcore.settings import config_to_dict
from inrcore.shapespace.settings import ShapeSpaceConfig
from tasks import locations
from tasks.report import local_pictures
from tasks.shapespace.members import (
    fit_shape_codes,
    interpolate_shapes,
    log_held_out,
    measure_member,
    measure_occnet,
    mode_name,
)
from tasks.shapespace.samples import prepare_shape_samples
from tasks.shapespace.train import train_deepsdf, train_occupancy_network
from tasks.tracking import setup_tracking


METRICS = ("chamfer_l1", "fscore", "normal_consistency")


@flow(name="shapespace-collection")
def shapespace_collection(
    manifest: Union[str, DatasetManifest],
    out_dir: Optional[str] = None,
    store_url: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    dask_address: Optional[str] = None,
    workers: int = 2,
    overrides: Optional[dict] = None,
    quiet: bool = False,
) -> dict:
    """Learn shape spaces of a manifest's "train" shapes and measure them on its "test" shapes.

    Args: as `flows.pipeline.sdf_collection`; `overrides` apply to the manifest's `shapespace`
    settings (`ShapeSpaceConfig`), e.g. {"training": {"seconds": 600}}.
    Returns: the summary (dataset, settings, models, per-shape records, aggregate metrics, paths).
    """
    return run_collection(_run_space, "shapespace", manifest, out_dir, store_url, tracking_uri, dask_address, workers,
                          overrides, quiet, row=lambda s: (s.shape_id, s.path, s.split))


def _outcome(future):
    """(result, None) or (None, error text) of a submitted task."""
    try:
        return future.result(), None
    except Exception as exc:  # noqa: BLE001 - one shape's failure is recorded, not raised
        return None, error_message(exc)


@flow(name="shapespace-collection-shapes")
def _run_space(dataset: str, shapes: list, config: ShapeSpaceConfig, where: dict, quiet: bool = False) -> dict:
    say = progress_printer(quiet)
    experiment_id = setup_tracking(where["tracking_uri"], f"inrflow-{dataset}-shapespace", where["artifact_location"])
    out, store, tracking = where["out_dir"], where["store_url"], where["tracking_uri"]
    say(f"inrflow shapespace: {len(shapes)} shape(s) of '{dataset}' -> {out}")
    records = {sid: {"shape_id": sid, "source": path, "split": split, "status": "ok", "metrics": {}, "images": {}}
               for sid, path, split in shapes}

    futures = {sid: prepare_shape_samples.submit(sid, path, store, config.sampling) for sid, path, _ in shapes}
    prepared = {}
    for sid, future in futures.items():
        result, error = _outcome(future)
        if error:
            records[sid].update(status="failed", error=error, stage="samples")
            say(f"{sid:<16} failed: {error}")
        else:
            prepared[sid] = result
    train = [sid for sid, _, split in shapes if split == "train" and sid in prepared]
    test = [sid for sid, _, split in shapes if split == "test" and sid in prepared]
    if not train:
        raise ValueError(f"{dataset}: no training shape could be prepared (the manifest's 'train' split is empty "
                         "or every one failed)")
    say(f"samples ready: {len(train)} train, {len(test)} test; training the shape space(s)")
    keys = [prepared[sid].fingerprint for sid in train]
    deepsdf = train_deepsdf.submit(dataset, store, train, keys, config.training, out, tracking, experiment_id,
                                   config.alias, config.device)
    occnet = (train_occupancy_network.submit(dataset, store, train, keys, config.occnet, out, tracking, experiment_id,
                                             config.alias, config.device) if config.occnet_enabled else None)
    space = deepsdf.result()
    say(f"deepsdf: {space.model_uri} (version {space.version}, {'reused' if space.reused else f'{space.steps} steps'})")

    sources = [records[sid]["source"] for sid in test]
    modes = [("reconstruct", 0.0)] + [("complete", float(a)) for a in config.noise_levels]
    fits = {mode_name(m, a): fit_shape_codes.submit(store, space.path, space.fingerprint, test, sources, m, a,
                                                     config.fitting, config.scan, config.device)
            for m, a in modes} if test else {}
    interpolation = None
    if config.interpolations and len(train) >= 2:
        interpolation = interpolate_shapes.submit(space.path, train[0], train[-1], config.interpolation_steps,
                                                  config.mesh, out, config.device)
    members = []
    for name, future in fits.items():
        codes, error = _outcome(future)
        if error:
            for sid in test:
                records[sid]["metrics"][f"{name}/error"] = error
            continue
        members += [measure_member.submit(sid, records[sid]["source"], store, space.path, codes, config.mesh,
                                          config.metrics, out, config.device) for sid in test]
    occnet_model = None
    if occnet is not None:
        occnet_model, error = _outcome(occnet)
        if error:
            say(f"occnet: failed: {error}")
        else:
            members += [measure_occnet.submit(sid, records[sid]["source"], store, occnet_model.path, i, config.mesh,
                                              config.metrics, out, config.device) for i, sid in enumerate(test)]
    for future in members:
        result, error = _outcome(future)
        if error:
            say(f"member failed: {error}")
            continue
        record = records[result.shape_id]
        record["metrics"].update({f"{result.mode}/{k}": v for k, v in result.metrics.items()})
        record["images"][result.mode] = result.image

    aggregate = _aggregate([records[sid] for sid in test])
    strip = _outcome(interpolation)[0] if interpolation is not None else None
    shown = list(fits) + ["occnet"]
    pictures = [records[sid]["images"][m] for m in shown for sid in test if m in records[sid]["images"]]
    grid = _outcome(log_held_out.submit(tracking, space.run_id, aggregate, pictures, out, max(len(test), 1)))[0]
    ordered = [records[sid] for sid, _, _ in shapes]
    summary = {"dataset": dataset, "settings": {"config": config_to_dict(config), **where},
               "deepsdf": {"model_uri": space.model_uri, "version": space.version, "path": space.path,
                           "reused": space.reused, "steps": space.steps, "loss": space.loss},
               "occnet": None if occnet_model is None else {"model_uri": occnet_model.model_uri,
                                                            "version": occnet_model.version, "path": occnet_model.path},
               "aggregate": aggregate, "interpolation": strip, "grid": grid, "shapes": ordered,
               "ok": sum(r["status"] == "ok" for r in ordered), "failed": sum(r["status"] == "failed" for r in ordered)}
    summary_path = locations.write_json(locations.join(out, "shapespace_summary.json"), summary)
    report = _write_report(out, dataset, [records[sid] for sid in test], summary, [m for m, _ in fits.items()])
    for key, value in sorted(aggregate.items()):
        say(f"  {key:<40} {value:.4g}")
    say(f"report: {report}\nsummary: {summary_path}")
    return {**summary, "summary": summary_path, "report": report, **where}


def _aggregate(records: list[dict]) -> dict:
    """Mean and median over the held-out shapes of every "<mode>/<metric>" present: "<mode>/<metric>@mean"."""
    values: dict[str, list[float]] = {}
    for record in records:
        for key, value in record["metrics"].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values.setdefault(key, []).append(float(value))
    out = {}
    for key, items in values.items():
        out[f"{key}@mean"] = statistics.fmean(items)
        out[f"{key}@median"] = statistics.median(items)
    return out


def _write_report(out: str, dataset: str, records: list[dict], summary: dict, modes: list[str]) -> str:
    shown = [{**r, "metrics": {k.replace("/", " "): v for k, v in r["metrics"].items()}} for r in records]
    names = tuple(f"{m} {k}" for m in modes[:2] for k in METRICS[:1]) + ("occnet iou",)
    roles = tuple(modes[:2]) + (("occnet",) if any("occnet" in r["images"] for r in records) else ())
    with local_pictures(shown) as pictured:
        page = report_html(f"inrflow: {dataset} (shape spaces)", pictured, summary["settings"], metric_names=names,
                           picture_roles=roles)
    return locations.write_text(locations.join(out, "shapespace_report.html"), page)
