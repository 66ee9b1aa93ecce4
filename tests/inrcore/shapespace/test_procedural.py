"""The procedural collection: seeded shape families that are closed solids of their designed topology
and proportions, the train/test plan, and the files written for it."""

import os

import numpy as np
import pytest
import trimesh
import yaml

from inrcore.shapespace.procedural import collection_plan, generate_shape, write_collection
from inrcore.shapespace.settings import FAMILIES, GeneratorConfig


SEEDS = tuple(range(8))


@pytest.fixture(scope="module")
def shapes():
    return {(family, seed): generate_shape(family, seed) for family in FAMILIES for seed in SEEDS}


def test_same_family_and_seed_give_the_same_mesh():
    for family in FAMILIES:
        first, again, other = generate_shape(family, 11), generate_shape(family, 11), generate_shape(family, 12)
        assert np.array_equal(first.vertices, again.vertices) and np.array_equal(first.faces, again.faces)
        assert first.vertices.shape != other.vertices.shape or not np.allclose(first.vertices, other.vertices)


def test_every_shape_is_one_closed_outward_solid_of_unit_size(shapes):
    for (family, seed), mesh in shapes.items():
        assert mesh.is_watertight and mesh.is_winding_consistent, (family, seed)
        assert mesh.volume > 0 and mesh.body_count == 1, (family, seed)
        assert mesh.extents.max() == pytest.approx(1.0, abs=1e-12)
        assert np.allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-12)
        assert 50 < len(mesh.faces) <= 20_000
        assert mesh.metadata == {"family": family, "seed": seed, "genus": mesh.metadata["genus"]}


def test_euler_number_matches_the_designed_number_of_handles(shapes):
    genus = {key: mesh.metadata["genus"] for key, mesh in shapes.items()}
    for key, mesh in shapes.items():  # V - E + F of the faces written, against the design's count
        assert mesh.euler_number == 2 - 2 * genus[key], key
    assert {genus["mug", s] for s in SEEDS} == {1}  # a cup with a handle is a torus: Euler number 0
    assert {genus["lamp", s] for s in SEEDS} == {0} and {genus["airplane", s] for s in SEEDS} == {0}
    assert {genus["table", s] for s in SEEDS} <= {0, 1, 3}  # trestle stretcher 1, four legs and a shelf 3
    assert len({genus["chair", s] for s in SEEDS}) >= 3  # slats, rails, arms and stretchers vary it


def test_families_have_their_own_proportions(shapes):
    """y is up. Chairs are taller than wide, tables are a metre long and lower than that, airplanes
    are flat, mugs are squat solids with the handle along x, lamps stand up."""
    for seed in SEEDS:
        chair, table, lamp, mug, plane = (shapes[family, seed].extents for family in FAMILIES)
        assert chair[1] == pytest.approx(1.0) and max(chair[0], chair[2]) < 0.9
        assert table[0] == pytest.approx(1.0) and table[1] <= 0.76
        assert plane[1] < 0.4 and plane[2] > 0.9
        assert mug[0] > 0.8 and shapes["mug", seed].volume / np.prod(mug) > 0.1
        assert lamp[1] > 0.6


def test_shapes_vary_within_a_family(shapes):
    for family in FAMILIES:
        extents = np.array([shapes[family, seed].extents for seed in SEEDS])
        assert np.ptp(extents, axis=0).max() > 0.1, family
        assert len({len(shapes[family, seed].vertices) for seed in SEEDS}) >= 6, family


def test_no_part_is_thinner_than_two_percent(shapes):
    """Rays from surface points straight inwards leave the solid after its local thickness; apart from
    points by sharp edges (cone rims, wing tips) it is at least 0.018 of the unit-sized shape."""
    for (family, seed), mesh in shapes.items():
        points, faces = trimesh.sample.sample_surface(mesh, 4000, seed=seed)
        inward = -mesh.face_normals[faces]
        starts = points + 1e-4 * inward
        hits, rays, _ = mesh.ray.intersects_location(starts, inward, multiple_hits=False)
        thickness = np.full(len(points), np.inf)
        thickness[rays] = np.linalg.norm(hits - starts[rays], axis=1) + 1e-4
        assert np.mean(thickness < 0.018) < 0.05, (family, seed)
        assert np.median(thickness) > 0.025, (family, seed)


def test_an_unknown_family_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="'sofa'.*chair, table, lamp, mug, airplane"):
        generate_shape("sofa", 0)


def test_a_collection_of_no_family_is_refused():
    with pytest.raises(ValueError, match=r"families: name at least one family \(of chair, table, lamp, mug, airplane"):
        GeneratorConfig(families=())


