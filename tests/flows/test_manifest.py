from pathlib import Path

import pytest
import yaml

from flows.manifest import hash_split, manifest_for_folder, manifest_from_dict, read_manifest, shape_id_for
from inrcore.errors import ConfigError


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("v 0 0 0\n")
    return path


def test_shapes_paths_ids_and_config(tmp_path):
    touch(tmp_path / "meshes" / "a.obj")
    m = manifest_from_dict({
        "name": "set1",
        "shapes": ["meshes/a.obj", {"id": "b2", "path": "meshes/missing.ply"}],
        "config": {"training": {"steps": 12}},
    }, source=str(tmp_path / "set1.yaml"))
    assert m.name == "set1"
    assert [(s.shape_id, s.path) for s in m.shapes] == [
        ("a", str(tmp_path / "meshes" / "a.obj")), ("b2", str(tmp_path / "meshes" / "missing.ply"))]
    assert m.config.training.steps == 12


def test_glob_collects_mesh_files_only(tmp_path):
    for name in ("x.obj", "y.PLY", "notes.txt"):
        touch(tmp_path / "m" / name)
    m = manifest_from_dict({"name": "g", "glob": "m/*"}, source=str(tmp_path / "g.yaml"))
    assert sorted(s.shape_id for s in m.shapes) == ["x", "y"]


def test_a_manifest_at_a_url_globs_and_lists_shapes_as_urls():
    import uuid

    from tasks import locations

    base = f"memory:///inrflow-manifest-{uuid.uuid4().hex}"  # the form fsspec gives back from a glob
    for name in ("x.obj", "y.ply", "notes.txt"):
        locations.write_text(f"{base}/m/{name}", "v 0 0 0\n")
    locations.write_text(f"{base}/g.yaml", "name: g\nglob: m/*\nshapes: [{id: z, path: m/x.obj}]\n")
    m = read_manifest(f"{base}/g.yaml")
    assert [(s.shape_id, s.path) for s in m.shapes] == [
        ("z", f"{base}/m/x.obj"), ("x", f"{base}/m/x.obj"), ("y", f"{base}/m/y.ply")]


@pytest.mark.parametrize("data, message", [
    ({"shapes": ["a.obj"]}, r"'name' must be a word"),
    ({"name": "n"}, r"lists no shapes"),
    ({"name": "n", "glob": "none/*.obj"}, r"glob 'none/\*.obj' matches no mesh or point-cloud file"),
    ({"name": "n", "shapes": ["a.obj", "sub/a.obj"]}, r"shape id 'a' is used by both"),
    ({"name": "n", "shapes": [3]}, r"shapes\[0\] must be a path"),
    ({"name": "n", "shapes": ["a.obj"], "extra": 1}, r"unknown key\(s\) extra"),
    ({"name": "n", "shapes": ["a.obj"], "config": {"grid": {"resolution": "high"}}},
     r"m.yaml: config.grid.resolution: expected an integer"),
    (["a.obj"], r"a manifest must be a mapping"),
    ({"name": "..", "shapes": ["a.obj"]}, r"'name' must be a word .* got '\.\.'"),  # runs/.. is outside runs/
    ({"name": ".hidden", "shapes": ["a.obj"]}, r"'name' must be a word"),
    ({"name": "a/b", "shapes": ["a.obj"]}, r"'name' must be a word"),
    ({"name": "n" * 101, "shapes": ["a.obj"]}, r"'name' must be a word of at most 100"),
    ({"name": "n", "shapes": [{"id": "../up", "path": "a.obj"}]}, r"shapes\[0\]\.id must be at most 100 letters"),
    ({"name": "n", "shapes": [{"id": "x" * 101, "path": "a.obj"}]}, r"shapes\[0\]\.id must be at most 100"),
    ({"name": "n", "shapes": ["a.obj"], "config": {"training": {"steps": -5}}}, r"config.training.steps"),
])
def test_bad_manifests_name_the_source(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message) as info:
        manifest_from_dict(data, source=str(tmp_path / "m.yaml"))
    assert str(tmp_path / "m.yaml") in str(info.value)


def test_folder_manifest(tmp_path):
    touch(tmp_path / "shapes" / "cow.obj")
    touch(tmp_path / "shapes" / "teapot.stl")
    m = manifest_for_folder(tmp_path / "shapes")
    assert m.name == "shapes"
    assert sorted(s.shape_id for s in m.shapes) == ["cow", "teapot"]
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no mesh or point-cloud file .* nor do its subfolders"):
        manifest_for_folder(tmp_path / "empty")


def test_shapenet_like_folders_are_read_recursively_with_their_test_lists(tmp_path):
    root = tmp_path / "ShapeNet"
    for model in ("1a2b", "3c4d", "5e6f"):
        touch(root / "03001627" / model / "models" / "model_normalized.obj")
    touch(root / "04379243" / "tbl1.obj")
    (root / "03001627" / "test.lst").write_text("3c4d\n")
    m = manifest_for_folder(root)
    got = {(s.shape_id, s.split, s.family) for s in m.shapes}
    assert got == {("03001627_1a2b", "train", "03001627"), ("03001627_3c4d", "test", "03001627"),
                   ("03001627_5e6f", "train", "03001627"),
                   ("04379243_tbl1", hash_split("04379243_tbl1"), "04379243")}
    assert [s.shape_id for s in m.split("test")][0] == "03001627_3c4d"


