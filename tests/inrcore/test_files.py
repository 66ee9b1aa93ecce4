"""Files written so that readers never see half of one (inrcore/files.py)."""

import os
import stat

import pytest

from inrcore.files import read_json, remove_stale_partials, write_atomic, write_json_atomic


def test_json_written_atomically(tmp_path):
    path = write_json_atomic(tmp_path / "d" / "r.json", {"b": 1, "a": [1.5]})
    assert read_json(path) == {"a": [1.5], "b": 1}
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["r.json"]
    assert read_json(tmp_path / "missing.json") is None
    assert (tmp_path / "d" / "r.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'  # keys sorted
    unsorted = write_json_atomic(tmp_path / "u.json", {"b": 1, "a": 2}, sort_keys=False)
    assert unsorted.read_text() == '{\n  "b": 1,\n  "a": 2\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json_atomic(tmp_path / "r.json", {"old": True})

    def broken(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, broken)
    assert read_json(path) == {"old": True} and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_written_files_get_the_usual_mode_of_a_new_file(tmp_path):
    mask = os.umask(0o022)
    try:
        path = write_atomic(tmp_path / "m.ply", lambda tmp: open(tmp, "w").close())
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.suffix == ".ply"


def test_temporaries_a_killed_writer_left_are_removed_once_stale(tmp_path):
    names = []  # write_atomic's own temporary names, made again as a killed writer would leave them

    def remember(tmp: str) -> None:
        names.append(tmp)
        open(tmp, "w").close()

    for target in (tmp_path / "meshes" / "a.ply", tmp_path / "b.json", tmp_path / "store.zarr" / "c.json",
                   tmp_path / "young.safetensors"):
        write_atomic(target, remember)
    for name in names:
        open(name, "w").write("half")
    old = os.path.getmtime(names[0]) - 3600
    for name in names[:3]:
        os.utime(name, (old, old))
    keep = [tmp_path / ".hidden", tmp_path / "notes.tmp", tmp_path / ".x.tmp.json"]  # not write_atomic's names
    for path in keep:
        path.write_text("mine")
        os.utime(path, (old, old))
    removed = remove_stale_partials(tmp_path, older_than=600.0)
    assert sorted(map(str, removed)) == sorted(names[:2])  # not in the store, not the young one
    assert all(os.path.exists(n) for n in names[2:]) and all(p.exists() for p in keep)
    assert (tmp_path / "meshes" / "a.ply").exists() and (tmp_path / "b.json").exists()  # the files themselves stay
