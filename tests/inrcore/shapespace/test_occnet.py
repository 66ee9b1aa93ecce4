import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch

from inrcore.errors import ShapeError
from inrcore.shapespace.occnet import (
    ENCODER_BLOCKS,
    LOCAL_POOL_BLOCKS,
    _dense_joined,
    conditional_batch_norm,
    encode,
    encode_points,
    init_occnet,
    is_statistic,
    load_occnet,
    occnet_level,
    occnet_mesh,
    occupancy_field,
    occupancy_iou,
    occupancy_logits,
    save_occnet,
)
from inrcore.shapespace.occnet_local import local_features, pooled_local_features
from inrcore.shapespace.occnet_training import OccupancyShape, annealed_rate, noisy_cloud, train_occnet
from inrcore.shapespace.settings import OccNetConfig


CPU = torch.device("cpu")
HALF = 0.6  # the shapes' bounding box (radius 0.5) padded by 0.1: where the labelled points lie
# 250 steps: held-out IoU 0.90 (sphere) and 0.90 (box), the loss down to 0.40 of its first logged value
# (500 steps gave 0.955, 0.918 and 0.29)
TINY = OccNetConfig(hidden=32, code=32, decoder_hidden=32, blocks=2, batch=8, n_query=512, steps=250, lr=3e-3,
                    log_every=50, seed=0)


def _sphere_surface(n, rng):
    v = rng.standard_normal((n, 3))
    return 0.5 * v / np.linalg.norm(v, axis=1, keepdims=True)


def _box_surface(n, rng):
    p = rng.uniform(-0.4, 0.4, (n, 3))
    p[np.arange(n), rng.integers(0, 3, n)] = 0.4 * rng.choice([-1.0, 1.0], n)
    return p


def _shape(kind: str, seed: int, m: int = 20_000) -> OccupancyShape:
    """A sphere of radius 0.5 or a box of half-size 0.4, with points uniform in [-HALF, HALF]^3."""
    rng = np.random.default_rng(seed)
    surface = _sphere_surface(4000, rng) if kind == "sphere" else _box_surface(4000, rng)
    points = rng.uniform(-HALF, HALF, (m, 3)).astype(np.float32)
    inside = np.linalg.norm(points, axis=1) < 0.5 if kind == "sphere" else np.abs(points).max(axis=1) < 0.4
    return OccupancyShape(surface.astype(np.float32), points, inside)


@pytest.fixture(scope="module")
def trained():
    logged = []
    result = train_occnet([_shape("sphere", 0), _shape("box", 1)], TINY, CPU, on_log=logged.append)
    return result, logged


def _cbn_params(features: int, code: int) -> dict:
    """One conditional batch norm named "t" at its initial state: gamma 1, beta 0 for every code."""
    return {"t.gamma.weight": torch.zeros(features, code), "t.gamma.bias": torch.ones(features),
            "t.beta.weight": torch.zeros(features, code), "t.beta.bias": torch.zeros(features),
            "t.running_mean": torch.zeros(features), "t.running_var": torch.ones(features)}


def test_parameters_are_named_sized_and_initialised():
    params = init_occnet(TINY, torch.Generator().manual_seed(0))
    assert len(params) == 2 + 5 * ENCODER_BLOCKS + 2 + 2 + 16 * TINY.blocks + 6 + 2
    assert params["enc.fc_pos.weight"].shape == (64, 3)
    assert params["enc.block0.fc0.weight"].shape == (32, 64)
    assert params["enc.block4.shortcut.weight"].shape == (32, 64) and "enc.block4.shortcut.bias" not in params
    assert params["dec.block1.cbn0.gamma.weight"].shape == (32, 32)
    assert params["dec.fc_out.weight"].shape == (1, 32)
    assert torch.equal(params["dec.block0.cbn1.gamma.bias"], torch.ones(32))
    assert torch.count_nonzero(params["dec.block0.cbn1.gamma.weight"]) == 0
    assert torch.count_nonzero(params["dec.cbn.beta.bias"]) == 0
    assert torch.count_nonzero(params["enc.block2.fc1.weight"]) == 0  # blocks start as their shortcut
    assert torch.equal(params["dec.cbn.running_var"], torch.ones(32))
    assert params["enc.fc_pos.weight"].abs().max() <= 1 / math.sqrt(3)
    stats = sorted(k for k in params if is_statistic(k))
    assert len(stats) == 2 * (2 * TINY.blocks + 1) and stats[0] == "dec.block0.cbn0.running_mean"
    again = init_occnet(TINY, torch.Generator().manual_seed(0))
    assert all(torch.equal(params[k], again[k]) for k in params)


