"""Locations: paths and fsspec URLs read and written whole, inputs copied for path-only readers with
errors naming the URL, storage options from the environment (and never echoed)."""

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from inrcore.errors import ConfigError, ShapeError
from tasks import locations


@pytest.fixture
def memory_url():
    """A fresh folder in fsspec's in-memory filesystem (a URL that is not a local path)."""
    return f"memory:///inrflow-test-{uuid.uuid4().hex}"  # the form fsspec gives back from a glob


def test_urls_and_paths_are_told_apart_and_joined(tmp_path):
    assert locations.is_url("s3://bucket/run") and locations.is_url("memory://x")
    assert not locations.is_url(str(tmp_path)) and not locations.is_url(tmp_path.as_uri())
    assert locations.join("s3://bucket/run/", "meshes", "a.ply") == "s3://bucket/run/meshes/a.ply"
    assert locations.join(str(tmp_path), "meshes", "a.ply") == str(tmp_path / "meshes" / "a.ply")
    assert locations.local_path(tmp_path.as_uri()) == tmp_path


@pytest.mark.parametrize("kind", ["path", "url"])
def test_json_bytes_and_hashes_round_trip(kind, tmp_path, memory_url):
    base = str(tmp_path) if kind == "path" else memory_url
    record = locations.join(base, "shapes", "a.json")
    assert locations.read_json(record) is None and not locations.exists(record)
    assert locations.write_json(record, {"b": 1, "a": [2, 3]}) == record
    assert locations.read_json(record) == {"a": [2, 3], "b": 1}
    assert locations.read_bytes(record) == b'{\n  "a": [\n    2,\n    3\n  ],\n  "b": 1\n}\n'
    assert locations.is_file(record)
    data = bytes(range(256)) * 5000  # more than one hashing chunk
    blob = locations.join(base, "blob.bin")
    locations.write_bytes(blob, data)
    assert locations.file_sha256(blob) == hashlib.sha256(data).hexdigest()
    assert locations.file_sha256(locations.join(base, "missing.bin")) is None
    assert locations.glob(locations.join(base, "**", "*.json")) == [record]


@pytest.mark.parametrize("kind", ["path", "url"])
def test_a_failed_write_leaves_nothing(kind, tmp_path, memory_url):
    target = locations.join(str(tmp_path) if kind == "path" else memory_url, "meshes", "a.ply")

    def half_then_fail(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"ply\nhalf")
        raise RuntimeError("the writer died")

    with pytest.raises(RuntimeError, match="the writer died"):
        locations.write_file(target, half_then_fail)
    assert not locations.exists(target)
    if kind == "path":
        assert list(tmp_path.rglob("*")) == [tmp_path / "meshes"]  # no temporary file left either


def test_writers_get_a_temporary_name_with_the_targets_suffix(memory_url):
    seen = []
    locations.write_file(locations.join(memory_url, "mesh.ply"), lambda tmp: (seen.append(tmp), open(tmp, "w").close()))
    assert seen[0].endswith("mesh.ply")


def test_inputs_at_urls_are_copied_and_their_errors_name_the_url(memory_url):
    url = locations.join(memory_url, "data", "cube.obj")
    locations.write_text(url, "v 0 0 0\n")
    with locations.local_copy(url) as local:
        assert local.endswith("cube.obj") and open(local).read() == "v 0 0 0\n"
    with pytest.raises(ShapeError) as caught:
        with locations.input_file(url) as local:
            raise ShapeError(local, "has no faces")
    assert caught.value.path == url and str(caught.value) == f"{url}: has no faces"
    with pytest.raises(ShapeError, match="missing.obj: file does not exist"):
        with locations.input_file(locations.join(memory_url, "missing.obj")):
            pass
    # another file missing while the input is used is that file's error, not the input's
    with pytest.raises(FileNotFoundError, match="other.npz"):
        with locations.input_file(url):
            raise FileNotFoundError("other.npz")


@pytest.mark.parametrize("kind", ["path", "url"])
def test_folders_are_put_copied_back_and_removed_whole(kind, tmp_path, memory_url):
    made = tmp_path / "made"
    (made / "train").mkdir(parents=True)
    (made / "transforms_train.json").write_text("{}")
    (made / "train" / "r_0.png").write_bytes(b"\x89PNG one")
    target = locations.join(str(tmp_path / "kept") if kind == "path" else memory_url, "scenes", "spot")
    assert locations.put_folder(made, target) == target
    assert locations.read_bytes(locations.join(target, "train", "r_0.png")) == b"\x89PNG one"
    with locations.local_folder(target) as local:
        found = sorted(str(p.relative_to(local)) for p in Path(local).rglob("*") if p.is_file())
        assert found == ["train/r_0.png", "transforms_train.json"]
        if kind == "url":
            assert not local.startswith("memory") and Path(local, "transforms_train.json").read_text() == "{}"
    if kind == "url":
        assert not Path(local).exists()  # the copy is gone afterwards
        with pytest.raises(FileNotFoundError, match="nothing-here"):
            with locations.local_folder(locations.join(memory_url, "nothing-here")):
                pass
        with pytest.raises(ShapeError, match="^nothing: missing$"):
            with locations.local_folder(locations.join(memory_url, "scenes", "sp"), missing=lambda: ShapeError(
                    "nothing", "missing")):  # a sibling sharing the name's start ("spot") is not "sp"
                pass
    locations.remove(target)
    assert not locations.exists(locations.join(target, "transforms_train.json"))
    locations.remove(target)  # absent: nothing to do
    locations.remove(locations.join(target, "x.json"))


def test_storage_options_come_from_the_environment_and_are_never_echoed(monkeypatch):
    monkeypatch.delenv(locations.OPTIONS_VARIABLE, raising=False)
    assert locations.storage_options() == {}
    monkeypatch.setenv(locations.OPTIONS_VARIABLE, json.dumps({"endpoint_url": "http://127.0.0.1:9000"}))
    assert locations.storage_options() == {"endpoint_url": "http://127.0.0.1:9000"}
    for bad in ('{"key": "s3cr3t"', '["s3cr3t"]'):
        monkeypatch.setenv(locations.OPTIONS_VARIABLE, bad)
        with pytest.raises(ConfigError) as caught:
            locations.storage_options()
        assert "s3cr3t" not in str(caught.value) and locations.OPTIONS_VARIABLE in str(caught.value)
