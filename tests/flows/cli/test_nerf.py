"""`inr scene` and `inr nerf` end to end in this process (no Prefect, Dask, Zarr or MLflow)."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flows.cli import main


ROOT = Path(__file__).resolve().parents[3]
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
    assert metrics["stage"] == "complete" and metrics["turntable_frames"] == 2
    assert set(metrics["images"]) == {"test_views", "depth", "turntable"}
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
    assert main(["nerf", str(tmp_path), "--out", str(tmp_path / "o"), "--turntable-size", "0"]) == 2
    assert "inr: settings.turntable_size: must be positive, got 0" in capsys.readouterr().err
    assert main(["nerf", str(tmp_path), "--out", str(tmp_path / "o"), "--test-views", "0"]) == 2
    assert "inr: settings.test_views: must be positive" in capsys.readouterr().err


def test_durations_plans_and_training_estimates_for_people():
    from flows.cli.nerf import describe_plan, expected_training_seconds, format_duration
    from inrcore.geometry.cameras import Intrinsics
    from inrcore.nerf.scenes import SceneSplit
    from inrcore.nerf.settings import NerfConfig, NerfPicturesConfig

    assert [format_duration(s) for s in (45.4, 89.6, 318.0, 5399.0, 5760.0)] == [
        "45 s", "90 s", "5.3 min", "90.0 min", "1.6 h"]
    # 500 of 5000 steps took 60 s: 600 s at that pace, unless a budget ends it sooner
    assert expected_training_seconds(NerfConfig(steps=5000), 500, 60.0) == 600.0
    assert expected_training_seconds(NerfConfig(steps=10**9, seconds=600.0), 500, 60.0) == 600.0
    assert expected_training_seconds(NerfConfig(steps=1000, seconds=600.0), 500, 60.0) == 120.0
    test = SceneSplit("test", [None] * 200, None, Intrinsics(400, 400, 555.0, 555.0, 200.0, 200.0), (), 2.0, 6.0)
    assert describe_plan(NerfConfig(steps=10**9, seconds=600.0), NerfPicturesConfig(), test) == (
        "training for 600s (--seconds), then measuring 200 test views of 400x400 into metrics.json, then pictures "
        "(test_views.png, depth.png, a 24-frame turntable at 128x128 within a tenth of the training time "
        "(at least 30s))")
    assert describe_plan(NerfConfig(steps=300), NerfPicturesConfig(test_views=20, turntable_frames=0), test) == (
        "training for 300 steps, then measuring 20 test views of 400x400 into metrics.json, then pictures "
        "(test_views.png, depth.png)")


def test_a_run_killed_while_picturing_leaves_its_metrics(tmp_path):
    """Numbers before pictures: `inr nerf` killed during its turntable still leaves metrics.json
    with the measured PSNR and SSIM; its plan and progress were printed on the way."""
    scene = tmp_path / "scene"
    assert main(["scene", str(ROOT / "datasets" / "meshes" / "spot.obj"), "--out", str(scene), "--size", "48",
                 "--train", "3", "--test", "2"]) == 0
    out = tmp_path / "out"
    # 5000 frames of 48 x 48 take far longer than the few seconds before the kill
    command = [sys.executable, "-m", "flows.cli", "nerf", str(scene), "--steps", "2", "--out", str(out),
               "--frames", "5000", "--turntable-size", "64", "--picture-seconds", "100000", "--device", "cpu", *TINY]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("rendered 1/5000 turntable frames" in line for line in lines):  # well into the pictures
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        assert process.poll() is None  # still picturing when killed
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        reader.join(timeout=10)
    err = "".join(lines)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == "measured" and metrics["views"] == 2 and metrics["steps"] == 2
    assert 0 < metrics["psnr"] < 60 and -1 <= metrics["ssim"] <= 1
    assert not (out / "turntable.gif").exists()
    assert ("training for 2 steps, then measuring 2 test views of 48x48 into metrics.json, then pictures "
            "(test_views.png, depth.png, a 5000-frame turntable at 48x48 within 100000s)") in err
    assert "inr nerf: measured 2/2 test views in " in err
    assert "inr nerf: rendered 1/5000 turntable frames, about " in err
    assert err.index("measured 2/2 test views") < err.index("inr nerf: PSNR") < err.index("rendered 1/5000")


def test_progress_lines_come_about_ten_times_with_the_time_left():
    from flows.cli.nerf import progress_printer

    lines = []
    report = progress_printer(lines.append, "measured", "test views")
    for done in range(1, 201):
        report(done, 200, 2.0 * done)  # 2 s a view
    assert len(lines) == 11  # the first view, every 20th, the last
    assert lines[0] == "inr nerf: measured 1/200 test views, about 6.6 min left"  # 199 x 2 s
    assert lines[1] == "inr nerf: measured 20/200 test views, about 6.0 min left"  # 180 x 2 s
    assert lines[-1] == "inr nerf: measured 200/200 test views in 6.7 min"


def test_inr_nerf_runs_without_the_pipeline_libraries(tmp_path):
    """`inr nerf` trains here and now: it loads neither Prefect nor Dask, Zarr or MLflow."""
    scene = tmp_path / "scene"
    assert main(["scene", str(ROOT / "datasets" / "meshes" / "spot.obj"), "--out", str(scene), "--size", "16",
                 "--train", "2", "--test", "1"]) == 0
    code = (
        "import sys\nfrom flows.cli import main\n"
        f"code = main(['nerf', {str(scene)!r}, '--steps', '2', '--out', {str(tmp_path / 'out')!r}, '--frames', '0',"
        f" '--device', 'cpu', '--quiet', *{TINY!r}])\n"
        "print(code, sorted(m for m in ('prefect', 'dask', 'distributed', 'zarr', 'mlflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["steps"] == 2
