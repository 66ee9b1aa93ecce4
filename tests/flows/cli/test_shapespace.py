"""`inr deepsdf`, `inr occnet` and `inr mesh --shape` on a tiny collection, as a user runs them."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from flows.cli import main
from inrcore.device import multiplies_bfloat16
from inrcore.shapespace.occnet import load_occnet
from tests.flows.shapespace_fixtures import tiny_collection


TINY_SETS = ["--set", "sampling.n_samples=4000", "--set", "sampling.n_surface=2000", "--set", "sampling.n_occupancy=4000",
             "--set", "training.decoder.latent=8", "--set", "training.decoder.width=32", "--set", "mesh.start=16",
             "--set", "mesh.levels=2", "--set", "metrics.n_points=3000",
             "--set", "fitting.steps=200"]  # a fourth of the authors' 800: Chamfer-L1 0.003-0.005 against 0.003 at 800


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    manifest = tiny_collection(folder)
    out = folder / "ds"
    assert main(["deepsdf", "train", str(manifest), "--steps", "300", "--out", str(out), "--quiet", *TINY_SETS]) == 0
    return folder, out


def test_train_writes_the_space_its_metrics_and_members(trained):
    folder, out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["shapes"] == 5 and metrics["epochs"] == 300 and metrics["failed"] == {}
    assert metrics["history"][-1]["loss"] < metrics["history"][0]["loss"]
    assert (out / "members.png").stat().st_size > 0


def test_reconstruct_a_held_out_sphere_in_its_own_coordinates(trained, tmp_path):
    folder, out = trained
    moved = trimesh.creation.icosphere(3, radius=5.0).apply_translation([10, 0, 0])
    moved.export(tmp_path / "big.obj")
    assert main(["deepsdf", "reconstruct", str(out / "model.safetensors"), str(tmp_path / "big.obj"), "--out",
                 str(tmp_path / "rec"), "--quiet", *TINY_SETS]) == 0
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    assert metrics["chamfer_l1"] < 0.03
    assert metrics["fit_start"] in ("s0", "s1", "s3")  # started at a training sphere's code, not a box's
    mesh = trimesh.load(tmp_path / "rec" / "mesh.ply")
    radii = np.linalg.norm(mesh.vertices - [10, 0, 0], axis=1)
    assert np.median(radii) == pytest.approx(5.0, rel=0.1)


def test_complete_from_one_scan(trained, tmp_path):
    folder, out = trained
    code = main(["deepsdf", "complete", str(out / "model.safetensors"), str(folder / "meshes" / "s2.obj"), "--noise",
                 "0.01", "--out", str(tmp_path / "c"), "--quiet", *TINY_SETS])
    assert code == 0
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["noise"] == 0.01 and metrics["scan_points"] > 100 and metrics["chamfer_l1"] < 0.05
    assert len(trimesh.load(tmp_path / "c" / "scan.ply").vertices) == metrics["scan_points"]


def test_complete_from_a_scan_file_matches_the_mesh_it_was_made_from(trained, tmp_path):
    folder, out = trained
    mesh = folder / "meshes" / "s2.obj"
    model = str(out / "model.safetensors")
    assert main(["deepsdf", "complete", model, str(mesh), "--out", str(tmp_path / "m"), "--quiet", *TINY_SETS]) == 0
    scan = tmp_path / "m" / "scan.npz"
    with np.load(scan) as data:  # the scan in the mesh file's coordinates, with the map into the model's frame
        assert data["depth"].shape == data["directions"].shape[:2] and data["center"].shape == (3,)
    assert main(["deepsdf", "complete", model, str(scan), "--reference", str(mesh), "--out", str(tmp_path / "f"),
                 "--quiet", *TINY_SETS]) == 0
    from_mesh = json.loads((tmp_path / "m" / "metrics.json").read_text())
    from_file = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert from_file["scan_points"] == from_mesh["scan_points"]
    assert from_file["chamfer_l1"] == pytest.approx(from_mesh["chamfer_l1"], rel=1e-3)
    a, b = (trimesh.load(tmp_path / d / "mesh.ply").vertices for d in ("m", "f"))
    assert np.abs(a.mean(axis=0) - b.mean(axis=0)).max() < 1e-4  # both in the input's coordinates


def test_a_bad_scan_file_is_refused_naming_it(trained, tmp_path, capsys):
    folder, out = trained
    bad = tmp_path / "scan.npz"
    np.savez(bad, origin=np.zeros(3), depth=np.ones((4, 4)))
    assert main(["deepsdf", "complete", str(out / "model.safetensors"), str(bad), "--out", str(tmp_path / "o"),
                 "--quiet", *TINY_SETS]) != 0
    err = capsys.readouterr().err
    assert str(bad) in err and "lacks directions" in err
    assert not (tmp_path / "o" / "mesh.ply").exists()


def test_a_member_meshes_like_any_field(trained, tmp_path, capsys):
    folder, out = trained
    assert main(["mesh", str(out / "model.safetensors"), "--shape", "s3", "--method", "dense", "--resolution", "32",
                 "--out", str(tmp_path / "m.ply"), "--quiet"]) == 0
    radii = np.linalg.norm(trimesh.load(tmp_path / "m.ply").vertices, axis=1)
    assert np.median(radii) == pytest.approx(0.6 * 0.9 / 0.6, rel=0.1)  # s3 (r 0.6) normalised to extent 0.9
    capsys.readouterr()
    assert main(["mesh", str(out / "model.safetensors"), "--out", str(tmp_path / "n.ply")]) == 2
    assert "shape space of 5 shapes; choose one with --shape" in capsys.readouterr().err
    assert main(["mesh", str(out / "model.safetensors"), "--shape", "nope", "--out", str(tmp_path / "n.ply")]) == 2
    assert "'nope' is not in this shape space" in capsys.readouterr().err


def test_occnet_train_and_reconstruct(trained, tmp_path):
    folder, _ = trained
    manifest = folder / "manifest.yaml"
    sets = [*TINY_SETS, "--set", "occnet.hidden=16", "--set", "occnet.code=16", "--set", "occnet.decoder_hidden=16",
            "--set", "occnet.batch=4", "--set", "occnet.n_query=256"]
    choose = ["--set", "occnet.choose_threshold=true", "--set", "occnet.threshold_shapes=3",
              "--set", "occnet.scale_jitter=0.1", "--set", "occnet.warp_jitter=0.1", "--set", "occnet.neighbours=2",
              "--set", "occnet.statistics_batches=3"]
    assert main(["occnet", "train", str(manifest), "--steps", "30", "--out", str(tmp_path / "on"), "--quiet", *sets,
                 *choose]) == 0
    metrics = json.loads((tmp_path / "on" / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["shapes"] == 5
    assert metrics["bfloat16_passes"] is False  # occnet.bfloat16 false by default: float32 passes
    rates = metrics["threshold_iou"]  # each candidate's median IoU on three training shapes; the best chosen
    assert len(rates) == 19 and rates[f"{metrics['threshold']:.2f}"] == max(rates.values())
    saved = load_occnet(tmp_path / "on" / "model.safetensors")[1]
    assert saved.threshold == metrics["threshold"] and (saved.scale_jitter, saved.warp_jitter) == (0.1, 0.1)
    assert saved.neighbours == 2  # the decoder reads its queries' two nearest cloud points, here and below
    assert saved.statistics_batches == 3 and metrics["statistics_seconds"] > 0.0  # recomputed as training ended
    assert main(["occnet", "reconstruct", str(tmp_path / "on" / "model.safetensors"), str(folder / "meshes" / "s2.obj"),
                 "--out", str(tmp_path / "onr"), "--quiet", *sets]) == 0
    rec = json.loads((tmp_path / "onr" / "metrics.json").read_text())
    assert 0.0 <= rec["iou"] <= 1.0 and rec["cloud_points"] == 300 and rec["threshold"] == metrics["threshold"]
    assert rec["mirror_views"] == ""  # the network's own: none
    assert main(["occnet", "reconstruct", str(tmp_path / "on" / "model.safetensors"), str(folder / "meshes" / "s2.obj"),
                 "--out", str(tmp_path / "onm"), "--quiet", *sets, "--set", "occnet.mirror_views=xz",
                 "--set", "occnet.refine_steps=5"]) == 0
    mirrored = json.loads((tmp_path / "onm" / "metrics.json").read_text())
    assert mirrored["mirror_views"] == "xz" and 0.0 <= mirrored["iou"] <= 1.0 and mirrored["cloud_points"] == 300
    assert (rec["refine_steps"], mirrored["refine_steps"], mirrored["refine_lr"]) == (0, 5, 1e-3)


def readme_two_core_occnet_command() -> list[str]:
    """The arguments of README's two-core `inr occnet train` command (the block after "In one command")."""
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = text.split("In one command, for the half hour on two cores", 1)[1].split("```bash", 1)[1].split("```")[0]
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:3] == [".venv/bin/inr", "occnet", "train"], words[:3]
    return words[3:]


