"""The skeleton stage's tasks, called directly on a real Zarr store (no Prefect run): what each
stores, the files, reuse by fingerprint, and a half-written group replaced."""

import numpy as np
import pytest

from inrcore.errors import ShapeError
from inrcore.settings import config_replace
from inrcore.skeleton.analytic import capsule
from inrcore.skeleton.settings import SkeletonConfig
from inrcore.skeleton.skeletonfiles import read_ma, read_skeleton_ply
from tasks.skeleton.skeletons import (
    fit_skeleton_field,
    link_skeleton,
    select_skeleton_balls,
    trace_skeleton_candidates,
)
from tasks.store import open_store


def run_chain(source, store, out, config):
    field = fit_skeleton_field.fn("cap", source, store, config) if config.method == "neural" else None
    candidates = trace_skeleton_candidates.fn("cap", source, store, config, field)
    selection = select_skeleton_balls.fn("cap", store, config, candidates)
    return field, candidates, selection, link_skeleton.fn("cap", source, store, config, candidates, selection, out)


@pytest.fixture(scope="module")
def capsule_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "capsule.obj"
    capsule(0.35, 0.5).mesh().apply_scale(3.0).export(path)
    return str(path)


def test_coverage_axis_chain_stores_each_part_and_writes_the_files(capsule_file, tmp_path):
    store, out = str(tmp_path / "store.zarr"), str(tmp_path / "run")
    config = config_replace(SkeletonConfig(), {"method": "coverage-axis", "n_input": 5000,
                                               "trace": {"n_surface": 600}, "candidates": {"n_box": 20000}})
    _, candidates, selection, linked = run_chain(capsule_file, store, out, config)
    root = open_store(store, mode="r")
    group = root["skeletons/cap/candidates"]
    assert group.attrs["complete"] is True and group["surface"].shape == (600, 3)
    assert candidates.counts["candidates"] == group["points"].shape[0] > 100
    assert selection.counts["balls"] == root["skeletons/cap/selection"]["selected"].shape[0] == linked.counts["balls"]
    assert root["skeletons/cap/selection"].attrs["cover"]["method"] == "milp"
    stored = root["skeletons/cap/skeleton"]
    assert stored["points"].shape == (linked.counts["balls"], 3) and stored["edges"].shape[1] == 2
    # The files, in the input's coordinates (three times the normalised capsule of radius 0.35 ...):
    points, radii, edges, faces = read_skeleton_ply(linked.files["skeleton"])
    assert len(points) == linked.counts["balls"] and np.array_equal(edges, stored["edges"][...])
    ma_points, ma_radii, _, _ = read_ma(linked.files["ma"])
    assert np.allclose(ma_points, points, atol=1e-6) and np.allclose(ma_radii, radii, atol=1e-6)
    # ... whose axis is the z segment |z| <= 1.5 and whose radius is 1.05: every ball touches the
    # surface from inside (its distance to the axis plus its radius is the capsule's radius).
    to_axis = np.linalg.norm(points - np.column_stack([0 * points[:, :2], np.clip(points[:, 2], -1.5, 1.5)]), axis=1)
    assert to_axis + radii == pytest.approx(np.full(len(points), 1.05), abs=0.05)
    assert linked.metrics["components"] >= 1 and linked.metrics["uncovered"] == 0


def test_a_rerun_reuses_every_part_and_a_half_written_one_is_redone(capsule_file, tmp_path):
    store, out = str(tmp_path / "store.zarr"), str(tmp_path / "run")
    config = config_replace(SkeletonConfig(), {"method": "coverage-axis", "n_input": 4000,
                                               "trace": {"n_surface": 400}, "candidates": {"n_box": 10000}})
    first = run_chain(capsule_file, store, out, config)
    again = run_chain(capsule_file, store, out, config)
    assert [part.reused for part in again[1:]] == [True, True, True]
    assert [part.fingerprint for part in again[1:]] == [part.fingerprint for part in first[1:]]
    # A selection interrupted mid-write (not marked complete) is redone, and the link after it too.
    root = open_store(store)
    root["skeletons/cap/selection"].attrs["complete"] = False
    selection = select_skeleton_balls.fn("cap", store, config, again[1])
    assert not selection.reused and selection.counts == first[2].counts
    # Another dilation changes the selection's and the link's fingerprints, not the candidates'.
    wider = config_replace(config, {"cover": {"delta": 0.06}})
    candidates = trace_skeleton_candidates.fn("cap", capsule_file, store, wider, None)
    assert candidates.reused
    assert select_skeleton_balls.fn("cap", store, wider, candidates).fingerprint != first[2].fingerprint


def test_the_neural_chain_traces_in_the_stored_field(capsule_file, tmp_path):
    store, out = str(tmp_path / "store.zarr"), str(tmp_path / "run")
    config = config_replace(SkeletonConfig(), {"n_input": 4000, "trace": {"n_surface": 400},
                                               "field": {"steps": 60, "batch_box": 512, "batch_surface": 512,
                                                         "start_steps": 100, "n_learning": 2000}})
    field, candidates, _, linked = run_chain(capsule_file, store, out, config)
    root = open_store(store, mode="r")
    assert field.counts == {"steps": 60} and root["skeletons/cap/field"].attrs["spec"]
    assert candidates.counts["surface"] > 300 and candidates.counts["candidates"] > 0
    assert linked.counts["balls"] >= 1
    assert fit_skeleton_field.fn("cap", capsule_file, store, config).reused


def test_a_shape_with_no_interior_fails_with_its_file_named(tmp_path):
    import trimesh

    sheet = tmp_path / "sheet.obj"
    trimesh.Trimesh(vertices=[[0, 0, 0], [1, 0, 0], [1, 1, 0.3], [0, 1, 0.3]], faces=[[0, 1, 2], [0, 2, 3]]).export(sheet)
    config = SkeletonConfig(method="coverage-axis")
    with pytest.raises(ShapeError, match="sheet.obj: the mesh encloses no volume"):
        trace_skeleton_candidates.fn("sheet", str(sheet), str(tmp_path / "store.zarr"), config, None)
    assert "skeletons/sheet/candidates" not in open_store(str(tmp_path / "store.zarr"), mode="r")
