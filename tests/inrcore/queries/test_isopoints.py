"""Iso-points: projection, resampling, edge-aware upsampling, extraction, and their use in training."""

import json
import math

import numpy as np
import pytest
import torch

from inrcore.errors import ConfigError
from inrcore.fields.build import network_for
from inrcore.fields.gradients import field_of_network
from inrcore.fields.settings import NetworkConfig
from inrcore.queries.isopoints import (
    bilateral_weights_from_isopoints,
    extract_isopoints,
    isopoints_due,
    jittered,
    normals_from_neighbours,
    sign_change_points,
)
from inrcore.queries.isoresample import resample_uniformly, upsample_edge_aware
from inrcore.queries.levelset import converged_points, nearest_neighbours, newton_step, project_to_level_set
from inrcore.sdf.batched import fit_sdf_batch
from inrcore.sdf.settings import IsoPointsConfig, TrainConfig
from inrcore.sdf.training import ShapeSampler, fit_sdf
from inrcore.settings import config_from_dict, config_to_dict


HALF_SIDES = torch.tensor([0.4, 0.3, 0.5])


def sphere(points):
    """The SDF of the sphere of radius 0.5 at the origin: [N, 3] -> [N, 1]."""
    return points.norm(dim=-1, keepdim=True) - 0.5


def box(points):
    """The exact SDF of the box with half sides HALF_SIDES: [N, 3] -> [N, 1]."""
    q = points.abs() - HALF_SIDES.to(points.device)
    return (q.clamp_min(0.0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0.0))[:, None]


def directions(n, seed=0):
    d = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return d / d.norm(dim=-1, keepdim=True)


def nn_spread(points):
    """Coefficient of variation (std / mean) of nearest-neighbour distances: 0 for a perfectly even sample."""
    distances, _ = nearest_neighbours(points, 1)
    return float(distances[:, 0].std() / distances[:, 0].mean())


def near_box_edge(points, within=0.03):
    """Which points lie within `within` of two face planes of the box, i.e. near an edge: [N] bool."""
    inset = HALF_SIDES - points.abs()
    return (inset < within).sum(dim=-1) >= 2


def test_projection_lands_on_the_sphere_along_the_original_direction():
    d = directions(200)
    radii = torch.linspace(0.1, 0.9, 200)[:, None]
    result = project_to_level_set(sphere, d * radii)
    assert result.converged.all()
    assert torch.allclose(result.points.norm(dim=-1), torch.full((200,), 0.5), atol=5e-5)
    # Newton steps on |x| - 0.5 run along the radius: the direction is kept, and so is the normal.
    assert torch.allclose(result.points / result.points.norm(dim=-1, keepdim=True), d, atol=1e-5)
    assert torch.allclose(result.normals, d, atol=1e-5)
    assert result.values.abs().max() <= 5e-5


def test_newton_step_is_f_grad_over_grad_squared_and_clamped():
    # f = 0.04, grad f = (2, 0, 0): step f grad / |grad|^2 = (0.02, 0, 0), under the clamp.
    step = newton_step(torch.tensor([0.04]), torch.tensor([[2.0, 0.0, 0.0]]), max_step=0.1)
    assert torch.allclose(step, torch.tensor([[0.02, 0.0, 0.0]]))
    # f = 0.4 on the unit-gradient sphere field: the step 0.4 is clamped to 0.1, same direction.
    step = newton_step(torch.tensor([0.4]), torch.tensor([[0.0, 0.6, 0.8]]), max_step=0.1)
    assert torch.allclose(step, torch.tensor([[0.0, 0.06, 0.08]]))
    assert newton_step(torch.tensor([0.3]), torch.zeros(1, 3), max_step=0.1).abs().max() == 0