def test_collection_plan_holds_out_a_seeded_fifth_of_each_family():
    config = GeneratorConfig(families=("chair", "table", "mug"), per_family=34, test_fraction=0.2, seed=0)
    plan = collection_plan(config)
    assert plan == collection_plan(config)
    assert [entry[0] for entry in plan[:3]] == ["chair_000", "chair_001", "chair_002"] and plan[-1][0] == "mug_033"
    assert len({entry[0] for entry in plan}) == 102 and len({entry[2] for entry in plan}) == 102
    for family in config.families:
        splits = [split for _, fam, _, split in plan if fam == family]
        assert (splits.count("test"), splits.count("train")) == (7, 27)  # 34 · 0.2 = 6.8 -> 7
    alone = collection_plan(GeneratorConfig(families=("mug",), per_family=34, test_fraction=0.2, seed=0))
    assert alone == [entry for entry in plan if entry[1] == "mug"]  # other families change nothing
    reseeded = collection_plan(GeneratorConfig(families=("mug",), per_family=34, test_fraction=0.2, seed=1))
    assert {e[2] for e in reseeded}.isdisjoint(e[2] for e in alone)
    assert [e[3] for e in reseeded] != [e[3] for e in alone]


@pytest.mark.parametrize("per_family, fraction, tests", [(1, 0.2, 0), (2, 0.2, 1), (5, 0.5, 3), (3, 0.9, 2)])
def test_test_counts_round_to_nearest_and_keep_both_splits(per_family, fraction, tests):
    plan = collection_plan(GeneratorConfig(families=("lamp",), per_family=per_family, test_fraction=fraction))
    assert [split for *_, split in plan].count("test") == tests and len(plan) == per_family


def test_write_collection_writes_loadable_meshes_and_a_manifest(tmp_path):
    config = GeneratorConfig(families=("chair", "mug"), per_family=3, test_fraction=0.34, seed=5)
    manifest = write_collection(tmp_path, config, name="tiny")
    assert manifest == tmp_path / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    assert data["name"] == "tiny" and "chair, mug" in data["description"] and "seed 5" in data["description"]
    assert data["generator"] == {"families": ["chair", "mug"], "per_family": 3, "test_fraction": 0.34, "seed": 5}
    plan = collection_plan(config)
    assert data["shapes"] == [{"id": shape_id, "path": f"meshes/{shape_id}.obj", "split": split, "family": family}
                              for shape_id, family, _, split in plan]
    assert [s["split"] for s in data["shapes"]].count("test") == 2  # 3 · 0.34 = 1.02 -> 1 per family
    assert sorted(os.listdir(tmp_path / "meshes")) == sorted(f"{shape_id}.obj" for shape_id, *_ in plan)
    stamps = {}
    for shape_id, family, seed, _ in plan:
        path = tmp_path / "meshes" / f"{shape_id}.obj"
        loaded, made = trimesh.load(path, force="mesh"), generate_shape(family, seed)
        assert loaded.vertices.shape == made.vertices.shape and np.array_equal(loaded.faces, made.faces)
        assert np.allclose(loaded.vertices, made.vertices, atol=1e-7) and loaded.is_watertight
        stamps[path] = path.stat().st_mtime_ns
    write_collection(tmp_path, config, name="tiny")  # the same meshes again: files left as they were
    assert {path: path.stat().st_mtime_ns for path in stamps} == stamps


@pytest.mark.parametrize("parts, genus, message", [
    # two boxes apart: not one solid
    ([((0.2, 0.2, 0.2), (0, 0, 0)), ((0.2, 0.2, 0.2), (1, 0, 0))], 0, "built 2 bodies of genus"),
    # one box built where a handle was designed: the wrong genus
    ([((0.2, 0.2, 0.2), (0, 0, 0))], 1, "expected one solid of genus 1"),
])
def test_a_family_member_that_is_not_the_designed_solid_is_refused_naming_it(monkeypatch, parts, genus, message):
    from inrcore.errors import ShapeError
    from inrcore.shapespace import procedural

    monkeypatch.setitem(procedural._BUILDERS, "chair",  # a broken builder in place of the chair's
                        lambda rng: (procedural._union([procedural._box(*p) for p in parts]), genus))
    with pytest.raises(ShapeError, match=message) as caught:
        generate_shape("chair", 3)
    assert "procedural chair (seed 3)" in str(caught.value)


def test_a_bad_member_leaves_no_manifest(monkeypatch, tmp_path):
    from inrcore.errors import ShapeError
    from inrcore.shapespace import procedural

    monkeypatch.setitem(procedural._BUILDERS, "mug", lambda rng: (procedural._box((0.2, 0.2, 0.2), (0, 0, 0)), 1))
    with pytest.raises(ShapeError, match="procedural mug"):
        write_collection(tmp_path, GeneratorConfig(families=("chair", "mug"), per_family=2))
    assert not (tmp_path / "manifest.yaml").exists()
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == ["chair_000.obj", "chair_001.obj"]