def test_the_readme_two_core_occnet_command_trains(trained, tmp_path):
    folder, _ = trained
    args = readme_two_core_occnet_command()
    assert args[:5] == ["runs/gen/manifest.yaml", "--seconds", "1755", "--out", "runs/on"]
    settings = args[5:]
    # the README's command on the tiny collection: 12 steps instead of 1,755 s, fewer statistics batches and
    # threshold shapes (later --set wins), everything else as written
    tiny = ["--set", "occnet.statistics_batches=3", "--set", "occnet.threshold_shapes=2", "--device", "cpu"]
    assert main(["occnet", "train", str(folder / "manifest.yaml"), "--steps", "12", "--out", str(tmp_path / "on"),
                 "--quiet", *TINY_SETS, *settings, *tiny]) == 0
    metrics = json.loads((tmp_path / "on" / "metrics.json").read_text())
    assert metrics["steps"] == 12 and metrics["shapes"] == 5
    # bfloat16=auto: bfloat16 passes only where this CPU multiplies it
    assert metrics["bfloat16_passes"] is multiplies_bfloat16(torch.device("cpu"))
    saved = load_occnet(tmp_path / "on" / "model.safetensors")[1]
    assert (saved.batch, saved.n_query, saved.hidden, saved.decoder_hidden) == (32, 256, 64, 128)
    assert (saved.lr, saved.lr_final, saved.near_fraction) == (2e-3, 1e-5, 0.5)
    assert (saved.neighbours, saved.encoder_neighbours, saved.mirror_views, saved.refine_steps) == (3, 8, "xz", 20)
    assert saved.choose_threshold and saved.threshold == metrics["threshold"]


