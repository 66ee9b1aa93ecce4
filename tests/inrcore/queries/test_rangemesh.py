import numpy as np
import pytest
import torch

from inrcore.fields.build import network_for
from inrcore.fields.networks import LayerSpec
from inrcore.fields.settings import NetworkConfig
from inrcore.queries.rangemesh import (
    dense_mesh,
    estimate_range_mesh,
    evaluate_leaf_values,
    mesh_from_leaf_values,
    plan_range_mesh,
    range_mesh,
)
from inrcore.queries.settings import RangeMeshConfig


def _plane(offset=-0.3):
    """f(x) = x + offset: the plane x = -offset, exactly bounded by both modes."""
    return (LayerSpec("dense", 3, 1),), {"0_weight": torch.tensor([[1.0, 0.0, 0.0]]), "0_bias": torch.tensor([offset])}


@pytest.mark.parametrize("mode", ["affine", "interval"])
def test_plane_plan_by_hand(mode):
    # 17 points per axis: 16 cells of 0.125, leaf blocks of 4 cells -> 4 blocks per axis. The plane x = 0.3
    # lies between lattice points 10 (x = 0.25) and 11 (x = 0.375), in block 2 (points 8..12, x in [0, 0.5]).
    spec, params = _plane()
    plan = plan_range_mesh(spec, params, resolution=17, leaf=4, mode=mode, top_blocks=1)
    assert plan.blocks == 4 and plan.spacing == pytest.approx(0.125)
    # The root, its 8 children (x in [-1, 0] certified negative, the 4 with x in [0, 1] unknown), and the
    # 8 children of each of those 4.
    assert plan.box_evaluations == (1, 8, 32)
    assert plan.leaves.tolist() == [[2, j, k] for j in range(4) for k in range(4)]
    assert (plan.signs[:2] == -1).all() and (plan.signs[2] == 0).all() and (plan.signs[3] == 1).all()
    values, evaluated = evaluate_leaf_values(spec, params, plan, plan.leaves)
    assert evaluated == 5 * 17 * 17  # x points 8..12, every y and z, each once
    assert values.shape == (16, 5, 5, 5)
    assert values[0, :, 0, 0] == pytest.approx([-0.3, -0.175, -0.05, 0.075, 0.2])
    mesh = mesh_from_leaf_values(plan, values)
    assert np.allclose(mesh.vertices[:, 0], 0.3, atol=1e-6)
    assert len(mesh.faces) == 2 * 16 * 16  # two triangles per cell of the plane's 16 x 16 cells


def test_no_surface_gives_no_leaves_and_an_empty_mesh():
    spec, params = _plane(offset=5.0)
    mesh, stats = range_mesh(spec, params, RangeMeshConfig(resolution=33, leaf=4))
    assert stats["leaves"] == 0 and stats["point_evaluations"] == 0 and len(mesh.faces) == 0
    # The coarsest level (about 4 boxes per axis) all certified, by the estimate (which then samples no
    # finer level) and by the plan.
    assert stats["estimate"]["certified"] == [1.0] and stats["estimate"]["boxes"] == [64, 0]
    assert stats["box_evaluations"] == 4 ** 3 + 4 ** 3 and stats["box_evaluations_per_level"] == [64]


@pytest.mark.parametrize("resolution,leaf", [(33, 4), (50, 4), (65, 8)])
def test_range_mesh_equals_dense_marching_cubes(resolution, leaf):
    # A near-sphere (geometric initialisation) and lattices whose cells do not fill whole leaf blocks (50).
    spec, params = network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3), torch.Generator().manual_seed(0))
    # the plan, always
    ranged, stats = range_mesh(spec, params, RangeMeshConfig(resolution=resolution, leaf=leaf, fallback=False))
    dense, dense_stats = dense_mesh(spec, params, resolution)
    assert len(ranged.faces) == len(dense.faces) > 0 and len(ranged.vertices) == len(dense.vertices)
    assert np.allclose(np.sort(ranged.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-6)
    assert ranged.is_watertight and dense.is_watertight
    assert stats["point_evaluations"] < dense_stats["point_evaluations"]
    assert stats["evaluations"] == stats["box_evaluations"] + stats["point_evaluations"]


def test_leaves_evaluated_in_parts_give_the_same_mesh():
    spec, params = network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3), torch.Generator().manual_seed(0))
    plan = plan_range_mesh(spec, params, resolution=41, leaf=4)
    whole, _ = evaluate_leaf_values(spec, params, plan, plan.leaves)
    half = len(plan.leaves) // 2
    parts = [evaluate_leaf_values(spec, params, plan, plan.leaves[s])[0] for s in (slice(0, half), slice(half, None))]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-5)  # the same points, in other batches
    mesh = mesh_from_leaf_values(plan, np.concatenate(parts))
    assert mesh.is_watertight
    with pytest.raises(ValueError, match="surviving leaves"):
        mesh_from_leaf_values(plan, whole[:-1])


