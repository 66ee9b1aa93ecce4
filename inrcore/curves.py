"""Training curves as inline SVG: loss terms and learning rate against steps, log-scaled where positive.
"""

from __future__ import annotations

import html
import math
from typing import Any


# The plot box of a curve picture, in SVG pixels: x from PLOT_LEFT to PLOT_RIGHT, y from PLOT_TOP
# (the axis maximum) down to PLOT_BOTTOM (its minimum); the legend is right of it.
CURVE_WIDTH, CURVE_HEIGHT = 380, 170
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 50.0, 250.0, 20.0, 140.0


# "train/<name>" metrics that are not loss terms: clocks, counts, the learning rate, PSNR.
NOT_LOSS_TERMS = frozenset({"seconds", "seconds_total", "steps_total", "lr", "samples", "psnr", "isopoints",
                            "isopoint_refreshes", "data_weight"})


CURVE_POINTS = 200
CURVE_TICKS = 6
CURVE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


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
    def esc(value: Any) -> str:
        return html.escape(str(value), quote=True)

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


