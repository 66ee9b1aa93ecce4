"""The terminal table and the HTML report of per-shape records."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from inrcore.curves import curve_svg, training_curves
from inrcore.geometry.images import write_png
from inrcore.report import format_number, format_results_table, report_html, shorten


def _ok_record(shape_id: str, images: dict | None = None) -> dict:
    return {
        "shape_id": shape_id,
        "status": "ok",
        "error": None,
        "source": f"/data/{shape_id}.obj",
        "metrics": {
            "chamfer_l1": 0.0123456,
            "fscore": 0.987654,
            "precision": 0.99,
            "recall": 0.985,
            "normal_consistency": 0.95,
            "hausdorff": 0.0456789,
        },
        "seconds": {"sample": 1.25, "train": 10.0, "extract": 0.5, "evaluate": 0.25},
        "images": images or {"input": None, "reconstruction": None},
        "model_uri": f"models:/{shape_id}/1",
        "mesh_path": f"/out/{shape_id}.ply",
    }


def _failed_record(shape_id: str, error: str) -> dict:
    return {
        "shape_id": shape_id,
        "status": "failed",
        "error": error,
        "source": f"/data/{shape_id}.obj",
        "metrics": None,
        "seconds": {"sample": 0.2},
        "images": {"input": None, "reconstruction": None},
        "model_uri": None,
        "mesh_path": None,
    }


def test_format_number_uses_four_significant_figures():
    assert format_number(0.0123456) == "0.01235"
    assert format_number(0.987654) == "0.9877"
    assert format_number(1.0) == "1"
    assert format_number(None) == "-"
    assert format_number(float("nan")) == "-"


def test_shorten_keeps_both_ends_on_one_line():
    assert shorten("short\nerror") == "short error"
    text = "/very/long/path/" + "x" * 200 + ": mesh has no faces"
    short = shorten(text, width=40)
    assert len(short) == 40
    assert short.startswith("/very/long/path/") and short.endswith("no faces") and "..." in short


def test_table_lists_each_shape_with_formatted_numbers():
    records = [_ok_record("bunny"), _ok_record("cow"), _failed_record("teapot", "/data/teapot.obj: no faces")]
    records[1]["metrics"]["chamfer_l1"] = 0.0223456
    table = format_results_table(records)
    lines = table.splitlines()
    assert lines[0].split() == ["shape", "status", "total_s", "chamfer_l1", "fscore", "normal_consistency", "hausdorff"]
    bunny = next(line for line in lines if line.startswith("bunny"))
    # total 1.25 + 10 + 0.5 + 0.25 = 12 s
    assert bunny.split() == ["bunny", "ok", "12.0", "0.01235", "0.9877", "0.95", "0.04568"]
    assert next(line for line in lines if line.startswith("cow")).split()[3] == "0.02235"
    # mean over the two ok shapes: chamfer (0.0123456 + 0.0223456) / 2 = 0.0173456
    mean = next(line for line in lines if line.startswith("mean"))
    assert mean.split()[:5] == ["mean", "2", "ok", "12.0", "0.01735"]
    assert lines[-1] == "3 shapes: 2 ok, 1 failed, 24.2 s in all"
    # numbers line up under their headers
    assert lines[0].index("hausdorff") + len("hausdorff") == bunny.index("0.04568") + len("0.04568")


def test_table_shows_the_error_of_a_failed_shape():
    long_error = "ShapeError: /data/" + "deep/" * 40 + "teapot.obj: mesh has no faces"
    table = format_results_table([_failed_record("teapot", long_error)])
    row = next(line for line in table.splitlines() if line.startswith("teapot"))
    assert row.split()[:3] == ["teapot", "failed", "0.2"]
    assert "error: ShapeError: /data/deep/" in row and row.endswith("mesh has no faces")
    assert len(row) < 120
    assert "mean" not in table  # no ok shape, no mean row
    assert format_results_table([]) == "no shapes"


def test_html_report_embeds_images_and_escapes_errors(tmp_path):
    picture = np.zeros((4, 5, 3), dtype=np.uint8)
    picture[1, 2] = (255, 0, 0)
    png = write_png(picture, tmp_path / "bunny_input.png")
    records = [
        _ok_record("bunny", {"input": str(png), "reconstruction": str(tmp_path / "missing.png")}),
        _failed_record("teapot<1>", "ShapeError: /data/a<b>&c.obj: expected 3 < 2 vertices"),
    ]
    page = report_html("Demo <run>", records, config={"training": {"steps": 10}})
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Demo &lt;run&gt;</title>" in page
    assert "bunny" in page and "teapot&lt;1&gt;" in page and "teapot<1>" not in page
    assert "/data/a&lt;b&gt;&amp;c.obj: expected 3 &lt; 2 vertices" in page
    assert "a<b>" not in page
    # the real PNG is embedded byte for byte; the missing one is reported, not raised
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f'<img src="data:image/png;base64,{encoded}"' in page
    assert page.count("no image") == 3  # bunny's reconstruction, teapot's two
    assert "0.01235" in page and "0.9877" in page
    assert "&quot;steps&quot;: 10" in page
    assert '<td class="num">12.0</td>' in page  # bunny's total seconds
    assert "http" not in page  # self-contained: nothing fetched


def test_html_report_survives_sparse_records():
    page = report_html("sparse", [{"shape_id": "x", "status": "ok", "metrics": None}])
    assert "x" in page and "no image" in page and "<td class=\"num\">-</td>" in page


@pytest.mark.parametrize("content", [b"", b"not a png"])
def test_html_report_treats_non_images_as_missing(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    page = report_html("t", [_ok_record("a", {"input": str(path), "reconstruction": None})])
    assert "data:image" not in page and page.count("no image") == 2


# ---------------------------------------------------------------- training curves

SDF_HISTORY = {
    "train/loss": [(0, 1.0), (100, 0.01)],
    "train/surface": [(0, 0.1), (50, 0.1), (100, 0.001)],
    "train/lr": [(0, 1e-4), (100, 1e-5)],  # not a loss term
    "train/seconds": [(0, 0.5), (100, 9.0)],
    "train/offsurface": [(0, 0.0), (100, float("nan"))],  # nothing drawable on a log axis
    "eval/chamfer_l1": [(0, 0.01)],
}


def test_training_curves_keep_the_loss_terms_of_an_sdf():
    assert training_curves(SDF_HISTORY) == [{
        "title": "training loss", "log": True,
        "series": {"loss": [(0.0, 1.0), (100.0, 0.01)], "surface": [(0.0, 0.1), (50.0, 0.1), (100.0, 0.001)]},
    }]


def test_training_curves_of_a_radiance_field_add_psnr():
    plots = training_curves({"train/loss": [(50, 0.02), (100, 0.01)], "train/psnr": [(50, 20.5), (100, 24.5)],
                             "test/psnr": [(100, 23.0)], "test/psnr_final": [(100, 23.1)]})
    assert [plot["title"] for plot in plots] == ["training loss", "PSNR (dB)"]
    assert plots[1] == {"title": "PSNR (dB)", "log": False,
                        "series": {"train": [(50.0, 20.5), (100.0, 24.5)], "test": [(100.0, 23.0)]}}
    assert training_curves({"eval/chamfer_l1": [(0, 0.1)]}) == []


def test_long_curves_are_thinned_to_200_points_keeping_both_ends():
    plot, = training_curves({"train/loss": [(step, 1.0 / (step + 1)) for step in range(1000)]})
    points = plot["series"]["loss"]
    assert len(points) == 200 and points[0] == (0.0, 1.0) and points[-1] == (999.0, 0.001)


def test_curve_svg_places_points_on_a_log_axis():
    # three decades, 1e-3 (y = 140) to 1e0 (y = 20): 40 px a decade; steps 0..100 over x = 50..250
    svg = curve_svg(training_curves(SDF_HISTORY)[0])
    assert svg.startswith('<svg class="curve"') and svg.endswith("</svg>") and "http" not in svg
    assert 'points="50.0,20.0 250.0,100.0"' in svg  # loss: 1 at step 0, 0.01 at step 100
    assert 'points="50.0,60.0 150.0,60.0 250.0,140.0"' in svg  # surface: 0.1, 0.1, 0.001
    for exponent, y in ((-3, "140.0"), (-2, "100.0"), (-1, "60.0"), (0, "20.0")):
        assert f'y1="{y}" y2="{y}" class="grid"/><text x="46" y="{float(y) + 3:.1f}" class="tick" ' \
               f'text-anchor="end">1e{exponent}</text>' in svg
    assert ">training loss</text>" in svg and ">loss</text>" in svg and ">surface</text>" in svg


def test_linear_axes_tick_at_1_2_5_10_and_so_on():
    from inrcore.curves import tick_step

    assert tick_step(20.5, 24.5) == 1  # 20..25: 5 ticks apart
    assert tick_step(10.0, 24.9) == 5  # 10..25 in 1s or 2s would be 15 or 8 steps
    assert tick_step(3.0, 95.0) == 20  # 0..100
    svg = curve_svg({"title": "PSNR (dB)", "log": False, "series": {"train": [(0, 10.0), (100, 24.9)]}})
    assert [label for label in ("10", "15", "20", "25") if f'text-anchor="end">{label}</text>' in svg] == [
        "10", "15", "20", "25"]


def test_curve_svg_on_a_linear_axis_draws_a_lone_point_as_a_dot():
    # PSNR 20.5..24.5 -> axis 20..25 (24 px a dB); steps 50..100 over x = 50..250
    svg = curve_svg({"title": "PSNR (dB)", "log": False,
                     "series": {"train": [(50, 20.5), (100, 24.5)], "test": [(100, 23.0)]}})
    assert 'points="50.0,128.0 250.0,32.0"' in svg
    assert '<circle cx="250.0" cy="68.0" r="2.5"' in svg
    assert 'class="tick" text-anchor="end">25</text>' in svg and ">50</text>" in svg and ">100</text>" in svg


def test_html_report_shows_curves_and_running_and_waiting_seconds():
    record = {**_ok_record("bunny"), "seconds": {"train": 140.0, "evaluate": 13.0},
              "waiting": {"train": 0.5, "evaluate": 259.6}}
    page = report_html("t", [record], curves={"bunny": training_curves(SDF_HISTORY)})
    section = page[page.index('<section id="shape-0">'):]
    assert section.count('<svg class="curve"') == 1 and 'points="50.0,20.0 250.0,100.0"' in section
    assert "<th>running s</th><th>waiting s</th>" in section
    assert ('<tr><td>evaluate</td><td class="num">13.0</td><td class="num">259.6</td></tr>') in section
    assert '<tr class="total"><td>total</td><td class="num">153.0</td><td class="num">260.1</td></tr>' in section
    # a report for radiance fields: its own metrics and pictures
    nerf = {"shape_id": "lego", "status": "ok", "metrics": {"psnr": 28.04, "ssim": 0.9312}, "images": {}}
    page = report_html("n", [nerf], metric_names=("psnr", "ssim"), picture_roles=("test_views", "depth"))
    assert "<th>psnr</th><th>ssim</th>" in page and "28.04" in page and "0.9312" in page
    assert "<figcaption>test_views</figcaption>" in page and "<figcaption>depth</figcaption>" in page
