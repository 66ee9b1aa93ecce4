"""The shape-collection flow: every shape through prepare -> train -> evaluate -> extract, then the
query stages and the skeleton stage the settings switch on.

Each shape's stages are chained by this flow as soon as the previous one finishes, so
shapes move through the pipeline independently on the Dask cluster; a shape whose stage
fails stops there, its error is recorded, and the others go on. With
`training.shapes_per_batch` > 1, shapes whose samples are ready are trained together in
batches of that size (one `train_sdf_batch` task each; a batch starts when full, or when no
more shapes are being prepared), then go on one by one; a batch that fails fails its shapes
only. Fits with iso-points train shape by shape. Every
stage keeps its own "finished" record (Zarr attributes, registry tags, a JSON
record), so running the flow again after an interruption reuses what was done.
"""

from __future__ import annotations

from typing import Optional, Union

from prefect import flow

from flows.collection import run_collection
from flows.manifest import DatasetManifest
from flows.stages import StageChain, new_record, progress_printer
from inrcore.sdf.settings import TrainConfig
from inrcore.settings import config_to_dict
from inrcore.skeleton.settings import CollectionConfig
from tasks.queries.isopoints import extract_isopoints
from tasks.queries.rangemesh import range_mesh_field
from tasks.report import write_report
from tasks.sdf.evaluate import evaluate_field
from tasks.sdf.prepare import prepare_samples
from tasks.sdf.surface import extract_surface
from tasks.sdf.train import plan_training_batch, train_sdf, train_sdf_batch
from tasks.skeleton.skeletons import (
    fit_skeleton_field,
    link_skeleton,
    select_skeleton_balls,
    trace_skeleton_candidates,
)
from tasks.tracking import setup_tracking


STAGES = ("prepare", "train", "evaluate", "extract")
SKELETON_STAGES = ("skeleton-field", "skeleton-trace", "skeleton-select", "skeleton-link")


def stages_for(config: CollectionConfig) -> tuple[str, ...]:
    """Every shape's stages: STAGES, then the query stages `config.queries` switches on, then the
    skeleton's when `config.skeleton.enabled` (its field stage for the neural method only)."""
    queries, skeleton = config.queries, config.skeleton
    stages = STAGES + (("isopoints",) if queries.isopoints else ()) + (("range-mesh",) if queries.range_mesh else ())
    if skeleton.enabled:
        stages += SKELETON_STAGES if skeleton.method == "neural" else SKELETON_STAGES[1:]
    return stages


@flow(name="sdf-collection")
def sdf_collection(
    manifest: Union[str, DatasetManifest],
    out_dir: Optional[str] = None,
    store_url: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    dask_address: Optional[str] = None,
    workers: int = 2,
    overrides: Optional[dict] = None,
    quiet: bool = False,
) -> dict:
    """Fit, evaluate, mesh and measure a neural SDF for every shape of a dataset manifest.

    Args:
        manifest: a dataset manifest (YAML) or a folder of shape files, or one already read
            (`flows.manifest.read_manifest`, as `inr run` does to name the run folder first).
        out_dir: the run folder (default runs/<dataset name>).
        store_url: Zarr store path or fsspec URL (default <out_dir>/store.zarr).
        tracking_uri: MLflow tracking URI (default SQLite in the run folder).
        dask_address: an existing Dask scheduler; default a LocalCluster of `workers` processes.
        overrides: nested settings over the manifest's config, e.g. {"training": {"steps": 500}}.
        quiet: no progress lines.
    Returns:
        the summary: dataset, settings, per-shape records, counts, report paths.
    """
    return run_collection(_run_shapes, "config", manifest, out_dir, store_url, tracking_uri, dask_address, workers,
                          overrides, quiet)