def test_forward_pass_shapes():
    params = init_occnet(TINY, torch.Generator().manual_seed(0))
    codes = encode(params, TINY, torch.rand(3, 50, 3))
    assert codes.shape == (3, 32)
    assert occupancy_logits(params, TINY, codes, torch.rand(3, 7, 3)).shape == (3, 7)
    with pytest.raises(ValueError, match="queries"):
        occupancy_logits(params, TINY, codes, torch.rand(2, 7, 3))
    with pytest.raises(ValueError, match="clouds"):
        encode(params, TINY, torch.rand(3, 0, 3))


def test_conditional_batch_norm_by_hand():
    params = _cbn_params(1, 2)
    x = torch.tensor([[[1.0], [2.0]], [[3.0], [6.0]]])  # [B=2, N=2, F=1]: mean 3, variance 3.5 (14/3 unbiased)
    codes = torch.zeros(2, 2)
    out = conditional_batch_norm(params, "t", x, codes, training=True)
    expected = torch.tensor([-2.0, -1.0, 0.0, 3.0]) / math.sqrt(3.5 + 1e-5)
    assert torch.allclose(out.flatten(), expected, atol=1e-6)
    assert params["t.running_mean"].item() == pytest.approx(0.1 * 3.0, abs=1e-6)
    assert params["t.running_var"].item() == pytest.approx(0.9 + 0.1 * 14 / 3, abs=1e-6)
    out = conditional_batch_norm(params, "t", x, codes, training=False)  # running statistics, unchanged
    assert out[0, 0, 0].item() == pytest.approx(0.7 / math.sqrt(0.9 + 0.1 * 14 / 3 + 1e-5), abs=1e-6)
    assert params["t.running_mean"].item() == pytest.approx(0.3, abs=1e-6)
    params["t.gamma.weight"] = torch.tensor([[1.0, 0.0]])  # gamma = 1 + code[0], beta = 0.5
    params["t.beta.bias"] = torch.tensor([0.5])
    out = conditional_batch_norm(params, "t", x, torch.tensor([[2.0, 9.0], [0.0, 9.0]]), training=False)
    normed = 0.7 / math.sqrt(0.9 + 0.1 * 14 / 3 + 1e-5)
    assert out[0, 0, 0].item() == pytest.approx(3 * normed + 0.5, abs=1e-5)
    assert out[1, 0, 0].item() == pytest.approx((3.0 - 0.3) / math.sqrt(0.9 + 0.1 * 14 / 3 + 1e-5) + 0.5, abs=1e-5)