@pytest.mark.parametrize(("setting", "message"), [
    ("occnet.batchs=4", "inr: settings.occnet: unknown key(s) batchs; expected some of n_points,"),
    ("occnet.batch=-1", "inr: settings.occnet.batch: must be positive, got -1"),
    ("training.lr_decoder=fast", "inr: settings.training.lr_decoder: expected a number, got 'fast'"),
])
def test_a_bad_setting_is_named_by_its_dotted_path(tmp_path, capsys, setting, message):
    assert main(["occnet", "train", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o"), "--set", setting]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o" / "model.safetensors").exists()


@pytest.mark.parametrize(("options", "message"), [
    (["--per-family", "0"], "inr: --per-family: must be positive, got 0"),
    (["--test-fraction", "1.5"], "inr: --test-fraction: must be in (0, 1), got 1.5"),
    (["--families", "chair,sofa"], "inr: --families[1]: expected one of chair, table, lamp, mug, airplane, got 'sofa'"),
    (["--families", ","], "inr: --families: name at least one family (of chair, table, lamp, mug, airplane)"),
])
def test_generate_names_the_bad_option(tmp_path, capsys, options, message):
    assert main(["generate", str(tmp_path / "gen"), *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "gen").exists()


def test_an_empty_train_split_is_refused(tmp_path, capsys):
    import yaml

    trimesh.creation.box().export(tmp_path / "a.obj")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"name": "x", "shapes": [{"path": "a.obj", "split": "test"}]}))
    assert main(["deepsdf", "train", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert "the train split is empty (1 shapes, all held out)" in capsys.readouterr().err


def test_a_bad_shape_is_skipped_not_fatal(tmp_path):
    (tmp_path / "meshes").mkdir()
    (tmp_path / "meshes" / "broken.obj").write_text("this is not a mesh\n")
    manifest = tiny_collection(tmp_path, extra_shapes=[{"id": "broken", "path": "meshes/broken.obj"}])
    assert main(["deepsdf", "train", str(manifest), "--steps", "5", "--out", str(tmp_path / "o"), "--quiet",
                 *TINY_SETS]) == 0
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["shapes"] == 5 and "broken.obj" in metrics["failed"]["broken"]


def test_interpolate_between_two_training_shapes(trained, tmp_path):
    from inrcore.shapespace.settings import ShapeMeshConfig
    from inrcore.shapespace.space import load_shape_space, mesh_field

    folder, out = trained
    assert main(["deepsdf", "interpolate", str(out / "model.safetensors"), "s0", "b0", "--count", "3",
                 "--out", str(tmp_path / "i"), "--quiet", *TINY_SETS]) == 0
    steps = [trimesh.load(tmp_path / "i" / f"step-{k}.ply") for k in range(3)]
    space = load_shape_space(out / "model.safetensors")
    for k, shape_id in ((0, "s0"), (2, "b0")):  # the ends are the two members themselves
        member, _ = mesh_field(*space.member(shape_id), ShapeMeshConfig(start=16, levels=2), torch.device("cpu"))
        assert len(steps[k].vertices) == len(member.vertices)
        assert np.allclose(np.sort(steps[k].vertices, axis=0), np.sort(member.vertices, axis=0), atol=1e-5)
    assert not np.array_equal(steps[1].vertices[:10], steps[0].vertices[:10])
    assert (tmp_path / "i" / "strip.png").stat().st_size > 0
