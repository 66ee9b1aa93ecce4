import dataclasses
import warnings

import numpy as np
import pytest
import torch

from inrcore.device import multiplies_bfloat16
from inrcore.shapespace.occnet import init_occnet, is_statistic, load_occnet, occupancy_iou, save_occnet
from inrcore.shapespace.occnet_training import (
    THRESHOLD_CANDIDATES,
    THRESHOLD_POINTS,
    OccupancyShape,
    _ShapeDraws,
    bfloat16_passes,
    evenly_spaced,
    moved_average,
    noisy_cloud,
    recomputed_statistics,
    stretch_factors,
    threshold_ious,
    train_occnet,
    warp_axes,
)
from inrcore.settings import ConfigError, config_from_dict
from inrcore.shapespace.settings import OccNetConfig


CPU = torch.device("cpu")
TINY = OccNetConfig(hidden=32, code=32, decoder_hidden=32, blocks=2, batch=8, n_query=512, steps=300, lr=3e-3,
                    log_every=100, seed=0)


def _sphere(seed: int, radius: float = 0.5, m: int = 30_000) -> OccupancyShape:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((4000, 3))
    surface = radius * v / np.linalg.norm(v, axis=1, keepdims=True)
    points = rng.uniform(-0.6, 0.6, (m, 3)).astype(np.float32)
    return OccupancyShape(surface.astype(np.float32), points, np.linalg.norm(points, axis=1) < radius)


def test_stretch_factors_by_hand():
    # half-sides (0.9, 0.45, 0.3), jitter 0.2, u (0, 1, 0.5): raw factors (0.8, 1.2, 1.0) give half-sides
    # (0.72, 0.54, 0.3); the longest must stay 0.9, so all are multiplied by 0.9 / 0.72 = 1.25
    factors = stretch_factors(torch.tensor([[0.9, 0.45, 0.3]]), torch.tensor([[0.0, 1.0, 0.5]]), 0.2)
    assert torch.allclose(factors, torch.tensor([[1.0, 1.5, 1.25]]))
    # the longest side moving to another axis: (0.5, 0.45, 0.1) with raw (0.8, 1.2, 1.0) -> (0.4, 0.54, 0.1)
    factors = stretch_factors(torch.tensor([[0.5, 0.45, 0.1]]), torch.tensor([[0.0, 1.0, 0.5]]), 0.2)
    assert torch.allclose(factors, torch.tensor([[0.8, 1.2, 1.0]]) * 0.5 / 0.54)
    assert torch.allclose(stretch_factors(torch.rand(5, 3) + 0.1, torch.rand(5, 3), 0.0), torch.ones(5, 3))


def test_warp_axes_by_hand():
    # half-side 1 along x in two pieces, jitter 0.5, u (1, 0): slopes (1.5, 0.5), mean 1, kept; -1 -> -1,
    # 0 -> -1 + 1.5 = 0.5, 1 -> 0.5 + 0.5 = 1; beyond the ends the end slopes: -2 -> -2.5, 2 -> 1.5;
    # -0.5 -> -1 + 0.75 = -0.25. y: half-side 2, u (0.5, 0.5): slopes 1, the identity. z: u (1, 1): raw
    # slopes (1.5, 1.5) divided by their mean, the identity again.
    half = torch.tensor([[1.0, 2.0, 0.5]])
    u = torch.tensor([[[1.0, 0.0], [0.5, 0.5], [1.0, 1.0]]])
    x = torch.tensor([-1.0, 0.0, 1.0, -2.0, 2.0, -0.5])
    points = torch.stack([x, 2 * x, x / 2], dim=-1)[None]
    warped = warp_axes(points, half, u, 0.5)[0]
    assert torch.allclose(warped[:, 0], torch.tensor([-1.0, 0.5, 1.0, -2.5, 1.5, -0.25]))
    assert torch.allclose(warped[:, 1:], points[0, :, 1:])


