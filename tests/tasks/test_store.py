import numpy as np
import pytest

from tasks.store import (
    finished_attrs,
    fresh_group,
    mark_finished,
    open_store,
    remove_group,
)


@pytest.mark.parametrize("as_url", [False, True])
def test_finished_records(tmp_path, as_url):
    url = (tmp_path / "s.zarr").as_uri() if as_url else str(tmp_path / "s.zarr")
    root = open_store(url)
    group = fresh_group(root, "samples/a")
    group.create_array("x", shape=(3,), dtype="float32")[...] = np.arange(3)
    assert finished_attrs(root, "samples/a", "k1") is None  # not marked yet: unfinished
    mark_finished(group, "k1", {"n": 3})
    again = open_store(url)
    assert finished_attrs(again, "samples/a", "k1") == {"n": 3, "fingerprint": "k1", "complete": True}
    assert finished_attrs(again, "samples/a", "k2") is None  # other inputs
    assert finished_attrs(again, "samples/b", "k1") is None
    assert np.array_equal(again["samples/a/x"][...], [0, 1, 2])
    fresh = fresh_group(again, "samples/a")
    assert "x" not in fresh and finished_attrs(again, "samples/a", "k1") is None
    remove_group(again, "samples/a")
    assert "samples/a" not in open_store(url)