def test_conditional_batch_norm_normalises_each_channel_over_the_whole_batch():
    params = _cbn_params(4, 3)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 200, 4, generator=gen) * torch.tensor([0.5, 2.0, 3.0, 1.0]) + torch.tensor([5.0, -1.0, 0, 2])
    out = conditional_batch_norm(params, "t", x, torch.randn(3, 3, generator=gen), training=True).reshape(-1, 4)
    assert torch.allclose(out.mean(dim=0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(out.var(dim=0, unbiased=False), torch.ones(4), atol=1e-4)
    assert torch.allclose(params["t.running_mean"], 0.1 * x.reshape(-1, 4).mean(dim=0), atol=1e-5)


def _composed_cbn(params, name, x, codes, training, relu):
    """Batch norm, the code's scale and shift and ReLU as separate torch operations (the reference)."""
    flat = x.reshape(-1, x.shape[-1])
    normed = torch.nn.functional.batch_norm(flat, params[f"{name}.running_mean"], params[f"{name}.running_var"],
                                            training=training, momentum=0.1, eps=1e-5).reshape(x.shape)
    gamma = torch.nn.functional.linear(codes, params[f"{name}.gamma.weight"], params[f"{name}.gamma.bias"])
    beta = torch.nn.functional.linear(codes, params[f"{name}.beta.weight"], params[f"{name}.beta.bias"])
    out = gamma[:, None, :] * normed + beta[:, None, :]
    return torch.relu(out) if relu else out


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("relu", [True, False])
def test_conditional_batch_norm_values_gradients_and_statistics_equal_the_composed_operations(training, relu):
    gen = torch.Generator().manual_seed(3)
    f64 = dict(dtype=torch.float64)
    params = {"t.gamma.weight": torch.randn(4, 3, generator=gen, **f64), "t.gamma.bias": torch.ones(4, **f64),
              "t.beta.weight": torch.randn(4, 3, generator=gen, **f64),
              "t.beta.bias": torch.randn(4, generator=gen, **f64),
              "t.running_mean": torch.randn(4, generator=gen, **f64),
              "t.running_var": torch.rand(4, generator=gen, **f64) + 0.5}
    # a channel with mean 1000 and spread 0.01: the variance must not cancel away
    x = torch.randn(3, 50, 4, generator=gen, **f64) * torch.tensor([1.0, 0.01, 3.0, 0.5], **f64) + torch.tensor(
        [0.5, 1000.0, -2.0, 0.0], **f64)
    codes = torch.randn(3, 3, generator=gen, **f64)
    upstream = torch.randn(3, 50, 4, generator=gen, **f64)
    results = []
    for function in (conditional_batch_norm, _composed_cbn):
        state = {k: v.clone().requires_grad_(not k.startswith("t.running")) for k, v in params.items()}
        xs, cs = x.clone().requires_grad_(), codes.clone().requires_grad_()
        out = function(state, "t", xs, cs, training, relu=relu)
        grads = torch.autograd.grad((out * upstream).sum(), [xs, cs, state["t.gamma.weight"], state["t.beta.bias"]])
        results.append((out, grads, state["t.running_mean"], state["t.running_var"]))
    (out, grads, mean, var), (out_ref, grads_ref, mean_ref, var_ref) = results
    assert torch.allclose(out, out_ref, atol=1e-9)
    assert relu is False or (out == 0).any()  # the ReLU cut some values
    for grad, grad_ref in zip(grads, grads_ref):
        assert torch.allclose(grad, grad_ref, rtol=1e-7, atol=1e-9)
    assert torch.allclose(mean, mean_ref, atol=1e-12) and torch.allclose(var, var_ref, atol=1e-12)
    assert training is False or mean[1].item() == pytest.approx(0.9 * params["t.running_mean"][1].item() + 100.0,
                                                                 abs=0.01)


def test_conditional_batch_norm_needs_two_values_per_channel_when_training():
    params = _cbn_params(2, 3)
    with pytest.raises(ValueError, match="more than one value per channel, got 1"):
        conditional_batch_norm(params, "t", torch.ones(1, 1, 2), torch.zeros(1, 3), training=True)
    out = conditional_batch_norm(params, "t", torch.ones(1, 1, 2), torch.zeros(1, 3), training=False)
    assert torch.allclose(out, torch.full((1, 1, 2), 1.0 / math.sqrt(1.0 + 1e-5)))  # running mean 0, variance 1


def test_conditional_batch_norm_in_bfloat16_follows_float32():
    gen = torch.Generator().manual_seed(4)
    params = _cbn_params(8, 3)
    params["t.gamma.weight"] = torch.randn(8, 3, generator=gen) * 0.3
    x = torch.randn(4, 64, 8, generator=gen) * 2.0 + 1.0
    codes, upstream = torch.randn(4, 3, generator=gen), torch.randn(4, 64, 8, generator=gen)
    outs = []
    for dtype in (torch.float32, torch.bfloat16):
        state = {k: v.clone() for k, v in params.items()}
        xs = x.to(dtype).requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):  # as training runs it
            out = conditional_batch_norm(state, "t", xs, codes, True, relu=True)
        assert out.dtype == dtype
        (grad,) = torch.autograd.grad((out.float() * upstream).sum(), [xs])
        outs.append((out.float(), grad.float()))
    (out32, grad32), (out16, grad16) = outs
    assert (out16 - out32).abs().max().item() < 0.05  # bfloat16's 8-bit mantissa on values of a few units
    assert torch.nn.functional.cosine_similarity(grad16.flatten(), grad32.flatten(), dim=0).item() > 0.999


def test_decoder_training_mode_moves_statistics_and_eval_mode_does_not():
    params = init_occnet(TINY, torch.Generator().manual_seed(0))
    codes = encode(params, TINY, torch.rand(2, 40, 3))
    queries = torch.rand(2, 30, 3)
    before = {k: v.clone() for k, v in params.items()}
    with torch.no_grad():
        occupancy_logits(params, TINY, codes, queries)
    assert all(torch.equal(before[k], params[k]) for k in params)
    occupancy_logits(params, TINY, codes, queries, training=True)
    assert not torch.equal(before["dec.block0.cbn0.running_mean"], params["dec.block0.cbn0.running_mean"])
    assert all(torch.equal(before[k], params[k]) for k in params if not is_statistic(k))
    with torch.no_grad():  # with running statistics a point's logit does not depend on the others
        together = occupancy_logits(params, TINY, codes, queries)
        alone = occupancy_logits(params, TINY, codes[:1], queries[:1, 5:6])
    assert alone[0, 0].item() == pytest.approx(together[0, 5].item(), abs=1e-5)


def test_encoder_is_invariant_to_the_order_of_points():
    gen = torch.Generator().manual_seed(2)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_occnet(TINY, gen).items()}
    cloud = torch.rand(1, 300, 3, generator=gen)
    shuffled = cloud[:, torch.randperm(300, generator=gen)]
    assert torch.allclose(encode(params, TINY, cloud), encode(params, TINY, shuffled), atol=1e-5)
    assert not torch.allclose(encode(params, TINY, cloud), encode(params, TINY, cloud * 0.5), atol=1e-3)