def test_warped_draws_keep_labels_and_extents():
    """A sphere bent along its axes: the map is one-to-one and monotone per axis, so a query is labelled
    inside exactly where its un-bent point is; the cloud still spans [-0.5, 0.5] on each axis."""
    shape = _sphere(3)
    data = _ShapeDraws([shape], CPU, warp=0.3)
    cloud, queries, labels = data.draw(torch.zeros(4, dtype=torch.long), 4000, 4000, 0.0,
                                       torch.Generator().manual_seed(5))
    assert torch.allclose(cloud.amax(dim=1), torch.full((4, 3), 0.5), atol=5e-3)
    assert torch.allclose(cloud.amin(dim=1), torch.full((4, 3), -0.5), atol=5e-3)
    assert float((cloud.norm(dim=-1) - 0.5).abs().max()) > 0.02  # bent: no longer the sphere
    assert float((queries.norm(dim=-1) < 0.5).eq(labels.bool()).float().mean()) < 0.99
    plain = _ShapeDraws([shape], CPU).draw(torch.zeros(4, dtype=torch.long), 4000, 4000, 0.0,
                                           torch.Generator().manual_seed(5))
    assert torch.equal(plain[2], labels)  # the same draws, labels kept: the bend moves points only
    # each axis bent monotonically: the bent queries keep the unbent ones' order along every axis
    for axis in range(3):
        order = plain[1][..., axis].argsort(dim=1)
        assert bool((queries[..., axis].gather(1, order).diff(dim=1) >= 0).all())
    assert float((queries - plain[1]).abs().max()) > 0.02


def test_evenly_spaced_indices():
    assert evenly_spaced(81, 3) == [0, 40, 80]
    assert evenly_spaced(10, 4) == [0, 3, 6, 9]
    assert evenly_spaced(3, 32) == [0, 1, 2]
    assert evenly_spaced(5, 0) == [] and evenly_spaced(0, 4) == []


def test_stretched_draws_keep_labels_clouds_and_the_longest_side():
    """A sphere of radius 0.5 stretched into ellipsoids: each drawn cloud (no noise) lies on the same
    ellipsoid as its queries' labels say, and the longest semi-axis stays 0.5."""
    shape = _sphere(0)
    data = _ShapeDraws([shape], CPU, jitter=0.3)
    cloud, queries, labels = data.draw(torch.zeros(6, dtype=torch.long), 4000, 4000, 0.0,
                                       torch.Generator().manual_seed(1))
    semi = cloud.abs().amax(dim=1)  # [6, 3]: the ellipsoids' semi-axes, as far as 4,000 points show them
    assert torch.allclose(semi.amax(dim=1), torch.full((6,), 0.5), atol=2e-3)
    assert float((semi.amax(dim=1) / semi.amin(dim=1)).max()) > 1.1  # stretched, not only scaled
    inside = ((queries / semi[:, None, :]) ** 2).sum(-1) < 1.0
    assert float((inside == labels.bool()).float().mean()) > 0.995
    # undone, the queries are the sphere's uniform points, labelled as before
    undone = queries / (semi / 0.5)[:, None, :]
    assert float(undone.abs().max()) <= 0.6 + 1e-3
    assert float(((undone.norm(dim=-1) < 0.5) == labels.bool()).float().mean()) > 0.995


def test_jitter_and_warp_zero_draw_as_before():
    shape = _sphere(1)
    plain, still = _ShapeDraws([shape], CPU), _ShapeDraws([shape], CPU, jitter=0.0, warp=0.0)
    a = plain.draw(torch.zeros(3, dtype=torch.long), 50, 60, 0.01, torch.Generator().manual_seed(2))
    b = still.draw(torch.zeros(3, dtype=torch.long), 50, 60, 0.01, torch.Generator().manual_seed(2))
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def chosen():
    shapes = [_sphere(2, 0.5), _sphere(3, 0.35), _sphere(4, 0.45)]
    config = dataclasses.replace(TINY, choose_threshold=True, threshold_shapes=2, scale_jitter=0.1)
    return shapes, config, train_occnet(shapes, config, CPU)