def test_a_clamped_projection_moves_each_point_at_most_the_clamp_per_step():
    start = torch.tensor([[0.9, 0.0, 0.0], [0.0, 0.0, 0.53]])
    result = project_to_level_set(sphere, start, max_iterations=1, max_step=0.1)
    # The first point is 0.4 away: one step of 0.1 takes it to radius 0.8, not yet converged.
    assert torch.allclose(result.points[0], torch.tensor([0.8, 0.0, 0.0]))
    # The second is 0.03 away: one unclamped step lands it.
    assert torch.allclose(result.points[1], torch.tensor([0.0, 0.0, 0.5]), atol=1e-6)
    assert result.converged.tolist() == [False, True]
    # With three more steps the first one arrives too: 0.9 -> 0.8 -> 0.7 -> 0.6 -> 0.5.
    assert project_to_level_set(sphere, start, max_iterations=4, max_step=0.1).converged.all()


def test_points_where_the_gradient_vanishes_or_that_never_arrive_are_dropped():
    start = torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.45, 0.0]])
    result = project_to_level_set(sphere, start, max_iterations=10, max_step=0.1)
    # The centre has gradient 0 (no direction to move); (5, 0, 0) is 4.5 away, more than 10 x 0.1.
    assert result.converged.tolist() == [False, False, True]
    assert torch.equal(result.points[0], torch.zeros(3)) and torch.equal(result.normals[0], torch.zeros(3))
    assert torch.allclose(result.points[1], torch.tensor([4.0, 0.0, 0.0]), atol=1e-5)
    kept = converged_points(result)
    assert len(kept) == 1 and torch.allclose(kept.points[0], torch.tensor([0.0, 0.5, 0.0]), atol=1e-5)


def test_projection_drops_points_outside_the_bound():
    result = project_to_level_set(lambda x: x[:, :1] - 0.95, torch.tensor([[0.5, 0.0, 0.0], [0.5, 0.0, 0.99]]),
                                  bound=0.98)
    assert result.converged.tolist() == [True, False]


def test_nearest_neighbours_match_brute_force():
    points = torch.rand(300, 3, generator=torch.Generator().manual_seed(1))
    distances, indices = nearest_neighbours(points, 4, chunk=64)
    full = torch.cdist(points, points) + torch.diag(torch.full((300,), math.inf))
    expected = full.topk(4, dim=1, largest=False)
    assert torch.equal(indices, expected.indices)
    assert torch.allclose(distances, expected.values)


def test_uniform_resampling_evens_out_a_clustered_sample_and_stays_on_the_sphere():
    # 500 random directions, 300 of them crowded around the north pole.
    d = directions(500, seed=2)
    crowd = torch.tensor([0.0, 0.0, 1.0]) + 0.4 * directions(300, seed=3) * torch.rand(300, 1)
    d[:300] = crowd / crowd.norm(dim=-1, keepdim=True)
    points = 0.5 * d
    result = resample_uniformly(sphere, points, d, iterations=10)
    assert len(result) == 500
    assert (result.points.norm(dim=-1) - 0.5).abs().max() <= 5e-5
    before, after = nn_spread(points), nn_spread(result.points)
    assert after < 0.85 * before
    # The crowd spreads out: fewer points within 30 degrees of the pole.
    assert (result.points[:, 2] > 0.5 * math.cos(math.radians(30))).sum() < (points[:, 2] > 0.5 * math.cos(
        math.radians(30))).sum()


def test_edge_aware_upsampling_on_a_box_adds_points_on_the_surface_and_favours_edges():
    generator = torch.Generator().manual_seed(0)
    seeds = sign_change_points(box, 24)
    start = converged_points(project_to_level_set(box, seeds[torch.randperm(len(seeds), generator=generator)[:400]]))
    evened = resample_uniformly(box, start.points, start.normals, iterations=3)
    result = upsample_edge_aware(box, evened.points, evened.normals, 1200)
    assert len(evened) < len(result) <= 1200 and len(result) >= 1100
    assert box(result.points).abs().max() <= 5e-5
    assert torch.allclose(result.normals.norm(dim=-1), torch.ones(len(result)), atol=1e-5)
    # The same number of points spread uniformly from the grid's sign changes, for comparison.
    uniform = extract_isopoints(box, len(result), grid_resolution=48, upsample=False, resample_iterations=3,
                                generator=generator)
    assert abs(len(uniform) - len(result)) <= 0.05 * len(result)
    edge_fraction = near_box_edge(result.points).float().mean()
    uniform_fraction = near_box_edge(uniform.points).float().mean()
    assert edge_fraction > 1.3 * uniform_fraction