def test_encoder_equals_its_definition_with_the_maximum_joined_to_every_point():
    # the module's docstring, written out: each block after the first sees [x, max over the cloud of x]
    gen = torch.Generator().manual_seed(4)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_occnet(TINY, gen).items()}
    clouds = torch.rand(2, 40, 3, generator=gen)

    def dense(name, x):
        return torch.nn.functional.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))

    x = dense("enc.fc_pos", clouds)
    for i in range(ENCODER_BLOCKS):
        if i > 0:
            x = torch.cat([x, x.max(dim=1, keepdim=True).values.expand_as(x)], dim=-1)
        x = dense(f"enc.block{i}.shortcut", x) + dense(f"enc.block{i}.fc1", torch.relu(dense(f"enc.block{i}.fc0",
                                                                                               torch.relu(x))))
    expected = dense("enc.fc_c", torch.relu(x.max(dim=1).values))
    assert torch.allclose(encode(params, TINY, clouds), expected, atol=1e-5)


POOLING = dataclasses.replace(TINY, neighbours=3, encoder_neighbours=5)


def test_encoder_pooling_over_neighbourhoods_equals_its_definition(tmp_path):
    # blocks LOCAL_POOL_BLOCKS see [x, max of x over the point's 5 nearest cloud points], the others as before
    gen = torch.Generator().manual_seed(7)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_occnet(POOLING, gen).items()}
    assert set(params) == set(init_occnet(LOCAL, gen)) and LOCAL_POOL_BLOCKS == (1, 2)
    clouds = torch.rand(2, 40, 3, generator=gen)
    nearest = torch.cdist(clouds, clouds).topk(5, dim=-1, largest=False).indices  # [2, 40, 5]

    def dense(name, x):
        return torch.nn.functional.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))

    x = dense("enc.fc_pos", clouds)
    for i in range(ENCODER_BLOCKS):
        if i in (1, 2):
            x = torch.cat([x, torch.stack([x[b][nearest[b]].max(dim=1).values for b in range(2)])], dim=-1)
        elif i > 0:
            x = torch.cat([x, x.max(dim=1, keepdim=True).values.expand_as(x)], dim=-1)
        x = dense(f"enc.block{i}.shortcut", x) + dense(f"enc.block{i}.fc1", torch.relu(dense(f"enc.block{i}.fc0",
                                                                                               torch.relu(x))))
    codes, features = encode_points(params, POOLING, clouds)
    assert torch.allclose(codes, dense("enc.fc_c", torch.relu(x.max(dim=1).values)), atol=1e-5)
    assert torch.allclose(features, torch.relu(x), atol=1e-5)
    assert not torch.allclose(codes, encode(params, LOCAL, clouds), atol=1e-3)  # the same weights pooled globally
    # the field does not depend on the cloud's order, and the setting is saved with the network
    queries = torch.rand(9, 3, generator=gen)
    with torch.no_grad():
        expected = -occupancy_logits(params, POOLING, codes[:1], queries[None],
                                     local=local_features(clouds[:1], features[:1], queries[None], 3))[0]
    field = _check_field(params, POOLING, clouds[0], queries, expected, gen, chunk=4)
    loaded, config, _ = load_occnet(save_occnet(tmp_path / "pooling.safetensors", params, POOLING))
    assert config.encoder_neighbours == 5 and torch.equal(occupancy_field(loaded, config, clouds[0], CPU)(queries),
                                                           field(queries))


