"""The run's outputs for people: summary.json, report.html and a terminal table."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from inrcore.report import format_results_table, report_html

from .store import write_json_atomic, write_text_atomic


@task(name="write-report")
def write_report(out_dir: str, dataset: str, records: list[dict], settings: dict) -> dict:
    """Write `summary.json` and `report.html` (atomically) and return their paths and the table text."""
    out = Path(out_dir)
    summary = {"dataset": dataset, "settings": settings, "shapes": records,
               "ok": sum(r["status"] == "ok" for r in records),
               "failed": sum(r["status"] == "failed" for r in records)}
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "report.html", report_html(f"inrflow: {dataset}", records, settings))
    return {"summary": str(out / "summary.json"), "report": str(out / "report.html"),
            "table": format_results_table(records)}