@flow(name="sdf-collection-shapes")
def _run_shapes(dataset: str, shapes: list, config: CollectionConfig, where: dict, quiet: bool = False) -> dict:
    say = progress_printer(quiet)
    experiment_id = setup_tracking(where["tracking_uri"], f"inrflow-{dataset}", where["artifact_location"])
    records = {sid: _new_record(sid, path) for sid, path in shapes}

    def submit(shape_id: str, stage: str):
        r, source = chain.results[shape_id], records[shape_id]["source"]
        if stage == "prepare":
            return prepare_samples.submit(shape_id, source, where["store_url"], config.sampling)
        if stage == "train":
            return train_sdf.submit(shape_id, dataset, where["store_url"], r["prepare"].fingerprint,
                                    config.training, where["tracking_uri"], experiment_id, config.alias)
        if stage.startswith("skeleton-"):
            return submit_skeleton(shape_id, source, stage, r)
        trained = r["train"]
        if stage == "evaluate":
            return evaluate_field.submit(shape_id, where["store_url"], trained.model_uri, trained.fingerprint,
                                         config.grid, where["tracking_uri"])
        if stage == "isopoints":
            return extract_isopoints.submit(shape_id, where["store_url"], trained.model_uri, trained.fingerprint,
                                            config.queries.isopoints, where["tracking_uri"], trained.run_id)
        if stage == "range-mesh":
            return range_mesh_field.submit(shape_id, where["store_url"], trained.model_uri, trained.fingerprint,
                                           config.queries.range, where["out_dir"], where["tracking_uri"],
                                           trained.run_id)
        return extract_surface.submit(shape_id, source, r["prepare"].normalisation, where["store_url"],
                                      r["evaluate"].fingerprint, where["out_dir"], config.metrics,
                                      where["tracking_uri"], trained.run_id)

    def submit_skeleton(shape_id: str, source: str, stage: str, r: dict):
        skeleton, store = config.skeleton, where["store_url"]
        if stage == "skeleton-field":
            return fit_skeleton_field.submit(shape_id, source, store, skeleton)
        if stage == "skeleton-trace":
            return trace_skeleton_candidates.submit(shape_id, source, store, skeleton, r.get("skeleton-field"))
        if stage == "skeleton-select":
            return select_skeleton_balls.submit(shape_id, store, skeleton, r["skeleton-trace"])
        return link_skeleton.submit(shape_id, source, store, skeleton, r["skeleton-trace"], r["skeleton-select"],
                                    where["out_dir"], where["tracking_uri"], r["train"].run_id)

    # With shapes_per_batch > 1, shapes ready to train wait here and train in batch tasks that
    # return one result per shape: a full batch at once, the rest when no shape is still preparing.
    batch_size = training_batch_size(config.training)
    if batch_size == "auto":  # decided on a worker, for the device it trains on
        sampling = config.sampling
        plan = plan_training_batch.submit(config.training, sampling.n_surface,
                                          sampling.n_near + sampling.n_uniform).result()
        batch_size = plan.shapes
        say(f"training: {plan.shapes} shape(s) per batch on {plan.device}" + (
            f" ({plan.free_bytes / 2**30:.1f} GiB free, {plan.workers_sharing} worker(s) sharing it, "
            f"{plan.shape_bytes / 2**20:.0f} MiB a shape)" if plan.free_bytes else ""))
    waiting_to_train: list[str] = []

    def hold(shape_id: str, stage: str) -> bool:
        if stage == "train" and batch_size > 1:
            waiting_to_train.append(shape_id)
            return True
        return False

    def launch_training_batches() -> None:
        for batch in training_batches(waiting_to_train, batch_size, more_coming=chain.running("prepare")):
            future = train_sdf_batch.submit(batch, dataset, where["store_url"],
                                            [chain.results[sid]["prepare"].fingerprint for sid in batch],
                                            config.training, where["tracking_uri"], experiment_id, config.alias)
            chain.watch(future, tuple(batch), "train", batched=True)

    chain = StageChain(stages_for(config), submit, records, say,
                       on_complete=lambda sid: _finish_record(records[sid], chain.results[sid]),
                       hold=hold, after_event=launch_training_batches)
    say(f"inrflow: {len(shapes)} shape(s) of '{dataset}' -> {where['out_dir']}")
    seconds = chain.run([sid for sid, _ in shapes])

    ordered = [records[sid] for sid, _ in shapes]
    settings = {"config": config_to_dict(config), **where, "shapes_per_batch": batch_size}
    paths = write_report(where["out_dir"], dataset, ordered, settings, seconds)
    say(paths["table"])
    say(f"report: {paths['report']}\nsummary: {paths['summary']}")
    return {"dataset": dataset, "shapes": ordered, "report": paths["report"], "summary": paths["summary"],
            "ok": sum(r["status"] == "ok" for r in ordered), "failed": sum(r["status"] == "failed" for r in ordered),
            "seconds": seconds, **where}


def training_batch_size(training: TrainConfig) -> Union[int, str]:
    """Shapes per training task: `shapes_per_batch` (a number, or "auto": `plan_training_batch`
    decides), or 1 for fits with iso-points, which train shape by shape (every network kind trains
    stacked otherwise)."""
    if training.isopoints.enabled:
        return 1
    return training.shapes_per_batch


def training_batches(waiting: list[str], size: int, more_coming: bool) -> list[list[str]]:
    """Take the batches to train now out of `waiting` (shape ids, in the order they got ready):
    every full batch of `size`, and the rest too when no more shapes are coming."""
    batches = []
    while len(waiting) >= size or (waiting and not more_coming):
        batches.append(waiting[:size])
        del waiting[:size]
    return batches


def _new_record(shape_id: str, source: str) -> dict:
    return new_record(shape_id, source, metrics=None, images={"input": None, "reconstruction": None},
                      model_uri=None, mesh_path=None)


def _finish_record(record: dict, results: dict) -> None:
    extract, train = results["extract"], results["train"]
    record.update(status="ok", metrics=extract.metrics, images=extract.images, mesh_path=extract.mesh_path,
                  model_uri=train.model_uri, model_version=train.version, mlflow_run_id=train.run_id,
                  field=results["evaluate"].path)
    if "isopoints" in results:
        record["isopoints"] = {"path": results["isopoints"].path, "count": results["isopoints"].count}
    if "skeleton-link" in results:
        linked = results["skeleton-link"]
        record["skeleton"] = {"path": linked.path, **linked.counts, "files": linked.files,
                              "cover": linked.metrics["cover"]["method"], "uncovered": linked.metrics["uncovered"]}
        record["images"] = {**record["images"], "skeleton": linked.files["image"]}
    if "range-mesh" in results:
        ranged = results["range-mesh"]
        record["range_mesh"] = {"mesh_path": ranged.mesh_path, **{key: ranged.stats[key] for key in (
            "evaluations", "box_evaluations", "point_evaluations", "vertices", "faces")}}

