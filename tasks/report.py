"""The run's outputs for people: summary.json, report.html and a terminal table."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import mlflow
from prefect import task

from inrcore.curves import training_curves
from inrcore.report import format_results_table, report_html

from . import locations, registry


@task(name="write-report")
def write_report(out_dir: str, dataset: str, records: list[dict], settings: dict,
                 seconds: Optional[float] = None) -> dict:
    """Write `summary.json` and `report.html` (atomically) and return their paths and the table text.
    `seconds`: the flow's own time over the shapes (submitting the first to the last finishing), kept in
    the summary.

    The report draws each shape's training curves from its MLflow run (`settings["tracking_uri"]`), and
    shows each shape's skeleton picture next to its input and reconstruction when the skeleton stage ran.
    """
    summary = {"dataset": dataset, "settings": settings, "shapes": records,
               "ok": sum(r["status"] == "ok" for r in records),
               "failed": sum(r["status"] == "failed" for r in records), "seconds": seconds}
    summary_path = locations.write_json(locations.join(out_dir, "summary.json"), summary)
    skeletons = any("skeleton" in (r.get("images") or {}) for r in records)
    with local_pictures(records) as shown:
        page = report_html(f"inrflow: {dataset}", shown, settings,
                           curves=logged_curves(settings["tracking_uri"], records),
                           picture_roles=("input", "reconstruction") + (("skeleton",) if skeletons else ()))
    report_path = locations.write_text(locations.join(out_dir, "report.html"), page)
    return {"summary": summary_path, "report": report_path, "table": format_results_table(records)}


@task(name="write-nerf-report")
def write_nerf_report(out_dir: str, dataset: str, records: list[dict], settings: dict) -> str:
    """Write the NeRF flow's `report.html` (atomically): PSNR and SSIM per shape, its test views
    and depth maps, its loss and PSNR curves (from MLflow) and stage timings. Returns its path."""
    shown = [{**r, "metrics": {"psnr": r.get("psnr"), "ssim": r.get("ssim")}} for r in records]
    with local_pictures(shown) as pictured:
        page = report_html(f"inrflow: {dataset} (radiance fields)", pictured, settings,
                           curves=logged_curves(settings["tracking_uri"], records), metric_names=("psnr", "ssim"),
                           picture_roles=("test_views", "depth"))
    return locations.write_text(locations.join(out_dir, "report.html"), page)


@contextlib.contextmanager
def local_pictures(records: list[dict]) -> Iterator[list[dict]]:
    """The records with every picture at a URL copied to a temporary local file (the report embeds
    pictures from files); records whose pictures are local paths, or missing, are given as they are."""
    with tempfile.TemporaryDirectory(prefix="inrflow-report-") as folder:
        shown = []
        for i, record in enumerate(records):
            images = dict(record.get("images") or {})
            for role, location in images.items():
                if location and locations.is_url(location):
                    try:  # one request: a missing picture is left out by the report
                        data = locations.read_bytes(location)
                    except FileNotFoundError:
                        continue
                    local = Path(folder) / f"{i}-{role}{Path(str(location)).suffix}"
                    local.write_bytes(data)
                    images[role] = str(local)
            shown.append({**record, "images": images} if record.get("images") else record)
        yield shown


def logged_curves(tracking_uri: str, records: list[dict]) -> dict[str, list[dict]]:
    """Each shape's training curves (`inrcore.curves.training_curves`) from the histories its
    MLflow run logged ("mlflow_run_id" or "run_id" of its record); a shape without a run, or
    whose run cannot be read, has none (the report is still written)."""
    curves = {}
    for record in records:
        run_id = _run_id(record)
        if run_id is None:
            continue
        try:
            curves[record["shape_id"]] = training_curves(registry.metric_histories(tracking_uri, run_id))
        except mlflow.exceptions.MlflowException:
            curves[record["shape_id"]] = []
    return curves


def _run_id(record: dict) -> Optional[str]:
    return record.get("mlflow_run_id") or record.get("run_id")
