"""Files written so that readers never see half of one (inrcore/files.py)."""

import os
import stat

import pytest

from inrcore.files import read_json, write_atomic, write_json_atomic


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