def test_extract_isopoints_of_a_sphere_from_the_grid():
    result = extract_isopoints(sphere, 800, grid_resolution=32, generator=torch.Generator().manual_seed(0))
    assert 760 <= len(result) <= 800
    assert (result.points.norm(dim=-1) - 0.5).abs().max() <= 5e-5
    radial = result.points / result.points.norm(dim=-1, keepdim=True)
    assert (result.normals * radial).sum(-1).min() > 0.9999
    # Points cover the whole sphere: every octant has its share (an eighth is 100).
    octant = ((result.points > 0).long() * torch.tensor([1, 2, 4])).sum(-1)
    assert torch.bincount(octant, minlength=8).min() > 60


def test_extract_isopoints_from_given_points_upsamples_to_n():
    start = 0.45 * directions(150, seed=4)
    result = extract_isopoints(sphere, 600, init=start)
    assert len(result) >= 570 and (result.points.norm(dim=-1) - 0.5).abs().max() <= 5e-5


def test_extract_isopoints_of_a_network_field():
    spec, params = network_for(NetworkConfig(kind="igr", width=64, layers=2, radius=0.5),
                               torch.Generator().manual_seed(0))
    result = extract_isopoints(field_of_network(spec, params), 300, grid_resolution=24,
                               generator=torch.Generator().manual_seed(0))
    assert len(result) >= 250
    field = field_of_network(spec, params)
    assert field(result.points).abs().max() <= 5e-5
    points = result.points.clone().requires_grad_(True)
    (gradients,) = torch.autograd.grad(field(points).sum(), points)
    assert torch.allclose(result.normals, gradients / gradients.norm(dim=-1, keepdim=True), atol=1e-5)
    # Geometric initialisation: a blob around the sphere of radius 0.5.
    assert abs(float(result.points.norm(dim=-1).mean()) - 0.5) < 0.1


def test_a_field_without_surface_gives_no_isopoints():
    assert len(extract_isopoints(lambda x: x.norm(dim=-1, keepdim=True) + 1.0, 100, grid_resolution=16)) == 0


def test_normals_from_neighbours_of_a_sphere_are_radial_and_keep_the_reference_side():
    points = 0.5 * directions(2000, seed=5)
    normals = normals_from_neighbours(points, -points)  # the reference points inwards
    radial = points / points.norm(dim=-1, keepdim=True)
    assert (normals * radial).sum(-1).max() < -0.99


def test_refresh_schedule():
    assert not isopoints_due(49, 0.49, None, 0.5, 20) and isopoints_due(50, 0.5, None, 0.5, 20)
    assert not isopoints_due(69, 0.69, 50, 0.5, 20) and isopoints_due(70, 0.7, 50, 0.5, 20)
    last, refreshed = None, []
    for step in range(100):
        if isopoints_due(step, step / 100, last, 0.5, 20):
            refreshed.append(step)
            last = step
    assert refreshed == [50, 70, 90]


def test_jitter_stays_within_its_amount():
    points = torch.zeros(1000, 3)
    moved = jittered(points, 0.05, torch.Generator().manual_seed(0))
    assert moved.abs().max() <= 0.05 and moved.abs().max() > 0.04


def test_isopoints_config_round_trips_and_validates():
    config = config_from_dict(TrainConfig, {"isopoints": {"enabled": True, "n_points": 300, "normals": "estimated"}})
    assert config.isopoints == IsoPointsConfig(enabled=True, n_points=300, normals="estimated")
    assert config_from_dict(TrainConfig, json.loads(json.dumps(config_to_dict(config)))) == config
    assert TrainConfig().isopoints.enabled is False
    # switched on, the authors' point-cloud setting: normals from the iso-points, bilateral weights
    assert (IsoPointsConfig().normals, IsoPointsConfig().bilateral) == ("estimated", True)
    for bad, message in [({"warmup": 1.0}, r"training.isopoints.warmup: must be in \[0, 1\)"),
                         ({"batch_share": 0}, r"training.isopoints.batch_share: must be in \(0, 1\]"),
                         ({"refresh_every": 0}, r"training.isopoints.refresh_every: must be at least 1"),
                         ({"normals": "pca"}, r"training.isopoints.normals: expected one of field, estimated"),
                         ({"n_points": 0}, r"training.isopoints.n_points: must be positive"),
                         ({"tolerance": 0}, r"training.isopoints.tolerance: must be positive"),
                         ({"bilateral_angle": 0}, r"training.isopoints.bilateral_angle: must be in \(0, 180\]"),
                         ({"bilateral_radius": -1}, r"training.isopoints.bilateral_radius: must be positive")]:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(TrainConfig, {"isopoints": bad}, "training")