def test_the_threshold_is_chosen_on_the_training_shapes(chosen):
    shapes, config, result = chosen
    assert sorted(result.thresholds) == list(THRESHOLD_CANDIDATES)
    best = max(result.thresholds.values())
    assert result.thresholds[result.config.threshold] == best
    assert best > 0.8  # three spheres, learnt
    assert dataclasses.replace(result.config, threshold=config.threshold) == config
    # each rate is the median of occupancy_iou over the picked shapes (the first and the last of three),
    # completed from the clouds seed + 2 gives, at every point (30,000 // THRESHOLD_POINTS: stride 1)
    rng = np.random.default_rng(config.seed + 2)
    clouds = [noisy_cloud(shapes[i].surface, config.n_points, config.noise, rng) for i in (0, 2)]
    stride = max(1, 30_000 // THRESHOLD_POINTS)
    for t in (0.2, 0.5, 0.8):
        at = dataclasses.replace(config, threshold=t)
        ious = [occupancy_iou(result.params, at, c, shapes[i].points[::stride], shapes[i].inside[::stride], CPU)
                for c, i in zip(clouds, (0, 2))]
        assert result.thresholds[t] == pytest.approx(float(np.median(ious)), abs=1e-12)


def test_threshold_ious_without_choosing_and_the_saved_threshold(chosen, tmp_path):
    shapes, config, result = chosen
    again = threshold_ious(result.params, config, shapes, CPU)
    assert again == result.thresholds  # deterministic: the same clouds and points
    plain = train_occnet(shapes[:1], dataclasses.replace(TINY, steps=5), CPU)
    assert plain.thresholds == {} and plain.config.threshold == 0.2
    save_occnet(tmp_path / "n.safetensors", result.params, result.config)
    assert load_occnet(tmp_path / "n.safetensors")[1].threshold == result.config.threshold


def _still(point, seed: int) -> OccupancyShape:
    """A sphere's surface (the clouds) whose every occupancy point is `point`: every query lands there."""
    sphere = _sphere(seed, m=10)
    return OccupancyShape(sphere.surface, np.tile(np.float32(point), (50, 1)), np.ones(50, dtype=bool))


def test_recomputed_statistics_by_hand():
    # every query at p: the first batch norm's input fc_p(p) = W p + b is the same at every point, so its
    # mean is W p + b and its variance 0 in every batch; stretching is not applied (the shapes as they are)
    config = dataclasses.replace(TINY, batch=4, n_query=16, scale_jitter=0.5, warp_jitter=0.5)
    params = init_occnet(config, torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in params.items()}
    p = torch.tensor([0.25, -0.1, 0.3])
    out = recomputed_statistics(params, config, [_still(p.numpy(), 1)], CPU, batches=3)
    expected = params["dec.fc_p.weight"] @ p + params["dec.fc_p.bias"]
    assert torch.allclose(out["dec.block0.cbn0.running_mean"], expected, atol=1e-6)
    assert torch.allclose(out["dec.block0.cbn0.running_var"], torch.zeros(config.decoder_hidden), atol=1e-6)
    assert all(torch.equal(params[k], before[k]) for k in params)  # a copy: the input is unchanged
    assert all(torch.equal(out[k], params[k]) for k in params if not is_statistic(k))
    assert all(out[k].dtype == torch.float32 and out[k].device.type == "cpu" for k in out)


def test_recomputed_statistics_weigh_batches_equally():
    # two shapes whose queries sit at p or q: each batch's mix differs, so its statistics do; the result is
    # their plain mean (the unbiased variances), the batches drawn as training draws them with seed + 3
    config = dataclasses.replace(TINY, batch=3, n_query=8, seed=5)
    shapes = [_still([0.2, 0.1, -0.3], 1), _still([-0.4, 0.3, 0.1], 2)]
    params = init_occnet(config, torch.Generator().manual_seed(1))
    out = recomputed_statistics(params, config, shapes, CPU, batches=5)
    draws, data = torch.Generator().manual_seed(config.seed + 3), _ShapeDraws(shapes, CPU)
    means, variances = [], []
    for _ in range(5):
        chosen = torch.randint(2, (config.batch,), generator=draws)
        _, queries, _ = data.draw(chosen, config.n_points, config.n_query, config.noise, draws)
        x = queries.reshape(-1, 3) @ params["dec.fc_p.weight"].T + params["dec.fc_p.bias"]
        means.append(x.mean(0))
        variances.append(x.var(0, unbiased=True))
    assert len({round(float(m[0]), 6) for m in means}) > 1  # the batches do differ
    assert torch.allclose(out["dec.block0.cbn0.running_mean"], torch.stack(means).mean(0), atol=1e-5)
    assert torch.allclose(out["dec.block0.cbn0.running_var"], torch.stack(variances).mean(0), atol=1e-5)
    # the division by MOMENTUM: one batch's statistics are that batch's, not MOMENTUM times them
    one = recomputed_statistics(params, config, shapes, CPU, batches=1)
    assert torch.allclose(one["dec.block0.cbn0.running_mean"], means[0], atol=1e-5)


def test_training_ends_with_recomputed_statistics():
    shapes = [_sphere(2, 0.5, m=2000), _sphere(3, 0.35, m=2000)]
    config = dataclasses.replace(TINY, steps=6, scale_jitter=0.2)
    plain = train_occnet(shapes, config, CPU)
    again = train_occnet(shapes, dataclasses.replace(config, statistics_batches=4), CPU)
    expected = recomputed_statistics(plain.params, config, shapes, CPU, batches=4)
    assert plain.statistics_seconds == 0.0 and again.statistics_seconds > 0.0
    for k, v in again.params.items():
        assert torch.equal(v, expected[k]), k  # the same training, then the statistics recomputed
    assert not torch.equal(again.params["dec.cbn.running_mean"], plain.params["dec.cbn.running_mean"])


def test_recomputed_statistics_bad_input():
    params = init_occnet(TINY, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="batches must be at least 1"):
        recomputed_statistics(params, TINY, [_sphere(1, m=10)], CPU, batches=0)
    with pytest.raises(ValueError, match="no shapes"):
        recomputed_statistics(params, TINY, [], CPU, batches=2)


def test_moved_average_by_hand():
    average, weights = {"w": torch.zeros(2)}, {"w": torch.ones(2), "other": torch.full((2,), 7.0)}
    moved_average(average, weights, 0.5, 0)  # d = min(0.5, 1 / 10) = 0.1: 0.1 * 0 + 0.9 * 1
    assert torch.allclose(average["w"], torch.full((2,), 0.9))
    moved_average(average, weights, 0.5, 100)  # d = min(0.5, 101 / 110) = 0.5: 0.5 * 0.9 + 0.5 * 1
    assert torch.allclose(average["w"], torch.full((2,), 0.95))
    assert set(average) == {"w"} and torch.equal(weights["w"], torch.ones(2))  # only the average moves


@pytest.mark.parametrize("decay, n, age", [(0.9, 1000, 9.0), (0.99999, 1000, 100.0), (0.99999, 4000, 400.0)])
def test_moved_average_reaches_back_as_documented(decay, n, age):
    # weights growing by 1 a step (w_k = k after update k): the average is n minus its weights' mean age,
    # 1 / (1 - d) - 1 = 9 steps once d is capped at 0.9, about a tenth of the steps under the warm-up rule
    average = {"w": torch.zeros((), dtype=torch.float64)}
    for u in range(n):
        moved_average(average, {"w": torch.tensor(u + 1.0, dtype=torch.float64)}, decay, u)
    assert float(n - average["w"]) == pytest.approx(age, rel=0.02)


def test_training_ends_with_the_averaged_weights():
    # two steps from the initial weights w0: the average is d1 (0.1 w0 + 0.9 w1) + (1 - d1) w2, d1 = 2 / 11;
    # the weights themselves follow the same path as without the average (it draws nothing)
    shapes = [_sphere(2, 0.5, m=2000), _sphere(3, 0.35, m=2000)]
    config = dataclasses.replace(TINY, steps=2)
    w0 = init_occnet(config, torch.Generator().manual_seed(config.seed))
    w1 = train_occnet(shapes, dataclasses.replace(config, steps=1), CPU).params
    w2 = train_occnet(shapes, config, CPU).params
    run = train_occnet(shapes, dataclasses.replace(config, average_decay=0.999, statistics_batches=3), CPU)
    assert run.last_params is not None and train_occnet(shapes, config, CPU).last_params is None
    assert all(torch.equal(run.last_params[k], w2[k]) for k in w2)
    d1 = 2.0 / 11.0
    expected = {k: d1 * (0.1 * w0[k] + 0.9 * w1[k]) + (1 - d1) * w2[k] for k in w2 if not is_statistic(k)}
    assert not torch.allclose(expected["dec.fc_p.weight"], w2["dec.fc_p.weight"], atol=1e-5)
    for k, v in expected.items():
        assert torch.allclose(run.params[k], v, atol=1e-6), k
    statistics = recomputed_statistics({**w2, **expected}, config, shapes, CPU, batches=3)
    for k in statistics:
        if is_statistic(k):  # recomputed for the averaged weights
            assert torch.allclose(run.params[k], statistics[k], atol=1e-5), k


def test_averaging_needs_recomputed_statistics():
    with pytest.raises(ValueError, match="average_decay: needs statistics_batches > 0"):
        OccNetConfig(average_decay=0.99)
    with pytest.raises(ConfigError, match=r"^m.yaml: occnet.average_decay: needs statistics_batches > 0: the batch"):
        config_from_dict(OccNetConfig, {"average_decay": 0.99}, "m.yaml: occnet")
    with pytest.raises(ConfigError, match=r"average_decay: must be in \[0, 1\), got 1.0"):
        config_from_dict(OccNetConfig, {"average_decay": 1.0, "statistics_batches": 10})
    assert OccNetConfig(average_decay=0.99, statistics_batches=10).average_decay == 0.99


def test_bfloat16_passes_auto_follows_the_hardware_and_true_warns_where_slow():
    fast = multiplies_bfloat16(CPU)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert bfloat16_passes("auto", CPU) is fast and bfloat16_passes(False, CPU) is False
        assert caught == []  # neither says anything
        assert bfloat16_passes(True, CPU) is True  # asked for, it is used even where slow
    slow = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(slow) == (0 if fast else 1)
    if slow:
        assert "occnet.bfloat16 is true but this cpu does not multiply bfloat16" in str(slow[0].message)
        assert "bfloat16=auto" in str(slow[0].message)


def test_bfloat16_auto_trains_as_the_hardware_choice():
    shapes = [_sphere(2, 0.5, m=2000), _sphere(3, 0.35, m=2000)]
    config = dataclasses.replace(TINY, steps=2)
    auto = train_occnet(shapes, dataclasses.replace(config, bfloat16="auto"), CPU)
    fast = multiplies_bfloat16(CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        chosen = train_occnet(shapes, dataclasses.replace(config, bfloat16=fast), CPU)
        other = train_occnet(shapes, dataclasses.replace(config, bfloat16=not fast), CPU)
    assert auto.bfloat16 is fast and chosen.bfloat16 is fast and other.bfloat16 is (not fast)
    assert all(torch.equal(auto.params[k], chosen.params[k]) for k in chosen.params)
    assert not torch.equal(auto.params["dec.fc_p.weight"], other.params["dec.fc_p.weight"])  # precision matters
    assert auto.config.bfloat16 == "auto"  # the setting is kept as given, the choice is the result's


def test_bfloat16_setting_takes_true_false_or_auto():
    assert config_from_dict(OccNetConfig, {"bfloat16": "auto"}).bfloat16 == "auto"
    assert config_from_dict(OccNetConfig, {"bfloat16": True}).bfloat16 is True
    assert OccNetConfig().bfloat16 is False
    for bad in ("yes", "Auto", 1):
        with pytest.raises(ConfigError, match=rf"^m.yaml: occnet.bfloat16: expected true or false or one of auto, "
                                              rf"got {bad!r}$"):
            config_from_dict(OccNetConfig, {"bfloat16": bad}, "m.yaml: occnet")
