"""The README's commands as a user runs them: the installed `inr` in a fresh process, with a
fresh PREFECT_HOME and no test harness (Prefect starts its own temporary server, as for a user).

Settings are tiny so that each command takes seconds of work; what is checked is that the real
command path works end to end and writes what it promises. A user's own environment passes
through (so `PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=1 pytest tests/flows/test_commands.py`
shows these tests failing when the temporary server cannot start), except the settings that
would point the commands at this test session's servers or folders.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
INR = Path(sys.executable).with_name("inr")
SPOT = ROOT / "datasets" / "meshes" / "spot.obj"

# Tiny settings laid over the demo manifest's (the manifest and its meshes are the real ones).
TINY_RUN = ["--steps", "40", "--resolution", "32",
            "--set", "sampling.n_surface=3000", "--set", "sampling.n_near=3000", "--set", "sampling.n_uniform=1000",
            "--set", "training.batch_surface=512", "--set", "training.batch_offsurface=512",
            "--set", "training.batch_uniform=512", "--set", "training.network.width=32",
            "--set", "metrics.n_points=5000"]
TINY_FIT = ["--steps", "60", "--resolution", "32", "--device", "cpu",
            "--set", "sampling.n_surface=3000", "--set", "sampling.n_near=3000", "--set", "sampling.n_uniform=1000",
            "--set", "training.batch_surface=512", "--set", "training.batch_offsurface=512",
            "--set", "training.batch_uniform=512", "--set", "training.network.width=32",
            "--set", "metrics.n_points=5000"]
TINY_NERF = ["--set", "hash_levels=4", "--set", "hash_log2_size=12", "--set", "hash_base_resolution=4",
             "--set", "hash_finest_resolution=32", "--set", "ngp_width=16", "--set", "grid_resolution=8",
             "--set", "render_step=0.05", "--set", "batch_rays=64", "--set", "eval_every=2", "--set", "eval_views=1"]


def user_env(home: Path) -> dict:
    """This process's environment as a user's shell would have it: no Prefect server, home or log
    levels, no MLflow tracking URI of the test session; HOME in a fresh folder."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_PROFILES_PATH", "MLFLOW_TRACKING_URI")
           and not k.startswith("PREFECT_LOGGING_")}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def inr(args: list, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the installed `inr` with `args` in `cwd`, as a user would."""
    return subprocess.run([str(INR), *map(str, args)], cwd=cwd, env=user_env(cwd / "home"),
                          capture_output=True, text=True, timeout=timeout)


def quick_start_commands() -> list[str]:
    """The commands of README's "Quick start" code block, one per line."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.strip().splitlines() if line.strip()]


def test_readme_quick_start_is_setup_then_demo_then_tests_and_ci_runs_the_test_command():
    first, second = quick_start_commands()
    assert first == "bash scripts/setup.sh && .venv/bin/inr run datasets/demo.yaml"
    assert second == 'bash scripts/setup.sh && .venv/bin/python -m pytest -q -n 2 -m "not faults"'
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert second in ci  # .ci/run runs exactly the README's test command
    assert INR.is_file(), f"{INR}: the `inr` command is not installed in this environment"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """README's first command after its setup part, run from a fresh folder with tiny settings:
    `inr run datasets/demo.yaml` (the manifest resolved against the checkout)."""
    first = quick_start_commands()[0]
    words = shlex.split(first.split("&&", 1)[1])
    assert words[0] == ".venv/bin/inr"
    args = [str(ROOT / w) if w.endswith(".yaml") else w for w in words[1:]]
    cwd = tmp_path_factory.mktemp("user")
    done = inr([*args, *TINY_RUN], cwd)
    return cwd, done


def test_inr_run_the_demo_exits_0_with_summary_store_report_and_models(demo_run):
    cwd, done = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    run_dir = cwd / "runs" / "demo"  # the default run folder, runs/<dataset name>
    printed = json.loads(done.stdout[done.stdout.index("{"):])
    assert printed["ok"] == 3 and printed["failed"] == 0
    assert printed["summary"] == str(run_dir / "summary.json")

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ok"] == 3 and summary["failed"] == 0
    assert sorted(r["shape_id"] for r in summary["shapes"]) == ["bunny", "fandisk", "spot"]
    for record in summary["shapes"]:
        assert record["status"] == "ok" and record["error"] is None
        for key in ("chamfer_l1", "fscore", "normal_consistency", "hausdorff"):
            assert math.isfinite(record["metrics"][key])
        assert 0 <= record["metrics"]["fscore"] <= 1
        assert Path(record["mesh_path"]).is_file()
        assert record["model_uri"] == f"models:/demo-{record['shape_id']}@champion"

    import numpy as np
    import zarr

    store = zarr.open_group(str(run_dir / "store.zarr"), mode="r")
    for shape in ("bunny", "fandisk", "spot"):
        sdf = np.asarray(store[f"fields/{shape}/sdf"])
        assert sdf.shape == (32, 32, 32) and np.isfinite(sdf).all()
        assert sdf.min() < 0 < sdf.max()  # the surface crosses the grid

    report = (run_dir / "report.html").read_text()
    assert all(shape in report for shape in ("bunny", "fandisk", "spot"))


def test_inr_run_progress_reaches_prefects_api_and_the_terminal_once(demo_run):
    cwd, done = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    import sqlite3

    # The temporary server kept its database in the run folder's Prefect home: the flow run's
    # logs there are what a Prefect server's UI shows.
    database = sqlite3.connect(cwd / "runs" / "demo" / "prefect" / "prefect.db")
    try:
        logged = [message for (message,) in database.execute("SELECT message FROM log")]
        block_types = database.execute("SELECT id FROM block_type ORDER BY id").fetchall()
    finally:
        database.close()
    # the database began as the installation's template (copied, or kept as the template when there was
    # none): the same block types, with their random ids
    from tasks.dbtemplates import template_path

    template = sqlite3.connect(f"file:{template_path('prefect')}?mode=ro", uri=True)
    try:
        assert template.execute("SELECT id FROM block_type ORDER BY id").fetchall() == block_types != []
    finally:
        template.close()
    for shape in ("bunny", "fandisk", "spot"):
        for stage in ("prepare", "train", "evaluate", "extract"):
            assert sum(shape in m and f" {stage} " in m and "done" in m for m in logged) == 1, (shape, stage)
    printed = [line for line in done.stderr.splitlines() if " bunny " in line and " train " in line]
    assert len(printed) == 1 and "INFO" not in printed[0]


def test_inr_run_models_load_by_alias_in_a_fresh_process(demo_run):
    cwd, done = demo_run
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = cwd / "runs" / "demo"
    script = (
        "import json, sys, mlflow, numpy as np\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "model = mlflow.pyfunc.load_model('models:/demo-spot@champion')\n"
        "points = np.array([[0.0, 0.0, 0.0], [0.99, 0.99, 0.99]], dtype=np.float32)\n"
        "print(json.dumps(np.asarray(model.predict(points)).reshape(-1).tolist()))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script, f"sqlite:///{run_dir / 'mlflow.db'}"], cwd=cwd,
                            env=user_env(cwd / "home"), capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    values = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert len(values) == 2 and all(math.isfinite(v) for v in values)
    assert values[1] > 0  # a corner of the box is outside the cow


def test_inr_run_says_one_line_and_exits_2_when_prefects_server_cannot_start(tmp_path):
    env = user_env(tmp_path / "home")
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "0"
    done = subprocess.run([str(INR), "run", str(ROOT / "datasets" / "demo.yaml"), *TINY_RUN], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("inr:")]
    assert lines == [
        "inr: Prefect's temporary server did not start within 0 s; raise "
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL to a running Prefect server "
        "(--verbose shows the traceback)"]
    assert "Traceback" not in done.stderr  # with --verbose it is there too (tests/flows/cli/test_prefect_env.py)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """`inr fit` on a real mesh with tiny settings; (folder, process)."""
    cwd = tmp_path_factory.mktemp("fit")
    out = cwd / "spot-fit"
    return out, inr(["fit", SPOT, "--method", "siren", "--out", out, "--quiet", *TINY_FIT], cwd)


def test_inr_fit_writes_field_mesh_picture_and_metrics(fitted):
    out, done = fitted
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["field.safetensors", "mesh.ply", "mesh.png", "metrics.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 60 and metrics["method"] == "siren"
    assert json.loads(done.stdout)["chamfer_l1"] == metrics["chamfer_l1"]
    import trimesh

    mesh = trimesh.load(out / "mesh.ply", process=False)
    spot = trimesh.load(SPOT, process=False)
    assert len(mesh.faces) > 100
    # In the input's own coordinates: centred on the cow, within the normalised cube mapped back
    # (after 60 steps the surface is still a rough blob, so its extent is not the cow's yet).
    assert abs(mesh.bounds.mean(axis=0) - spot.bounds.mean(axis=0)).max() < 0.05 * spot.extents.max()
    assert mesh.extents.max() < 1.2 * spot.extents.max()


def test_inr_mesh_isopoints_and_render_on_the_fitted_field(fitted, tmp_path):
    out, done = fitted
    assert done.returncode == 0, done.stderr[-3000:]
    field = out / "field.safetensors"

    meshed = inr(["mesh", field, "--method", "range", "--resolution", "32", "--out", tmp_path / "range.ply"], tmp_path)
    assert meshed.returncode == 0, meshed.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["faces"] > 0 and metrics["evaluations"] > 0
    assert (tmp_path / "range.ply").stat().st_size > 0

    iso = inr(["isopoints", field, "--n", "500", "--out", tmp_path / "iso.ply"], tmp_path)
    assert iso.returncode == 0, iso.stderr[-3000:]
    import trimesh

    cloud = trimesh.load(tmp_path / "iso.ply", process=False)
    assert len(cloud.vertices) > 100

    render = inr(["render", field, "--size", "32", "--out", tmp_path / "render.png"], tmp_path)
    assert render.returncode == 0, render.stderr[-3000:]
    from PIL import Image

    with Image.open(tmp_path / "render.png") as picture:
        width, height = picture.size
    assert height == 32 and width > 2 * 32  # depth and normals side by side, with a gap
    assert json.loads(render.stdout)["hits"] > 0


def test_inr_scene_then_nerf_write_a_scene_metrics_and_renders(tmp_path):
    scene = tmp_path / "scene"
    made = inr(["scene", SPOT, "--out", scene, "--size", "16", "--train", "4", "--test", "2"], tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    assert (scene / "transforms_train.json").is_file() and len(list((scene / "test").glob("*.png"))) == 2

    out = tmp_path / "nerf"
    trained = inr(["nerf", scene, "--model", "ngp", "--steps", "2", "--out", out, "--frames", "2", "--quiet",
                   *TINY_NERF], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["model"] == "ngp" and 0 < metrics["psnr"] < 60
    for name in ("field.safetensors", "test_views.png", "depth.png", "turntable.gif"):
        assert (out / name).is_file(), name


def test_inr_skeleton_as_the_readme_gives_it_writes_the_skeleton_files(tmp_path):
    # README's "Skeletons of shapes" commands, with a short field fit and few surface samples.
    out = tmp_path / "spot-skeleton"
    neural = inr(["skeleton", SPOT, "--out", out, "--steps", "30", "--n-surface", "300", "--quiet",
                  "--set", "field.batch_box=256", "--set", "field.batch_surface=256", "--set", "field.start_steps=30"],
                 tmp_path)
    assert neural.returncode == 0, neural.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["balls.ply", "metrics.json", "skeleton.ma", "skeleton.ply",
                                                     "skeleton.png"]
    assert json.loads(neural.stdout)["field_steps"] == 30
    axis = inr(["skeleton", SPOT, "--method", "coverage-axis", "--delta", "0.02", "--out", tmp_path / "ca"], tmp_path)
    assert axis.returncode == 0, axis.stderr[-3000:]
    metrics = json.loads((tmp_path / "ca" / "metrics.json").read_text())
    assert metrics["method"] == "coverage-axis" and metrics["balls"] > 10 and metrics["cover"]["method"] == "milp"
    assert "inr skeleton: " in axis.stderr and " balls, " in axis.stderr


TINY_SPACE = ["--set", "sampling.n_samples=3000", "--set", "sampling.n_surface=1500", "--set", "sampling.n_occupancy=3000",
              "--set", "training.epochs=20", "--set", "training.decoder.latent=8", "--set", "training.decoder.width=32",
              "--set", "fitting.steps=20", "--set", "fitting.samples=500", "--set", "occnet.steps=10",
              "--set", "occnet.hidden=16", "--set", "occnet.code=16", "--set", "occnet.decoder_hidden=16",
              "--set", "occnet.batch=4", "--set", "occnet.n_query=256", "--set", "mesh.start=16",
              "--set", "mesh.levels=1", "--set", "noise_levels=[0.0]", "--set", "metrics.n_points=2000",
              "--set", "scan.resolution=32"]


def test_inr_generate_and_space_run_as_the_readme_gives_them(tmp_path):
    # README's "Learned shape spaces" commands: a generated collection, then the pipeline over the
    # committed one (datasets/shapes) with tiny settings.
    made = inr(["generate", tmp_path / "gen", "--per-family", "3", "--families", "mug,airplane"], tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    assert json.loads(made.stdout)["shapes"] == 6
    assert len(list((tmp_path / "gen" / "meshes").glob("*.obj"))) == 6
    run = inr(["space-run", ROOT / "datasets" / "shapes" / "manifest.yaml", "--out", tmp_path / "run", "--verbose",
               *TINY_SPACE], tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    # one temporary Prefect server, the command's: the LocalCluster's workers are given its address
    assert run.stderr.count("Starting temporary server") == 1, run.stderr[-3000:]
    printed = json.loads(run.stdout)
    assert printed["ok"] == 24 and printed["deepsdf"] == "models:/shapes-deepsdf@champion"
    summary = json.loads((tmp_path / "run" / "shapespace_summary.json").read_text())
    held_out = [r for r in summary["shapes"] if r["split"] == "test"]
    assert len(held_out) == 6 and all("reconstruct/chamfer_l1" in r["metrics"] for r in held_out)
    assert (tmp_path / "run" / "shapespace_report.html").is_file()