def test_bilateral_weights_by_hand():
    iso = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    iso_normals = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 1.0]])  # normalised inside
    up, side, down = [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]
    points = torch.tensor([[0.01, 0.0, 0.05], [0.0, 0.02, 0.0], [0.0, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.0, 0.5]])
    normals = torch.tensor([up, side, down, up, up])
    weights = bilateral_weights_from_isopoints(points, normals, iso, iso_normals, sharpness_angle=60.0,
                                               radius=0.2, bandwidth=0.1)
    expected = [
        math.exp(-(0.05 / 0.1) ** 2),   # 0.05 above the tangent plane at (0, 0, 0), same normal
        math.exp(-(1.0 / 0.5) ** 2),    # in the plane, normal at 90°: (1 - cos 90°) / (1 - cos 60°) = 2
        math.exp(-(2.0 / 0.5) ** 2),    # in the plane, normal flipped: (1 - cos 180°) / 0.5 = 4
        1.0,                            # nearest is (1, 0, 0), 0.1 away in its tangent plane
        0.0,                            # no iso-point within the radius 0.2
    ]
    assert torch.allclose(weights, torch.tensor(expected), atol=1e-6)
    # The default bandwidth is 4 spread bandwidths of the iso-points: sqrt(diagonal / M) = sqrt(1 / 2)
    default = bilateral_weights_from_isopoints(points[:1], normals[:1], iso, iso_normals, radius=0.2)
    assert float(default) == pytest.approx(math.exp(-(0.05 / (4 * math.sqrt(0.5))) ** 2), rel=1e-6)
    assert torch.equal(bilateral_weights_from_isopoints(points, normals, iso[:0], iso_normals[:0]), torch.ones(5))


def test_the_sampler_weighs_data_rows_and_not_isopoint_rows():
    points, point_normals = sphere_cloud(100)
    config = TrainConfig(batch_surface=8, batch_offsurface=0, batch_uniform=4, device="cpu",
                         isopoints=IsoPointsConfig(enabled=True, batch_share=0.25))
    sampler = ShapeSampler(points, point_normals, np.zeros((0, 3)), config, torch.device("cpu"))
    assert sampler.draw().surface_weights is None
    data_weights = torch.arange(100, dtype=torch.float32) / 100
    iso = torch.tensor(points[:3]) * 1.01
    sampler.set_isopoints(iso, torch.tensor(point_normals[:3]), data_weights)
    step = sampler.draw()
    # 6 data rows keep their own point's weight (its row number / 100), 2 iso-point rows weigh 1
    rows = [int(np.flatnonzero((points == row).all(1))[0]) for row in step.points[:6].numpy()]
    assert torch.allclose(step.surface_weights[:6], torch.tensor(rows, dtype=torch.float32) / 100)
    assert torch.equal(step.surface_weights[6:], torch.ones(2))


def test_a_fit_with_bilateral_weights_down_weighs_outliers():
    points, point_normals = sphere_cloud(1000)
    # 50 outliers: points pushed out to radius 0.8 (0.3 off the surface) with random normals
    outliers = 0.8 * directions(50, seed=3).numpy()
    cloud = np.concatenate([points, outliers]).astype(np.float32)
    cloud_normals = np.concatenate([point_normals, directions(50, seed=4).numpy()]).astype(np.float32)
    config = small_fit_config(bilateral=True, bilateral_radius=0.5)
    result = fit_sdf(cloud, cloud_normals, np.zeros((0, 3)), config)
    assert "data_weight" not in result.history[2] and 0.0 < result.history[-1]["data_weight"] <= 1.0
    sampler = ShapeSampler(cloud, cloud_normals, np.zeros((0, 3)), config, torch.device("cpu"))
    field = field_of_network(result.spec, result.params)
    from inrcore.sdf.training import refresh_isopoints

    refresh_isopoints(field, sampler, None, config, torch.Generator().manual_seed(0))
    # the surface's own points weigh much more than the outliers
    assert float(sampler.data_weights[:1000].mean()) > 0.5
    assert float(sampler.data_weights[1000:].mean()) < 0.1 * float(sampler.data_weights[:1000].mean())