def test_a_joined_dense_layer_by_hand():
    # weight [[1, 2, 3, 4]], bias 0.5, pooled [2, 0] (3*2 + 4*0 = 6 at every point):
    # x = [1, 1] gives 1 + 2 + 0.5 + 6 = 9.5, x = [0, 1] gives 0 + 2 + 0.5 + 6 = 8.5
    params = {"l.weight": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "l.bias": torch.tensor([0.5])}
    x, pooled = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]]), torch.tensor([[[2.0, 0.0]]])
    assert _dense_joined(params, "l", x, pooled).flatten().tolist() == [9.5, 8.5]


LOCAL = dataclasses.replace(TINY, neighbours=3)


def test_a_network_with_local_features():
    gen = torch.Generator().manual_seed(5)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_occnet(LOCAL, gen).items()}
    assert params["dec.fc_local.weight"].shape == (32, 32 + 3) and "dec.fc_local.weight" not in init_occnet(TINY, gen)
    cloud, queries = torch.rand(2, 60, 3, generator=gen), torch.rand(2, 9, 3, generator=gen)
    codes, features = encode_points(params, LOCAL, cloud)
    assert torch.equal(codes, encode(params, LOCAL, cloud)) and features.shape == (2, 60, 32)
    assert features.min() >= 0  # the points' features through ReLU, as the code's maximum reads them
    with torch.no_grad():
        logits = occupancy_logits(params, LOCAL, codes, queries, local=local_features(cloud, features, queries, 3))
        with pytest.raises(ValueError, match="3 neighbours' local features"):
            occupancy_logits(params, LOCAL, codes, queries)
        # the decoder's first features are fc_p(q) + fc_local(local): without fc_local the global network's
        plain = {k: v for k, v in params.items() if not k.startswith("dec.fc_local")}
        zeroed = {**params, "dec.fc_local.weight": torch.zeros(32, 35), "dec.fc_local.bias": torch.zeros(32)}
        assert torch.allclose(occupancy_logits(zeroed, LOCAL, codes, queries, local=torch.rand(2, 9, 35)),
                              occupancy_logits(plain, TINY, codes, queries), atol=1e-6)
    # the field evaluates the same function and still does not depend on the cloud's order
    _check_field(params, LOCAL, cloud[0], queries[0], -logits[0], gen, chunk=4)


def _check_field(params, config, cloud, queries, expected, gen, chunk):
    """The field of `cloud` [P, 3] gives `expected` [N] at `queries` [N, 3], for the cloud shuffled and in
    chunks of `chunk` too; returns the field."""
    field = occupancy_field(params, config, cloud, CPU)
    assert torch.allclose(field(queries), expected, atol=1e-5)
    shuffled = occupancy_field(params, config, cloud[torch.randperm(len(cloud), generator=gen)], CPU)
    assert torch.allclose(shuffled(queries), field(queries), atol=1e-5)
    assert torch.allclose(occupancy_field(params, config, cloud, CPU, chunk=chunk)(queries), field(queries), atol=1e-5)
    return field


@pytest.mark.parametrize("encoder_neighbours", [0, 8])
def test_local_features_train_save_and_load(tmp_path, encoder_neighbours):
    local = dataclasses.replace(LOCAL, encoder_neighbours=encoder_neighbours)
    result = train_occnet([_shape("sphere", 0), _shape("box", 1)], dataclasses.replace(local, steps=300), CPU)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    held_out = _shape("box", 11)
    cloud = noisy_cloud(held_out.surface, local.n_points, local.noise, np.random.default_rng(11))
    assert occupancy_iou(result.params, local, cloud, held_out.points, held_out.inside, CPU) > 0.8
    params, config, _ = load_occnet(save_occnet(tmp_path / "local.safetensors", result.params, local))
    assert config.neighbours == 3 and config.encoder_neighbours == encoder_neighbours
    points = torch.from_numpy(held_out.points[:500])
    assert torch.equal(occupancy_field(params, config, cloud, CPU)(points),
                       occupancy_field(result.params, local, cloud, CPU)(points))


