"""The NeRF collection flow: every shape (a mesh or a scene folder) through scene -> rays -> train.

Each shape's stages start as soon as its previous stage finishes (`flows.stages.StageChain`),
spread over the Dask cluster; a shape whose stage fails stops there with its error recorded
and the others go on. At the end, `nerf_summary.json` and `report.html` (PSNR, SSIM, test
views, depth, loss and PSNR curves, stage timings) go into the run folder. Every stage keeps a "finished" record, so running the flow again reuses what was done,
and training resumes from its last checkpoint after a crash.
"""

from __future__ import annotations

from typing import Optional, Union

from prefect import flow

from flows.collection import run_collection
from flows.manifest import DatasetManifest
from flows.stages import StageChain, new_record, progress_printer
from inrcore.nerf.settings import NerfPipelineConfig
from inrcore.settings import config_to_dict
from tasks import locations
from tasks.nerf.rays import generate_rays
from tasks.nerf.scenes import make_scene
from tasks.nerf.training import train_nerf
from tasks.report import write_nerf_report
from tasks.tracking import setup_tracking


NERF_STAGES = ("scene", "rays", "train")


@flow(name="nerf-collection")
def nerf_collection(
    manifest: Union[str, DatasetManifest],
    out_dir: Optional[str] = None,
    store_url: Optional[str] = None,
    tracking_uri: Optional[str] = None,
    dask_address: Optional[str] = None,
    workers: int = 2,
    overrides: Optional[dict] = None,
    quiet: bool = False,
) -> dict:
    """Make a scene, its rays and a trained radiance field for every shape of a manifest.

    Args: as `flows.pipeline.sdf_collection`; `overrides` apply to the manifest's `nerf`
    settings (`NerfPipelineConfig`), e.g. {"training": {"model": "ngp", "seconds": 600}}.
    Returns: the summary (dataset, settings, per-shape records, counts, summary path).
    The run folder, the store and the shapes may be paths or URLs (`tasks.locations`): with the run
    folder at `s3://bucket/run`, scenes, checkpoints, weights, pictures, records and the report are all
    kept there, none on a worker's disk.
    """
    return run_collection(_run_scenes, "nerf", manifest, out_dir, store_url, tracking_uri, dask_address, workers,
                          overrides, quiet)


@flow(name="nerf-collection-shapes")
def _run_scenes(dataset: str, shapes: list, config: NerfPipelineConfig, where: dict, quiet: bool = False) -> dict:
    say = progress_printer(quiet)
    experiment_id = setup_tracking(where["tracking_uri"], f"inrflow-{dataset}-nerf", where["artifact_location"])
    records = {sid: new_record(sid, path) for sid, path in shapes}

    def submit(shape_id: str, stage: str):
        r = chain.results[shape_id]
        if stage == "scene":
            return make_scene.submit(shape_id, records[shape_id]["source"], where["out_dir"], config.scene)
        if stage == "rays":
            return generate_rays.submit(shape_id, r["scene"].scene_dir, r["scene"].fingerprint, where["store_url"],
                                        config.rays)
        return train_nerf.submit(shape_id, dataset, where["store_url"], r["rays"].path, r["rays"].fingerprint,
                                 r["scene"].scene_dir, config.training, config.rays.downscale, where["out_dir"],
                                 where["tracking_uri"], experiment_id, config.alias, config.pictures)

    def complete(shape_id: str) -> None:
        done = chain.results[shape_id]
        trained = done["train"]
        records[shape_id].update(status="ok", scene_dir=done["scene"].scene_dir, rays=done["rays"].count,
                                 model_uri=trained.model_uri, version=trained.version, run_id=trained.run_id,
                                 psnr=trained.psnr, ssim=trained.ssim, steps=trained.steps,
                                 train_seconds=trained.train_seconds, images=trained.images, model=trained.model)

    chain = StageChain(NERF_STAGES, submit, records, say, on_complete=complete)
    say(f"inrflow nerf: {len(shapes)} scene(s) of '{dataset}' -> {where['out_dir']}")
    seconds = chain.run([sid for sid, _ in shapes])

    ordered = [records[sid] for sid, _ in shapes]
    summary_path = locations.join(where["out_dir"], "nerf_summary.json")
    settings = {"config": config_to_dict(config), **where}
    summary = {"dataset": dataset, "shapes": ordered, "settings": settings,
               "ok": sum(r["status"] == "ok" for r in ordered), "failed": sum(r["status"] == "failed" for r in ordered),
               "seconds": seconds}
    locations.write_json(summary_path, summary)
    report = write_nerf_report(where["out_dir"], dataset, ordered, settings)
    for r in ordered:
        say(f"{r['shape_id']:<16} {r['status']:<7} " + (f"PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}  "
                                                       f"{r['steps']} steps" if r["status"] == "ok" else r["error"]))
    say(f"report: {report}\nsummary: {summary_path}")
    return {**summary, "summary": summary_path, "report": report, **where}

