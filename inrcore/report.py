"""Results of a shape collection as a terminal table and as a self-contained HTML page.

Both read the pipeline's per-shape records:

    {"shape_id": str, "status": "ok" | "failed", "error": str | None, "source": str,
     "metrics": {"chamfer_l1", "fscore", "precision", "recall", "normal_consistency",
                 "hausdorff": float} | None,
     "seconds": {stage_name: float}, "waiting": {stage_name: float},
     "images": {"input": path | None, "reconstruction": path | None},
     "model_uri": str | None, "mesh_path": str | None}

"seconds" is each stage's own running time and "waiting" the time it waited for a worker
(`flows.stages`); totals add up the running times. Missing keys, missing metrics and missing
image files are shown as "-" / "no image", never raised.

Training curves (`training_curves`: the loss and its terms on a log axis, PSNR for radiance
fields) are drawn as small inline SVG plots (`curve_svg`), one polyline per series, from the
histories the training logged.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any, Optional

from inrcore.curves import curve_svg


TABLE_METRICS = ("chamfer_l1", "fscore", "normal_consistency", "hausdorff")
HTML_METRICS = ("chamfer_l1", "fscore", "precision", "recall", "normal_consistency", "hausdorff")
ERROR_WIDTH = 80
MISSING = "-"


def format_number(value: Any, digits: int = 4) -> str:
    """`value` to `digits` significant figures; "-" for None, NaN and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return MISSING
    return f"{value:.{digits}g}"


def total_seconds(record: dict) -> Optional[float]:
    """The sum of a record's per-stage seconds, or None when it has none."""
    seconds = [v for v in (record.get("seconds") or {}).values() if isinstance(v, (int, float))]
    return float(sum(seconds)) if seconds else None


def shorten(text: str, width: int = ERROR_WIDTH) -> str:
    """`text` on one line, at most `width` characters, cut in the middle ("...") to keep both
    the start (often a file path) and the end (often the actual problem)."""
    line = " ".join(str(text).split())
    if len(line) <= width:
        return line
    keep = width - 3
    head = (keep + 1) // 2
    return line[:head] + "..." + line[len(line) - (keep - head) :]


def format_results_table(records: list[dict]) -> str:
    """A plain-text table, one row per shape, then a mean row and a one-line summary.

    Columns: shape, status, total_s (the stages' own running seconds, waits left out), chamfer_l1, fscore,
    normal_consistency, hausdorff (4 significant figures). A failed shape shows
    "error: <message>" in place of its metrics.
    """
    if not records:
        return "no shapes"
    header = ["shape", "status", "total_s", *TABLE_METRICS]
    rows: list[list[str]] = []
    errors: dict[int, str] = {}
    for record in records:
        status = str(record.get("status", MISSING))
        cells = [str(record.get("shape_id", MISSING)), status, _format_seconds(total_seconds(record))]
        metrics = record.get("metrics") or {}
        if status == "ok":
            cells += [format_number(metrics.get(name)) for name in TABLE_METRICS]
        else:
            errors[len(rows)] = "error: " + shorten(record.get("error") or "unknown error")
            cells += [""] * len(TABLE_METRICS)
        rows.append(cells)

    ok = [r for r in records if r.get("status") == "ok" and r.get("metrics")]
    if ok:
        totals = [t for t in map(total_seconds, ok) if t is not None]
        rows.append(
            ["mean", f"{len(ok)} ok", _format_seconds(sum(totals) / len(totals) if totals else None)]
            + [format_number(_mean(r["metrics"].get(name) for r in ok)) for name in TABLE_METRICS]
        )

    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = [False, False] + [True] * (len(header) - 2)

    def line(cells: list[str]) -> str:
        parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(cells, widths, numeric)]
        return "  ".join(parts).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    for index, row in enumerate(rows):
        if index == len(records):
            lines.append(line(["-" * w for w in widths]))
        if index in errors:
            lines.append(line(row[:3]) + "  " + errors[index])
        else:
            lines.append(line(row))
    n_failed = sum(1 for r in records if r.get("status") != "ok")
    all_seconds = [t for t in map(total_seconds, records) if t is not None]
    lines.append(
        f"{len(records)} shapes: {len(records) - n_failed} ok, {n_failed} failed, "
        f"{sum(all_seconds):.1f} s in all"
    )
    return "\n".join(lines)


