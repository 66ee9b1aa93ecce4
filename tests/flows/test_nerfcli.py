"""`inr scene` and `inr nerf` end to end in this process (no Prefect, Dask, Zarr or MLflow)."""

import json
from pathlib import Path

import pytest

from flows.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "hash_levels=4", "--set", "hash_log2_size=12", "--set", "hash_base_resolution=4",
        "--set", "hash_finest_resolution=32", "--set", "ngp_width=16", "--set", "grid_resolution=8",
        "--set", "render_step=0.05", "--set", "batch_rays=64", "--set", "eval_every=2", "--set", "eval_views=1"]


def test_scene_then_nerf_writes_metrics_and_renders(tmp_path, capsys):
    scene = tmp_path / "scene"
    assert main(["scene", str(ROOT / "datasets" / "meshes" / "spot.obj"), "--out", str(scene), "--size", "16",
                 "--train", "4", "--test", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["train"] == 4
    assert (scene / "transforms_train.json").is_file() and len(list((scene / "test").glob("*.png"))) == 2

    out = tmp_path / "out"
    assert main(["nerf", str(scene), "--model", "ngp", "--steps", "2", "--out", str(out), "--frames", "2",
                 "--quiet", *TINY]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"psnr", "ssim", "seconds", "steps", "model"} <= set(metrics)
    assert metrics["steps"] == 2 and metrics["model"] == "ngp" and metrics["views"] == 2
    assert metrics["split"] == "test" and 0 < metrics["psnr"] < 60
    for name in ("field.safetensors", "test_views.png", "depth.png", "turntable.gif", "checkpoint.pt"):
        assert (out / name).is_file()
    capsys.readouterr()
    # the same command with more steps resumes from the checkpoint
    assert main(["nerf", str(scene), "--model", "ngp", "--steps", "3", "--out", str(out), "--frames", "0",
                 "--quiet", *TINY]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["resumed_from"] == 2 and again["steps"] == 3


def test_nerf_bad_inputs_exit_2_naming_the_file(tmp_path, capsys):
    assert main(["nerf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere" / "transforms_train.json") in err
    assert main(["nerf", str(tmp_path), "--out", str(tmp_path / "o"), "--set", "model_size=3"]) == 2
    assert "model_size" in capsys.readouterr().err
    assert main(["scene", str(tmp_path / "missing.obj"), "--out", str(tmp_path / "s")]) == 2
    assert str(tmp_path / "missing.obj") in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nerf", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "tiny"])