POOLED = dataclasses.replace(TINY, neighbours=4, local_encoder="pool", local_width=8)


def test_a_network_with_pooled_local_features(tmp_path):
    gen = torch.Generator().manual_seed(6)
    params = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in init_occnet(POOLED, gen).items()}
    assert params["dec.local_point.weight"].shape == (8, 32) and params["dec.local_offset.weight"].shape == (8, 3)
    assert params["dec.fc_local.weight"].shape == (32, 8) and "dec.local_offset.bias" not in params
    cloud, queries = torch.rand(2, 60, 3, generator=gen), torch.rand(2, 9, 3, generator=gen)
    codes, features = encode_points(params, POOLED, cloud)
    with torch.no_grad():
        local = pooled_local_features(params, cloud, features, queries, 4)
        logits = occupancy_logits(params, POOLED, codes, queries, local=local)
        with pytest.raises(ValueError, match=r"4 neighbours' local features: expected \[B, N, 8\]"):
            occupancy_logits(params, POOLED, codes, queries, local=local_features(cloud, features, queries, 4))
    # chunks of 9 pairs hold 2 queries of 4 neighbours each: the same values
    field = _check_field(params, POOLED, cloud[0], queries[0], -logits[0], gen, chunk=9)
    loaded, config, _ = load_occnet(save_occnet(tmp_path / "pooled.safetensors", params, POOLED))
    assert config == POOLED and torch.equal(occupancy_field(loaded, config, cloud[0], CPU)(queries[0]),
                                            field(queries[0]))


def test_pooled_local_features_train_and_complete_a_held_out_box():
    result = train_occnet([_shape("sphere", 0), _shape("box", 1)], dataclasses.replace(POOLED, steps=300), CPU)
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    held_out = _shape("box", 11)
    cloud = noisy_cloud(held_out.surface, POOLED.n_points, POOLED.noise, np.random.default_rng(11))
    assert occupancy_iou(result.params, POOLED, cloud, held_out.points, held_out.inside, CPU) > 0.8


def test_noisy_cloud_subsamples_and_adds_gaussian_noise():
    centre = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    cloud = noisy_cloud(centre, 20_000, 0.05, np.random.default_rng(0))
    assert cloud.shape == (20_000, 3) and cloud.dtype == np.float32
    assert np.allclose(cloud.std(axis=0), 0.05, rtol=0.03)
    assert np.allclose(cloud.mean(axis=0), centre[0], atol=0.002)
    surface = np.eye(3, dtype=np.float32)
    exact = noisy_cloud(surface, 300, 0.0, np.random.default_rng(0))
    assert {tuple(row) for row in exact} == {tuple(row) for row in surface}
    with pytest.raises(ValueError, match="surface"):
        noisy_cloud(np.zeros((0, 3)), 10, 0.0, np.random.default_rng(0))


def test_level_matches_the_occupancy_threshold():
    assert occnet_level(0.2) == pytest.approx(math.log(4.0))
    assert occnet_level(0.5) == 0.0
    logit = torch.tensor([math.log(0.3 / 0.7), math.log(0.1 / 0.9)])  # probabilities 0.3 and 0.1
    assert ((-logit) < occnet_level(0.2)).tolist() == [True, False]
    with pytest.raises(ValueError, match="threshold"):
        occnet_level(1.0)


def test_training_lowers_the_loss_and_logs_it(trained):
    result, logged = trained
    assert result.steps == 250
    assert [e["step"] for e in result.history] == [50, 100, 150, 200, 250]
    assert logged == result.history
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.history[-1]["seconds"] <= result.seconds
    assert all(v.device.type == "cpu" and not v.requires_grad for v in result.params.values())


