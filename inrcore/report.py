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

# "train/<name>" metrics that are not loss terms: clocks, counts, the learning rate, PSNR.
NOT_LOSS_TERMS = frozenset({"seconds", "seconds_total", "steps_total", "lr", "samples", "psnr", "isopoints",
                            "isopoint_refreshes", "data_weight"})
CURVE_POINTS = 200
CURVE_TICKS = 6
CURVE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
# The plot box of a curve picture, in SVG pixels: x from PLOT_LEFT to PLOT_RIGHT, y from PLOT_TOP
# (the axis maximum) down to PLOT_BOTTOM (its minimum); the legend is right of it.
CURVE_WIDTH, CURVE_HEIGHT = 380, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 50.0, 250.0, 20.0, 140.0


def training_curves(histories: dict[str, list]) -> list[dict]:
    """The plots of one shape's training, from its logged metric histories.

    Args:
        histories: metric key ("train/loss", "train/eikonal", "test/psnr", ...) -> [(step, value)].
    Returns:
        up to two plots, each {"title", "log" (a log y axis), "series": {name: [(step, value)]}}:
        "training loss" with "train/<term>" for every loss term (not NOT_LOSS_TERMS), on a log
        axis, and "PSNR (dB)" with "train/psnr" and "test/psnr" (radiance fields). Each series
        keeps at most CURVE_POINTS points, spread evenly, the last always; points that cannot
        be drawn (NaN, and on a log axis, not above zero) are left out, and so are series and
        plots with none left.
    """
    losses = {key.split("/", 1)[1]: points for key, points in sorted(histories.items())
              if key.startswith("train/") and key.split("/", 1)[1] not in NOT_LOSS_TERMS}
    if "loss" in losses:  # the total first
        losses = {"loss": losses.pop("loss"), **losses}
    psnr = {name: histories[key] for name, key in (("train", "train/psnr"), ("test", "test/psnr")) if key in histories}
    plots = []
    for title, log, series in (("training loss", True, losses), ("PSNR (dB)", False, psnr)):
        drawable = {name: _thin(_drawable(points, log)) for name, points in series.items()}
        drawable = {name: points for name, points in drawable.items() if points}
        if drawable:
            plots.append({"title": title, "log": log, "series": drawable})
    return plots


def curve_svg(plot: dict) -> str:
    """A plot of `training_curves` as inline SVG (no external references).

    x: steps, linear from the first to the last step of all series. y: on a log axis
    log10(value) from the decade below the smallest value to the one above the largest, with a
    line and label per decade; on a linear axis between multiples of a tick step (1, 2, 5, 10,
    20, 50, ...: the first that needs at most CURVE_TICKS intervals) around the values, a line
    and label per tick. One polyline per series (a dot for a single point) in CURVE_COLOURS
    order, named in the legend.
    """
    esc = _escape
    log = bool(plot.get("log"))
    series = plot["series"]
    steps = [step for points in series.values() for step, _ in points]
    heights = [_axis_value(value, log) for points in series.values() for _, value in points]
    x0, x1 = min(steps), max(steps)
    tick = 1 if log else tick_step(min(heights), max(heights))
    y0, y1 = tick * math.floor(min(heights) / tick), tick * math.ceil(max(heights) / tick)
    if y1 == y0:
        y1 = y0 + tick

    def x_of(step: float) -> float:
        return (PLOT_LEFT + PLOT_RIGHT) / 2 if x1 == x0 else PLOT_LEFT + (PLOT_RIGHT - PLOT_LEFT) * (step - x0) / (x1 - x0)

    def y_of(height: float) -> float:
        return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (height - y0) / (y1 - y0)

    parts = [f'<svg class="curve" width="{CURVE_WIDTH}" height="{CURVE_HEIGHT}" viewBox="0 0 {CURVE_WIDTH} '
             f'{CURVE_HEIGHT}" role="img" aria-label="{esc(plot["title"])}">',
             f'<text x="{PLOT_LEFT:g}" y="12" class="title">{esc(plot["title"])}</text>',
             f'<rect x="{PLOT_LEFT:g}" y="{PLOT_TOP:g}" width="{PLOT_RIGHT - PLOT_LEFT:g}" '
             f'height="{PLOT_BOTTOM - PLOT_TOP:g}" class="frame"/>']
    for at in range(int(y0), int(y1) + 1, int(tick)):
        y = y_of(at)
        label = f"1e{at}" if log else f"{at:g}"
        parts.append(f'<line x1="{PLOT_LEFT:g}" x2="{PLOT_RIGHT:g}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{PLOT_LEFT - 4:g}" y="{y + 3:.1f}" class="tick" text-anchor="end">{label}</text>')
    parts.append(f'<text x="{PLOT_LEFT:g}" y="{PLOT_BOTTOM + 14:g}" class="tick">{x0:g}</text>'
                 f'<text x="{PLOT_RIGHT:g}" y="{PLOT_BOTTOM + 14:g}" class="tick" text-anchor="end">{x1:g}</text>'
                 f'<text x="{(PLOT_LEFT + PLOT_RIGHT) / 2:g}" y="{PLOT_BOTTOM + 26:g}" class="tick" '
                 'text-anchor="middle">step</text>')
    for i, (name, points) in enumerate(series.items()):
        colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
        xy = [(x_of(step), y_of(_axis_value(value, log))) for step, value in points]
        if len(xy) == 1:
            parts.append(f'<circle cx="{xy[0][0]:.1f}" cy="{xy[0][1]:.1f}" r="2.5" fill="{colour}"/>')
        else:
            coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{coordinates}"/>')
        legend_y = PLOT_TOP + 8 + 16 * i
        parts.append(f'<line x1="{PLOT_RIGHT + 10:g}" x2="{PLOT_RIGHT + 28:g}" y1="{legend_y:g}" y2="{legend_y:g}" '
                     f'stroke="{colour}" stroke-width="2"/><text x="{PLOT_RIGHT + 32:g}" y="{legend_y + 4:g}" '
                     f'class="tick">{esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def tick_step(low: float, high: float) -> int:
    """The first of 1, 2, 5, 10, 20, 50, ... that spans [low, high] in at most CURVE_TICKS steps
    between its multiples."""
    scale = 1
    while True:
        for step in (scale, 2 * scale, 5 * scale):
            if math.ceil(high / step) - math.floor(low / step) <= CURVE_TICKS:
                return step
        scale *= 10


def _drawable(points, log: bool) -> list[tuple[float, float]]:
    """(step, value) pairs with a finite value (and, for a log axis, above zero), by step."""
    kept = [(float(step), float(value)) for step, value in points
            if isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 or not log)]
    return sorted(kept)


def _thin(points: list, at_most: int = CURVE_POINTS) -> list:
    """At most `at_most` of `points`, spread evenly, the first and last kept."""
    if len(points) <= at_most:
        return points
    picks = sorted({round(i * (len(points) - 1) / (at_most - 1)) for i in range(at_most)})
    return [points[i] for i in picks]


def _axis_value(value: float, log: bool) -> float:
    return math.log10(value) if log else value


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