def small_fit_config(**isopoints):
    return TrainConfig(steps=60, batch_surface=256, batch_offsurface=0, batch_uniform=256, log_every=10,
                       device="cpu", network=NetworkConfig(width=32, layers=2, omega_first=15.0, omega_hidden=15.0),
                       isopoints=IsoPointsConfig(**{"enabled": True, "n_points": 300, "warmup": 0.5,
                                                    "refresh_every": 10, "resample_iterations": 2, **isopoints}))


def sphere_cloud(n, seed=0):
    d = directions(n, seed).numpy()
    return 0.5 * d, d


@pytest.mark.parametrize("normals", ["field", "estimated"])
def test_a_fit_with_isopoints_refreshes_them_on_schedule(normals):
    points, point_normals = sphere_cloud(1000)
    result = fit_sdf(points, point_normals, np.zeros((0, 3)), small_fit_config(normals=normals))
    # Warm-up ends half-way (30 of 60 steps done), then every 10 steps: refreshes before the 31st,
    # 41st and 51st steps, so the entries logged after 40, 50 and 60 steps count 1, 2 and 3.
    assert [e["step"] for e in result.history] == [10, 20, 30, 40, 50, 60]
    assert [e["isopoint_refreshes"] for e in result.history] == [0, 0, 0, 1, 2, 3]
    assert [e["isopoints"] for e in result.history][:3] == [0, 0, 0]
    assert all(200 <= e["isopoints"] <= 300 for e in result.history[3:])
    assert all(math.isfinite(e["loss"]) for e in result.history)


def test_a_fit_with_isopoints_and_the_igr_loss_runs():
    points, point_normals = sphere_cloud(1000)
    config = small_fit_config()
    config = TrainConfig(**{**config.__dict__, "network": NetworkConfig(kind="igr", width=32, layers=2)})
    result = fit_sdf(points, point_normals, np.zeros((0, 3)), config)
    assert result.history[-1]["isopoint_refreshes"] == 3 and result.history[-1]["isopoints"] > 200


def test_fits_without_isopoints_do_not_log_them():
    points, point_normals = sphere_cloud(500)
    config = TrainConfig(steps=5, batch_surface=64, batch_offsurface=0, batch_uniform=64, log_every=5, device="cpu",
                         network=NetworkConfig(width=8, layers=1))
    assert "isopoints" not in fit_sdf(points, point_normals, np.zeros((0, 3)), config).history[-1]


def test_batched_training_refuses_isopoints_and_the_pipeline_trains_one_by_one():
    points, point_normals = sphere_cloud(200)
    with pytest.raises(ConfigError, match="training.isopoints.enabled: batched training"):
        fit_sdf_batch([(points, point_normals, np.zeros((0, 3)), None)], small_fit_config())
    from flows.pipeline import training_batch_size

    assert training_batch_size(TrainConfig(shapes_per_batch=8, network=NetworkConfig(kind="siren"),
                                           isopoints=IsoPointsConfig(enabled=True))) == 1
    assert training_batch_size(TrainConfig(shapes_per_batch=8, network=NetworkConfig(kind="siren"),
                                           isopoints=IsoPointsConfig(enabled=False))) == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_isopoints_on_cuda():
    result = extract_isopoints(sphere, 500, grid_resolution=24, device="cuda",
                               generator=torch.Generator(device="cuda").manual_seed(0))
    assert result.points.is_cuda and len(result) >= 450
    assert (result.points.norm(dim=-1) - 0.5).abs().max() <= 5e-5