def test_bfloat16_training_learns_the_same_shapes_with_float32_weights():
    # forward passes in bfloat16 (autocast), the loss, weights, Adam and batch-norm statistics float32;
    # 80 steps of 4 shapes (bfloat16 matrix products at these widths are slow on CPUs without bfloat16
    # arithmetic: 8 shapes took 12.6 s against float32's 2.6 s on a 2-core AMD EPYC, 4 take 5.2 s)
    config = dataclasses.replace(TINY, steps=80, log_every=20, batch=4, bfloat16=True)
    shapes = [_shape("sphere", 0), _shape("box", 1)]
    with warnings.catch_warnings():  # bfloat16 asked for where it is slow warns (test_occnet_training)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = train_occnet(shapes, config, CPU)
    single = train_occnet(shapes, dataclasses.replace(config, bfloat16=False), CPU)
    losses = [entry["loss"] for entry in result.history]
    assert result.steps == 80 and len(losses) == 4 and losses[-1] < 0.4 * losses[0]  # measured: 0.349 of the first
    # the float32 run's loss curve, to bfloat16's rounding (measured: within 0.9%)
    assert losses == pytest.approx([entry["loss"] for entry in single.history], rel=0.02)
    assert {v.dtype for v in result.params.values()} == {torch.float32}
    held_out = _shape("sphere", 10)
    cloud = noisy_cloud(held_out.surface, config.n_points, config.noise, np.random.default_rng(10))
    assert occupancy_iou(result.params, config, cloud, held_out.points, held_out.inside, CPU) > 0.8
    # the bfloat16 forward pass gives the float32 one's logits to bfloat16's precision
    code = encode(result.params, config, torch.as_tensor(cloud)[None])
    queries = torch.as_tensor(held_out.points[:2000])[None]
    exact = occupancy_logits(result.params, config, code, queries)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = occupancy_logits(result.params, config, encode(result.params, config, torch.as_tensor(cloud)[None]),
                                   queries).float()
    assert (rounded - exact).abs().max() < 0.05 * exact.abs().max()
    assert (rounded > 0).eq(exact > 0).float().mean() > 0.98


@pytest.mark.parametrize("kind, seed", [("sphere", 10), ("box", 11)])
def test_trained_network_completes_held_out_clouds(trained, kind, seed):
    result, _ = trained
    held_out = _shape(kind, seed)
    cloud = noisy_cloud(held_out.surface, TINY.n_points, TINY.noise, np.random.default_rng(seed))
    assert occupancy_iou(result.params, TINY, cloud, held_out.points, held_out.inside, CPU) > 0.8
    field = occupancy_field(result.params, TINY, cloud, CPU)
    values = field(torch.tensor([[0.0, 0.0, 0.0], [0.58, 0.58, 0.58]]))
    assert values[0] < occnet_level(TINY.threshold) < values[1]  # inside at the centre, outside at a corner
    points = torch.from_numpy(held_out.points[:1000])
    chunked = occupancy_field(result.params, TINY, cloud, CPU, chunk=77)(points)
    assert torch.allclose(chunked, field(points), atol=1e-5)


def test_save_and_load_round_trip(trained, tmp_path):
    result, _ = trained
    path = save_occnet(tmp_path / "occnet.safetensors", result.params, TINY, {"shapes": ["sphere", "box"]})
    params, config, metadata = load_occnet(path)
    assert config == TINY and metadata == {"shapes": ["sphere", "box"]}
    assert params.keys() == result.params.keys()
    assert all(torch.equal(params[k], result.params[k]) for k in params)
    cloud = noisy_cloud(_shape("sphere", 3).surface, 300, 0.005, np.random.default_rng(3))
    points = torch.rand(500, 3) * 1.2 - 0.6
    assert torch.equal(occupancy_field(params, config, cloud, CPU)(points),
                       occupancy_field(result.params, TINY, cloud, CPU)(points))


def test_bad_files_are_named(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(ShapeError, match="does not exist"):
        load_occnet(tmp_path / "missing.safetensors")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ShapeError, match="other.safetensors: .*no occupancy network settings"):
        load_occnet(tmp_path / "other.safetensors")
    params = init_occnet(TINY, torch.Generator().manual_seed(0))
    del params["dec.cbn.running_var"]
    save_occnet(tmp_path / "short.safetensors", params, TINY)
    with pytest.raises(ShapeError, match="short.safetensors: .*dec.cbn.running_var"):
        load_occnet(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ShapeError, match="not a readable safetensors file"):
        load_occnet(tmp_path / "junk.safetensors")


def test_a_loss_that_is_not_finite_raises():
    shape = _shape("sphere", 0, m=200)
    shape.points[5] = np.nan
    config = OccNetConfig(hidden=8, code=8, decoder_hidden=8, blocks=1, batch=2, n_query=400, steps=3, log_every=10)
    with pytest.raises(FloatingPointError, match="step 3"):
        train_occnet([shape], config, CPU)