def image_data_uri(path: Any) -> Optional[str]:
    """The PNG or JPEG file at `path` as a base64 data URI; None if absent, unreadable or
    not such an image."""
    if not path:
        return None
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError:
        return None
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        mime = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        mime = "image/jpeg"
    else:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def report_html(title: str, records: list[dict], config: Optional[dict] = None,
                curves: Optional[dict[str, list[dict]]] = None, metric_names: tuple[str, ...] = HTML_METRICS,
                picture_roles: tuple[str, ...] = ("input", "reconstruction")) -> str:
    """A self-contained HTML page: summary, metrics table, failed shapes with their errors,
    one section per shape (its pictures side by side, its training curves, per-stage running
    and waiting seconds, where things are stored) and the configuration. All text is
    HTML-escaped; images are embedded as data URIs, curves as inline SVG.

    curves: shape id -> its plots (`training_curves`). metric_names: the record's "metrics"
    shown in the table; picture_roles: the keys of its "images" shown side by side.
    """
    esc = _escape
    n_failed = sum(1 for r in records if r.get("status") != "ok")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p class="summary">{len(records)} shapes: {len(records) - n_failed} ok, {n_failed} failed</p>',
        _metrics_table_html(records, metric_names),
    ]
    failed = [(i, r) for i, r in enumerate(records) if r.get("status") != "ok"]
    if failed:
        parts.append('<h2>Failed shapes</h2><ul class="failed">')
        for index, record in failed:
            parts.append(
                f'<li><a href="#shape-{index}">{esc(record.get("shape_id"))}</a>: '
                f'<code>{esc(record.get("error") or "unknown error")}</code></li>'
            )
        parts.append("</ul>")
    for index, record in enumerate(records):
        plots = (curves or {}).get(record.get("shape_id"), [])
        parts.append(_shape_section_html(index, record, plots, picture_roles))
    if config is not None:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        parts.append(f"<h2>Configuration</h2><pre>{esc(text)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _metrics_table_html(records: list[dict], metric_names: tuple[str, ...]) -> str:
    esc = _escape
    head = "".join(f"<th>{esc(name)}</th>" for name in ("shape", "status", *metric_names, "total s"))
    rows = []
    for index, record in enumerate(records):
        status = str(record.get("status", MISSING))
        cells = [
            f'<td><a href="#shape-{index}">{esc(record.get("shape_id"))}</a></td>',
            f'<td class="{_status_class(status)}">{esc(status)}</td>',
        ]
        metrics = record.get("metrics") or {}
        if status == "ok":
            cells += [f'<td class="num">{esc(format_number(metrics.get(n)))}</td>' for n in metric_names]
        else:
            error = shorten(record.get("error") or "unknown error")
            cells.append(f'<td class="error" colspan="{len(metric_names)}">{esc(error)}</td>')
        cells.append(f'<td class="num">{esc(_format_seconds(total_seconds(record)))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _shape_section_html(index: int, record: dict, plots: list[dict], picture_roles: tuple[str, ...]) -> str:
    esc = _escape
    status = str(record.get("status", MISSING))
    parts = [
        f'<section id="shape-{index}">',
        f'<h2>{esc(record.get("shape_id"))} <span class="{_status_class(status)}">{esc(status)}</span></h2>',
    ]
    if status != "ok":
        parts.append(f'<pre class="error">{esc(record.get("error") or "unknown error")}</pre>')
    images = record.get("images") or {}
    parts.append('<div class="pair">')
    for role in picture_roles:
        uri = image_data_uri(images.get(role))
        picture = f'<img src="{uri}" alt="{esc(role)}">' if uri else '<div class="noimage">no image</div>'
        parts.append(f"<figure>{picture}<figcaption>{esc(role)}</figcaption></figure>")
    parts.append("</div>")
    if plots:
        parts.append('<div class="curves">' + "".join(curve_svg(plot) for plot in plots) + "</div>")
    if record.get("seconds"):
        parts.append(_timings_table_html(record))

    details = [(key, record.get(key)) for key in ("source", "mesh_path", "model_uri") if record.get(key)]
    if details:
        parts.append(
            '<dl class="where">'
            + "".join(f"<dt>{esc(key)}</dt><dd><code>{esc(value)}</code></dd>" for key, value in details)
            + "</dl>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def _timings_table_html(record: dict) -> str:
    """Each stage's own running seconds and the seconds it waited, then the total running time."""
    esc = _escape
    seconds, waiting = record["seconds"], record.get("waiting") or {}
    rows = "".join(
        f'<tr><td>{esc(stage)}</td><td class="num">{esc(_format_seconds(value))}</td>'
        f'<td class="num">{esc(_format_seconds(waiting.get(stage)))}</td></tr>'
        for stage, value in seconds.items()
    )
    total = (f'<tr class="total"><td>total</td><td class="num">{esc(_format_seconds(total_seconds(record)))}</td>'
             f'<td class="num">{esc(_format_seconds(_sum(waiting.values())))}</td></tr>')
    return (f'<table class="timings"><tr><th>stage</th><th>running s</th><th>waiting s</th></tr>'
            f"{rows}{total}</table>")


# ---------------------------------------------------------------- training curves


def _sum(values) -> Optional[float]:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
    return float(sum(numbers)) if numbers else None


def _escape(value: Any) -> str:
    return html.escape(MISSING if value is None else str(value), quote=True)


def _status_class(status: str) -> str:
    return "ok" if status == "ok" else "bad"


def _format_seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return MISSING
    return f"{value:.1f}"


def _mean(values) -> Optional[float]:
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v)]
    return sum(numbers) / len(numbers) if numbers else None


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 0.25em 0.7em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #1a7f37; }
.bad, td.error, pre.error { color: #b42318; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
section { border-top: 2px solid #eee; margin-top: 2em; }
.pair { display: flex; gap: 1em; flex-wrap: wrap; }
figure { margin: 0; text-align: center; }
figure img { border: 1px solid #ddd; max-width: 100%; }
.noimage { width: 256px; height: 256px; display: flex; align-items: center; justify-content: center;
           border: 1px dashed #bbb; color: #888; }
.curves { display: flex; gap: 1em; flex-wrap: wrap; }
svg.curve { font-size: 10px; }
svg.curve .title { font-size: 12px; font-weight: bold; }
svg.curve .frame { fill: none; stroke: #bbb; }
svg.curve .grid { stroke: #eee; }
svg.curve .tick { fill: #555; }
dl.where dt { font-weight: bold; }
dl.where dd { margin: 0 0 0.4em 1em; }
""".strip()
