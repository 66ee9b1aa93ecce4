"""The NeRF collection flow: every shape (a mesh or a scene folder) through scene -> rays -> train.

Each shape's stages start as soon as its previous stage finishes, spread over the Dask
cluster; a shape whose stage fails stops there with its error recorded and the others go
on. Every stage keeps a "finished" record, so running the flow again reuses what was done,
and training resumes from its last checkpoint after a crash.
"""

from __future__ import annotations

import queue
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from prefect import flow

from inrcore.config import config_replace, config_to_dict
from tasks.nerf import generate_rays, make_scene, train_nerf
from tasks.store import write_json_atomic
from tasks.tracking import setup_tracking

from flows.manifest import read_manifest
from flows.pipeline import _message, locations, task_runner

NERF_STAGES = ("scene", "rays", "train")


@flow(name="nerf-collection")
def nerf_collection(
    manifest: str,
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
    """
    data = read_manifest(manifest)
    config = config_replace(data.nerf, overrides, "overrides") if overrides else data.nerf
    where = locations(data.name, out_dir, store_url, tracking_uri)
    Path(where["out_dir"]).mkdir(parents=True, exist_ok=True)
    run = _run_scenes.with_options(task_runner=task_runner(dask_address, workers))
    return run(data.name, [(s.shape_id, s.path) for s in data.shapes], config_to_dict(config), where, quiet)


@flow(name="nerf-collection-shapes")
def _run_scenes(dataset: str, shapes: list, config: dict, where: dict, quiet: bool = False) -> dict:
    say: Callable[[str], None] = (lambda text: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    start = time.perf_counter()
    experiment_id = setup_tracking(where["tracking_uri"], f"inrflow-{dataset}-nerf", where["artifact_location"])
    records = {sid: {"shape_id": sid, "source": path, "status": "running", "error": None, "seconds": {},
                     "reused": {}} for sid, path in shapes}
    results: dict[str, dict] = {sid: {} for sid, _ in shapes}

    def submit(shape_id: str, stage: str):
        r = results[shape_id]
        if stage == "scene":
            return make_scene.submit(shape_id, records[shape_id]["source"], where["out_dir"], config["scene"])
        if stage == "rays":
            return generate_rays.submit(shape_id, r["scene"]["scene_dir"], r["scene"]["fingerprint"],
                                        where["store_url"], config["rays"])
        return train_nerf.submit(shape_id, dataset, where["store_url"], r["rays"]["path"], r["rays"]["fingerprint"],
                                 r["scene"]["scene_dir"], config["training"], config["rays"]["downscale"],
                                 where["out_dir"], where["tracking_uri"], experiment_id, config["alias"],
                                 config["turntable_frames"])

    finished: queue.Queue = queue.Queue()
    pending: dict = {}

    def launch(shape_id: str, stage: str) -> None:
        future = submit(shape_id, stage)
        pending[future] = (shape_id, stage)
        future.add_done_callback(finished.put)

    say(f"inrflow nerf: {len(shapes)} scene(s) of '{dataset}' -> {where['out_dir']}")
    for sid, _ in shapes:
        launch(sid, "scene")
    while pending:
        future = finished.get()
        shape_id, stage = pending.pop(future)
        outcome = future.result(raise_on_failure=False)
        record = records[shape_id]
        clock = f"[{time.perf_counter() - start:6.1f}s]"
        if isinstance(outcome, BaseException) or not future.state.is_completed():
            record.update(status="failed", error=f"{stage}: {_message(outcome)}")
            say(f"{clock} {shape_id:<16} {stage:<6} FAILED  {_message(outcome)}")
            continue
        results[shape_id][stage] = outcome
        record["seconds"][stage] = round(outcome["seconds"], 3)
        record["reused"][stage] = bool(outcome.get("reused"))
        say(f"{clock} {shape_id:<16} {stage:<6} {'reused' if outcome.get('reused') else 'done':<7} "
            f"{outcome['seconds']:.1f}s")
        following = NERF_STAGES.index(stage) + 1
        if following < len(NERF_STAGES):
            launch(shape_id, NERF_STAGES[following])
        else:
            record.update(status="ok", scene_dir=results[shape_id]["scene"]["scene_dir"],
                          rays=results[shape_id]["rays"]["count"],
                          **{k: outcome[k] for k in ("model_uri", "version", "run_id", "psnr", "ssim", "steps",
                                                     "train_seconds", "images", "model")})

    ordered = [records[sid] for sid, _ in shapes]
    summary_path = Path(where["out_dir"]) / "nerf_summary.json"
    summary = {"dataset": dataset, "shapes": ordered, "settings": {"config": config, **where},
               "ok": sum(r["status"] == "ok" for r in ordered), "failed": sum(r["status"] == "failed" for r in ordered),
               "seconds": time.perf_counter() - start}
    write_json_atomic(summary_path, summary)
    for r in ordered:
        say(f"{r['shape_id']:<16} {r['status']:<7} " + (f"PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}  "
                                                       f"{r['steps']} steps" if r["status"] == "ok" else r["error"]))
    say(f"summary: {summary_path}")
    return {**summary, "summary": str(summary_path), **where}
