"""Scenes for the NeRF flow at paths and URLs (fsspec's in-memory store standing in for S3): rendered from
a mesh at a URL into a run folder at a URL, reused, re-made after a crash without trusting an old record,
given ready-made at a URL, and read back for rays with errors naming the file at the URL."""

import json
import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest

from inrcore.errors import SceneError, ShapeError
from inrcore.nerf.meshscenes import scene_from_mesh
from inrcore.nerf.scenes import load_scene_split, scene_fingerprint
from inrcore.nerf.settings import MeshSceneConfig, RaysConfig
from tasks import locations
from tasks.nerf.rays import generate_rays
from tasks.nerf.scenes import is_scene_folder, local_scene, make_scene
from tasks.store import open_store


ROOT = Path(__file__).resolve().parents[2]
SMALL = MeshSceneConfig(size=8, n_train=3, n_test=1, seed=2)


@pytest.fixture
def bucket():
    return f"memory:///inrflow-scenes-{uuid.uuid4().hex}"


@pytest.fixture
def mesh_url(bucket):
    return locations.copy_to(ROOT / "datasets" / "meshes" / "spot.obj", locations.join(bucket, "data", "spot.obj"))


def test_a_mesh_at_a_url_is_rendered_into_a_run_folder_at_a_url_and_reused(bucket, mesh_url, tmp_path):
    out = locations.join(bucket, "run")
    made = make_scene.fn("spot", mesh_url, out, SMALL)
    assert made.scene_dir == f"{out}/scenes/spot" and not made.reused
    # the same pictures as a scene rendered on a local disk from the same file and settings
    local = scene_from_mesh(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "spot", SMALL)
    with local_scene(made.scene_dir) as folder:
        for split in ("train", "test"):
            assert np.array_equal(load_scene_split(folder, split).images, load_scene_split(local, split).images)
        assert json.loads(Path(folder, "transforms_train.json").read_text())["source"] == mesh_url
    assert locations.read_json(f"{out}/scenes/spot.json")["fingerprint"] == made.fingerprint
    again = make_scene.fn("spot", mesh_url, out, SMALL)
    assert again.reused and again.fingerprint == made.fingerprint and again.scene_dir == made.scene_dir


def test_a_crash_while_putting_a_scene_leaves_no_record_that_vouches_for_it(bucket, mesh_url, monkeypatch):
    out = locations.join(bucket, "run")
    first = make_scene.fn("spot", mesh_url, out, SMALL)
    bigger = MeshSceneConfig(size=8, n_train=4, n_test=1, seed=2)

    def die(folder, location):
        raise RuntimeError("killed while uploading")

    monkeypatch.setattr(locations, "put_folder", die)
    with pytest.raises(RuntimeError, match="killed while uploading"):
        make_scene.fn("spot", mesh_url, out, bigger)
    assert locations.read_json(f"{out}/scenes/spot.json") is None  # the first record no longer vouches
    monkeypatch.undo()
    redone = make_scene.fn("spot", mesh_url, out, SMALL)  # not reused: made again, whole
    assert not redone.reused and redone.fingerprint == first.fingerprint
    with local_scene(redone.scene_dir) as folder:
        assert len(load_scene_split(folder, "train").images) == 3


def test_a_ready_scene_at_a_url_is_used_as_it_is_and_its_rays_are_read_from_a_copy(bucket, tmp_path):
    local = scene_from_mesh(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "ready", SMALL)
    url = locations.put_folder(local, locations.join(bucket, "scenes", "ready"))
    assert is_scene_folder(url) and is_scene_folder(local) and not is_scene_folder(f"{url}/transforms_train.json")
    scene = make_scene.fn("ready", url, locations.join(bucket, "run"), SMALL)
    assert scene.reused and scene.scene_dir == url and scene.fingerprint == scene_fingerprint(local)
    store = str(tmp_path / "store.zarr")
    rays = generate_rays.fn("ready", url, scene.fingerprint, store, RaysConfig(chunk=64))
    assert rays.count == 3 * 8 * 8
    colours = np.asarray(open_store(store, mode="r")["rays/ready/colours"][...])
    expected = load_scene_split(local, "train").images.reshape(-1, 3)
    assert np.allclose(np.sort(colours, axis=0), np.sort(expected, axis=0))  # the same pixels, shuffled


def test_errors_about_a_scene_at_a_url_name_its_files_there(bucket, tmp_path):
    local = scene_from_mesh(ROOT / "datasets" / "meshes" / "spot.obj", tmp_path / "ready", SMALL)
    broken = tmp_path / "broken"
    shutil.copytree(local, broken)
    picture = sorted((broken / "train").glob("*.png"))[0]
    picture.unlink()
    url = locations.put_folder(broken, locations.join(bucket, "broken"))
    with pytest.raises(SceneError) as on_disk:
        load_scene_split(broken, "train")
    assert on_disk.value.path == f"{broken}/train/{picture.stem}"  # as the transforms file names it
    with pytest.raises(SceneError) as caught:
        generate_rays.fn("broken", url, "key", str(tmp_path / "store.zarr"), RaysConfig(chunk=64))
    assert caught.value.path == f"{url}/train/{picture.stem}" 
    assert caught.value.problem == on_disk.value.problem.replace(str(broken), url)
    no_train = tmp_path / "no-train"
    shutil.copytree(local, no_train)
    (no_train / "transforms_train.json").unlink()
    url = locations.put_folder(no_train, locations.join(bucket, "no-train"))
    with pytest.raises(SceneError, match=f"^{url}/transforms_train.json: missing: a scene folder needs"):
        make_scene.fn("no-train", url, locations.join(bucket, "run"), SMALL)
    with pytest.raises(ShapeError, match="gone.obj: file does not exist"):
        make_scene.fn("gone", locations.join(bucket, "gone.obj"), locations.join(bucket, "run"), SMALL)
