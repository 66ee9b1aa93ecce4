"""The terminal table and the HTML report of per-shape records."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from inrcore.render import write_png
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