def test_idf_fields_mesh_like_the_dense_grid():
    from inrcore.fields.build import idf_spec_for
    from inrcore.fields.idf import init_idf_params

    spec = idf_spec_for(NetworkConfig(kind="idf", width=16, layers=2, idf_omega_base=2.0, idf_omega_displacement=5.0))
    params = init_idf_params(spec, torch.Generator().manual_seed(0))
    ranged, _ = range_mesh(spec, params, RangeMeshConfig(resolution=33, leaf=4, fallback=False))
    dense, _ = dense_mesh(spec, params, 33)
    assert len(ranged.faces) == len(dense.faces)
    assert np.allclose(np.sort(ranged.vertices, axis=0), np.sort(dense.vertices, axis=0), atol=1e-5)


def test_estimate_of_the_plane_by_hand():
    # The lattice of test_plane_plan_by_hand: every box of every level is sampled (fewer than `samples`).
    spec, params = _plane()
    estimate = estimate_range_mesh(spec, params, resolution=17, leaf=4, top_blocks=1, box_cost=3.0)
    # Root unknown; 4 of its 8 children certified; 48 of the 64 leaf blocks certified.
    assert estimate.certified == (0.0, 0.5, 0.75)
    # Predicted boxes per level: 1, then 8 x (1 - 0) = 8, then 64 x (1 - 0.5) = 32: the plan's own counts.
    assert estimate.boxes == (1, 8, 32) == plan_range_mesh(spec, params, 17, leaf=4, top_blocks=1).box_evaluations
    assert estimate.leaves == 16 and estimate.points == 16 * 5 ** 3
    assert estimate.range_cost == 3.0 * 41 + 2000 and estimate.dense_cost == 17 ** 3
    assert estimate.worthwhile and estimate.sampled_boxes == 1 + 8 + 64
    # A box costing 100 points makes the same plan dearer than the dense grid.
    assert not estimate_range_mesh(spec, params, 17, leaf=4, top_blocks=1, box_cost=100.0).worthwhile


def test_estimate_samples_a_level_at_random_and_measures_the_box_cost():
    spec, params = network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3), torch.Generator().manual_seed(0))
    estimate = estimate_range_mesh(spec, params, resolution=129, leaf=4, samples=100)
    # 32 leaf blocks per axis, 4 levels of 64, 512, 4096 and 32768 boxes; 64 sampled at the top, 100 below.
    assert len(estimate.certified) == 4 and estimate.sampled_boxes == 64 + 3 * 100
    assert estimate.boxes[0] == 64 and estimate.boxes[1] == round(512 * (1 - estimate.certified[0]))
    assert estimate.box_cost > 0 and estimate.worthwhile
    again = estimate_range_mesh(spec, params, resolution=129, leaf=4, samples=100, box_cost=estimate.box_cost)
    assert again.certified == estimate.certified  # the same seeded draw


def test_range_mesh_falls_back_to_dense_when_no_box_is_certified():
    # An untrained omega = 30 SIREN changes sign everywhere: no box of any level is certified with 8 symbols.
    spec, params = network_for(NetworkConfig(kind="siren", width=32, layers=2), torch.Generator().manual_seed(0))
    ranged, stats = range_mesh(spec, params, RangeMeshConfig(resolution=33, leaf=4))
    dense, dense_stats = dense_mesh(spec, params, 33)
    assert stats["fallback"] is True and stats["method"] == "dense"
    assert stats["estimate"]["certified"] == [0.0, 0.0] and not stats["estimate"]["worthwhile"]
    assert stats["point_evaluations"] == 33 ** 3 and stats["box_evaluations"] == stats["estimate"]["sampled_boxes"]
    assert stats["evaluations"] == 33 ** 3 + stats["box_evaluations"]
    assert len(ranged.faces) == len(dense.faces) > 0
    assert np.allclose(np.sort(ranged.vertices, axis=0), np.sort(dense.vertices, axis=0))
    # Without the fallback the plan runs, bounds every box and samples every leaf block.
    forced, forced_stats = range_mesh(spec, params, RangeMeshConfig(resolution=33, leaf=4, fallback=False))
    assert forced_stats["method"] == "range" and forced_stats["leaves"] == forced_stats["leaf_blocks"] == 8 ** 3
    assert "estimate" not in forced_stats and len(forced.faces) == len(dense.faces)