def test_hash_split_is_stable_and_about_a_fifth():
    ids = [f"shape_{i}" for i in range(2000)]
    tests = [i for i in ids if hash_split(i) == "test"]
    assert 0.17 < len(tests) / len(ids) < 0.23
    assert tests == [i for i in ids if hash_split(i) == "test"]


def test_splits_and_families_in_a_manifest(tmp_path):
    touch(tmp_path / "a.obj")
    touch(tmp_path / "b.obj")
    m = manifest_from_dict({"name": "s", "shapes": [{"path": "a.obj", "split": "test", "family": "mug"}, "b.obj"],
                            "generator": {"seed": 0}, "shapespace": {"training": {"epochs": 3}}},
                           source=str(tmp_path / "m.yaml"))
    assert [(s.shape_id, s.split, s.family) for s in m.shapes] == [("a", "test", "mug"), ("b", "train", "")]
    assert m.shapespace.training.epochs == 3
    with pytest.raises(ConfigError, match=r"shapes\[0\]\.split must be one of train, test, got 'val'"):
        manifest_from_dict({"name": "s", "shapes": [{"path": "a.obj", "split": "val"}]}, source=str(tmp_path / "m.yaml"))
    with pytest.raises(ConfigError, match="shapespace"):
        manifest_from_dict({"name": "s", "shapes": ["a.obj"], "shapespace": {"training": {"epochs": -1}}},
                           source=str(tmp_path / "m.yaml"))


def test_shape_ids_are_safe():
    assert shape_id_for("/x/My Bunny (v2).obj") == "My_Bunny_v2"
    assert shape_id_for("rocker-arm.obj") == "rocker-arm"


def test_point_clouds_are_shapes_too(tmp_path):
    for name in ("a.obj", "scan.xyz", "cloud.npz", "c.ply", "notes.txt", "d.csv"):
        touch(tmp_path / "s" / name)
    m = manifest_from_dict({"name": "p", "glob": "s/*"}, source=str(tmp_path / "p.yaml"))
    assert sorted(s.shape_id for s in m.shapes) == ["a", "c", "cloud", "scan"]
    assert sorted(s.shape_id for s in manifest_for_folder(tmp_path / "s").shapes) == ["a", "c", "cloud", "scan"]
    only_clouds = manifest_for_folder(touch(tmp_path / "t" / "x.xyz").parent)
    assert [(s.shape_id, s.path) for s in only_clouds.shapes] == [("x", str(tmp_path / "t" / "x.xyz"))]


def test_a_nerf_section_of_an_earlier_version_keeps_its_turntable_frames(tmp_path):
    (tmp_path / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    path = tmp_path / "m.yaml"
    path.write_text("name: old\nshapes: [a.obj]\nnerf: {turntable_frames: 6, alias: best}\n")
    manifest = manifest_from_dict(yaml.safe_load(path.read_text()), source=str(path))
    assert manifest.nerf.pictures.turntable_frames == 6 and manifest.nerf.alias == "best"
    path.write_text("name: old\nshapes: [a.obj]\nnerf: {turntable_frames: 6, pictures: {turntable_size: 64}}\n")
    pictures = manifest_from_dict(yaml.safe_load(path.read_text()), source=str(path)).nerf.pictures
    assert (pictures.turntable_frames, pictures.turntable_size) == (6, 64)


def test_the_skeleton_manifest_switches_the_skeleton_stage_on():
    from flows.pipeline import stages_for

    manifest = read_manifest(str(Path(__file__).resolve().parents[2] / "datasets" / "skeletons.yaml"))
    assert [s.shape_id for s in manifest.shapes] == ["bunny", "spot", "fandisk"]
    assert manifest.config.skeleton.enabled and manifest.config.skeleton.method == "neural"
    assert stages_for(manifest.config)[-4:] == ("skeleton-field", "skeleton-trace", "skeleton-select", "skeleton-link")


def test_bad_skeleton_settings_name_the_key(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("name: m\nshapes: [a.obj]\nconfig: {skeleton: {method: medial}}\n")
    with pytest.raises(ConfigError, match=r"m\.yaml: config\.skeleton\.method: "):
        read_manifest(str(path))


@pytest.mark.parametrize("text, message", [
    ("name: n\nshapes: !!python/object/apply:os.system [echo hi]\n", r"not plain YAML \(a tag it will not construct, line 2\)"),
    ("name: n\nshapes: [" + "[" * 5000 + "]" * 5000 + "]\n", r"nested too deeply|not valid YAML"),
    ("name: n\nshapes: [a.obj\n", r"not valid YAML"),
])
def test_hostile_manifest_files_are_refused_clearly(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        read_manifest(str(path))
    assert str(path) in str(info.value)


def test_a_huge_manifest_file_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    import flows.manifest

    monkeypatch.setattr(flows.manifest, "MAX_MANIFEST_BYTES", 1000)
    path = tmp_path / "m.yaml"
    path.write_text("name: n\nshapes:\n" + "  - a.obj\n" * 200)
    with pytest.raises(ConfigError, match=r"larger than the 0 MiB allowed"):
        read_manifest(str(path))


def test_long_file_names_give_ids_that_fit_a_path_part():
    assert shape_id_for("/d/" + "x" * 300 + ".obj") == "x" * 100