def test_time_budget_and_bad_shapes():
    config = OccNetConfig(hidden=8, code=8, decoder_hidden=8, blocks=1, batch=2, n_query=64, steps=50, log_every=10)
    shape = _shape("box", 0, m=200)
    result = train_occnet([shape], config, CPU, seconds=1e-9)
    assert result.steps == 1 and [e["step"] for e in result.history] == [1]
    bad = OccupancyShape(shape.surface, shape.points, shape.inside[:-1])
    with pytest.raises(ShapeError, match="occupancy shape 1: inside labels must be \\[200\\]"):
        train_occnet([shape, bad], config, CPU)
    with pytest.raises(ValueError, match="no shapes"):
        train_occnet([], config, CPU)


def test_mesh_by_mise_is_a_closed_sphere(trained):
    result, _ = trained
    cloud = noisy_cloud(_shape("sphere", 12).surface, TINY.n_points, TINY.noise, np.random.default_rng(12))
    mesh, stats = occnet_mesh(result.params, TINY, cloud, CPU, start=16, levels=2, bound=HALF)
    assert mesh.is_watertight and 0 < stats["evaluations"] < stats["dense_evaluations"] == 65 ** 3
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert abs(np.median(radii) - 0.5) < 0.05


def test_near_queries_come_from_the_near_points_with_their_labels():
    from inrcore.shapespace.occnet_training import _ShapeDraws

    shape = _shape("sphere", 0, m=100)
    near = np.array([[0.0, 0.0, 0.49], [0.0, 0.0, 0.51]], dtype=np.float32)  # one just inside, one just outside
    with_near = OccupancyShape(shape.surface, shape.points, shape.inside, near, np.array([True, False]))
    draws = _ShapeDraws([with_near], CPU, near=True)
    _, queries, labels = draws.draw(torch.zeros(3, dtype=torch.long), 10, 16, 0.0, torch.Generator().manual_seed(0),
                                    n_near=6)
    assert queries.shape == (3, 16, 3) and labels.shape == (3, 16)
    tail, tail_labels = queries[:, 10:], labels[:, 10:]  # the last six of each shape are near points
    assert torch.all((tail[..., 2] == 0.49) | (tail[..., 2] == 0.51))
    assert torch.equal(tail_labels, (tail[..., 2] < 0.5).float())
    head = queries[:, :10].reshape(-1, 3).numpy()
    assert all(any(np.array_equal(q, p) for p in shape.points) for q in head)  # the first ten are uniform points


def test_near_fraction_needs_near_points_and_trains_with_them():
    config = OccNetConfig(hidden=8, code=8, decoder_hidden=8, blocks=1, batch=2, n_query=64, steps=3, log_every=1,
                          near_fraction=0.5)
    plain = _shape("box", 0, m=200)
    with pytest.raises(ShapeError, match="occupancy shape 0: near_fraction > 0 needs near points"):
        train_occnet([plain], config, CPU)
    rng = np.random.default_rng(0)
    near = (plain.surface + 0.01 * rng.standard_normal(plain.surface.shape)).astype(np.float32)
    shape = OccupancyShape(plain.surface, plain.points, plain.inside, near, np.abs(near).max(axis=1) < 0.4)
    result = train_occnet([shape], config, CPU)
    assert result.steps == 3 and all(math.isfinite(e["loss"]) for e in result.history)
    with pytest.raises(ShapeError, match="come together"):
        train_occnet([OccupancyShape(plain.surface, plain.points, plain.inside, near)], config, CPU)


def test_the_annealed_rate_follows_a_cosine_from_start_to_end():
    assert annealed_rate(1e-3, 1e-5, 0.0) == pytest.approx(1e-3)
    assert annealed_rate(1e-3, 1e-5, 0.5) == pytest.approx((1e-3 + 1e-5) / 2)  # cos(pi/2) = 0
    assert annealed_rate(1e-3, 1e-5, 1 / 3) == pytest.approx(1e-5 + 0.5 * (1e-3 - 1e-5) * 1.5)  # cos(pi/3) = 1/2
    assert annealed_rate(1e-3, 1e-5, 1.0) == pytest.approx(1e-5)
    assert annealed_rate(1e-3, 1e-5, 2.0) == annealed_rate(1e-3, 1e-5, 1.0)  # clipped
    assert annealed_rate(1e-3, 1e-5, -1.0) == annealed_rate(1e-3, 1e-5, 0.0)
