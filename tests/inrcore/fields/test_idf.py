import math

import numpy as np
import pytest
import torch

from inrcore.errors import ConfigError
from inrcore.fields.build import field_spec_from_json, field_spec_to_json, idf_spec_for, network_for
from inrcore.fields.evaluation import evaluate_points
from inrcore.fields.idf import (
    IdfSpec,
    attenuation,
    bounded_displacement,
    evaluate_idf,
    idf_parts,
    idf_spec_from_dict,
    init_idf_params,
    part_params,
)
from inrcore.fields.networks import FieldModule, LayerSpec, evaluate_field, evaluate_network
from inrcore.fields.settings import NetworkConfig
from inrcore.fields.weights import load_field, save_field
from inrcore.sdf.idfstages import apply_idf_stage, idf_param_groups, idf_stage_at
from inrcore.sdf.settings import TrainConfig
from inrcore.sdf.training import fit_sdf
from inrcore.settings import config_from_dict
from tests.inrcore.sdf.test_training import sphere_cloud


def small_idf(nu=0.5, max_displacement=0.2, seed=0, dtype=torch.float64):
    """A small random IDF whose displacement matters everywhere in [-1, 1]^3 (wide attenuation)."""
    config = NetworkConfig(kind="idf", width=12, layers=1, idf_displacement_width=10, idf_displacement_layers=1,
                           idf_omega_base=6.0, idf_omega_displacement=12.0, idf_nu=nu,
                           idf_max_displacement=max_displacement)
    spec = idf_spec_for(config)
    params = init_idf_params(spec, torch.Generator().manual_seed(seed))
    return spec, {k: v.to(dtype) for k, v in params.items()}


def test_spec_for_config_follows_the_idf_settings():
    config = NetworkConfig(kind="idf", width=16, layers=2, idf_displacement_width=8)
    spec = idf_spec_for(config)
    assert [l.omega for l in spec.base if l.kind == "sine"] == [15.0, 15.0, 15.0]
    assert [l.omega for l in spec.displacement if l.kind == "sine"] == [60.0, 60.0, 60.0]
    assert [(l.in_features, l.out_features) for l in spec.displacement if l.kind == "dense"] == [
        (3, 8), (8, 8), (8, 8), (8, 1)]
    assert (spec.nu, spec.max_displacement) == (0.05, 0.05)
    params = init_idf_params(spec, torch.Generator().manual_seed(0))
    assert params["base_0_weight"].shape == (16, 3) and params["displacement_6_weight"].shape == (1, 8)
    assert not any("." in name for name in params)
    assert part_params(params, "displacement").keys() == {f"{i}_{t}" for i in (0, 2, 4, 6) for t in ("weight", "bias")}
    # The base is initialised exactly as a SIREN alone would be from the same generator.
    from inrcore.fields.networks import init_siren_params

    alone = init_siren_params(spec.base, torch.Generator().manual_seed(0))
    assert all(torch.equal(alone[k], params[f"base_{k}"]) for k in alone)


def test_attenuation_and_bound_by_hand():
    nu = 0.05
    chi = attenuation(torch.tensor([0.0, nu, -nu, 2 * nu]), nu)
    assert torch.allclose(chi, torch.tensor([1.0, 0.5, 0.5, 1.0 / 17.0]))
    raw = torch.tensor([-100.0, -1.0, 0.0, 1.0, 100.0])
    d = bounded_displacement(raw, 0.05)
    assert (d.abs() <= 0.05).all() and d[2] == 0.0
    assert d[3].item() == pytest.approx(0.05 * math.tanh(1.0))


def test_composition_by_hand_with_linear_networks():
    # f(x) = 2 z, so n = (0, 0, 1) and |grad f| = 2; D(x) = x + atanh(0.5), so d(0, ., .) = 0.1 * 0.5.
    # At x = (0, 0, 0.025): f = 0.05 = nu -> chi = 1/2, and
    # f^(x) = f(x + chi d n) = 2 (0.025 + 0.5 * 0.05) = 0.1.
    spec = IdfSpec(base=(LayerSpec("dense", 3, 1),), displacement=(LayerSpec("dense", 3, 1),), nu=0.05,
                   max_displacement=0.1)
    params = {"base_0_weight": torch.tensor([[0.0, 0.0, 2.0]]), "base_0_bias": torch.tensor([0.0]),
              "displacement_0_weight": torch.tensor([[1.0, 0.0, 0.0]]),
              "displacement_0_bias": torch.tensor([math.atanh(0.5)])}
    parts = idf_parts(spec, params, torch.tensor([[0.0, 0.0, 0.025]]))
    assert parts.base_values.item() == pytest.approx(0.05)
    assert torch.allclose(parts.normals, torch.tensor([[0.0, 0.0, 1.0]]))
    assert parts.attenuation.item() == pytest.approx(0.5)
    assert parts.displacement.item() == pytest.approx(0.05)
    assert parts.values.item() == pytest.approx(0.1)


def test_zero_displacement_gives_the_base_field_exactly():
    spec, params = small_idf(dtype=torch.float32)
    last = max(int(k.split("_")[1]) for k in params if k.startswith("displacement_"))
    params[f"displacement_{last}_weight"] = torch.zeros_like(params[f"displacement_{last}_weight"])
    params[f"displacement_{last}_bias"] = torch.zeros_like(params[f"displacement_{last}_bias"])
    x = torch.rand(50, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert torch.equal(evaluate_idf(spec, params, x), evaluate_network(spec.base, part_params(params, "base"), x))


def test_displacement_is_bounded_and_fades_away_from_the_base_surface():
    spec, params = small_idf(nu=0.05, max_displacement=0.05)
    x = torch.rand(2000, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    parts = idf_parts(spec, params, x)
    assert (parts.displacement.abs() < 0.05).all()
    shift = (parts.shifted - x).norm(dim=-1, keepdim=True)
    assert torch.allclose(shift, parts.attenuation * parts.displacement.abs(), atol=1e-12)
    far = parts.base_values.abs() > 0.2  # chi < (0.05 / 0.2)^4 = 1/256: the shift is under 0.05 / 256
    assert far.sum() > 1000 and (shift[far] < 0.05 / 256).all()


def test_gradient_of_the_composed_field_matches_central_differences():
    spec, params = small_idf()
    x = (torch.rand(8, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1)
    x.requires_grad_(True)
    values = evaluate_idf(spec, params, x, create_graph=True)
    (autograd,) = torch.autograd.grad(values.sum(), x)
    h = 1e-5
    numeric = torch.zeros_like(autograd)
    with torch.no_grad():
        for axis in range(3):
            step = torch.zeros(3, dtype=torch.float64)
            step[axis] = h
            numeric[:, axis] = (evaluate_idf(spec, params, x + step) - evaluate_idf(spec, params, x - step))[:, 0] / (2 * h)
    assert numeric.abs().max() > 0.1  # a non-trivial field
    assert torch.allclose(autograd, numeric, rtol=1e-5, atol=1e-7)
    # The displacement really enters the gradient: the base's own gradient differs.
    base_grad = idf_parts(spec, params, x.detach().requires_grad_(True), create_graph=True).base_gradients
    assert (base_grad - autograd).abs().max() > 1e-2


def test_gradient_with_the_normal_held_constant_matches_differences_of_the_frozen_composition():
    # What the authors train with: n and chi taken at x0 and held fixed, so the autograd gradient
    # is that of g(x) = f(x + chi(x0) d(x) n(x0)).
    spec, params = small_idf()
    x0 = torch.rand(6, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2 - 1
    x = x0.clone().requires_grad_(True)
    values = idf_parts(spec, params, x, create_graph=True, treat_normal_as_constant=True).values
    (autograd,) = torch.autograd.grad(values.sum(), x)
    frozen = idf_parts(spec, params, x0)
    base, displacement = part_params(params, "base"), part_params(params, "displacement")

    def g(points):
        d = bounded_displacement(evaluate_network(spec.displacement, displacement, points), spec.max_displacement)
        return evaluate_network(spec.base, base, points + frozen.attenuation * d * frozen.normals)[:, 0]

    h = 1e-5
    numeric = torch.stack([(g(x0 + h * e) - g(x0 - h * e)) / (2 * h) for e in torch.eye(3, dtype=torch.float64)], 1)
    assert torch.allclose(autograd, numeric, rtol=1e-5, atol=1e-7)


def test_training_time_and_grid_evaluation_agree_and_params_get_gradients():
    spec, params = small_idf(dtype=torch.float32)
    points = np.random.default_rng(5).uniform(-1, 1, (300, 3)).astype(np.float32)
    module = FieldModule(spec, params)
    x = torch.from_numpy(points).requires_grad_(True)
    trained = module(x)
    assert trained.requires_grad
    assert np.allclose(evaluate_points(spec, params, points, batch_points=128), trained[:, 0].detach().numpy(),
                       atol=1e-6)
    with torch.no_grad():
        assert not evaluate_field(spec, params, x).requires_grad
    # d/dparams of a loss on grad f^ reaches both networks (second-order through the composition).
    (grad,) = torch.autograd.grad(trained.sum(), x, create_graph=True)
    ((grad.norm(dim=-1) - 1) ** 2).mean().backward()
    assert module.weights["base_0_weight"].grad.abs().sum() > 0
    assert module.weights["displacement_0_weight"].grad.abs().sum() > 0


def test_spec_json_and_weight_file_round_trip(tmp_path):
    spec, params = small_idf(dtype=torch.float32)
    data = field_spec_to_json(spec)
    assert data["kind"] == "idf" and data["nu"] == 0.5 and data["displacement"][0]["kind"] == "dense"
    assert field_spec_from_json(data) == spec and idf_spec_from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown field kind 'nerf'"):
        field_spec_from_json({"kind": "nerf"})
    with pytest.raises(ValueError, match="lacks max_displacement, nu"):
        field_spec_from_json({"kind": "idf", "base": [], "displacement": []})
    path = save_field(tmp_path / "idf.safetensors", spec, params, {"shape_id": "s"})
    spec2, params2, meta = load_field(path)
    assert spec2 == spec and meta == {"shape_id": "s"} and params2.keys() == params.keys()
    x = torch.rand(40, 3, generator=torch.Generator().manual_seed(6)) * 2 - 1
    assert torch.equal(evaluate_field(spec2, params2, x), evaluate_field(spec, params, x))


def test_network_for_gives_an_idf():
    spec, params = network_for(NetworkConfig(kind="idf", width=8, layers=1), torch.Generator().manual_seed(0))
    assert isinstance(spec, IdfSpec) and {k.split("_")[0] for k in params} == {"base", "displacement"}


def test_staged_schedule_values():
    assert idf_stage_at(0.0) == idf_stage_at(0.19)
    first = idf_stage_at(0.1)
    assert (first.index, first.name, first.base_loss_weight, first.composed_loss_weight) == (0, "base", 1.0, 0.0)
    assert (first.base_lr_factor, first.displacement_lr_factor) == (1.0, 0.0)
    middle = idf_stage_at(0.35)  # halfway through the blend: (1 - cos(pi / 2)) / 2 = 1/2
    assert middle.index == 1 and middle.composed_loss_weight == pytest.approx(0.5)
    assert middle.base_lr_factor == pytest.approx(0.5) and middle.displacement_lr_factor == pytest.approx(0.5)
    quarter = idf_stage_at(0.275)  # a quarter through: (1 - cos(pi / 4)) / 2
    assert quarter.composed_loss_weight == pytest.approx((1 - math.sqrt(0.5)) / 2)
    assert quarter.base_loss_weight == pytest.approx(1 - (1 - math.sqrt(0.5)) / 2)
    for progress in (0.5, 0.8, 1.0):
        last = idf_stage_at(progress)
        assert (last.index, last.base_loss_weight, last.composed_loss_weight, last.base_lr_factor,
                last.displacement_lr_factor) == (2, 0.0, 1.0, 0.0, 1.0)
    # Configurable fractions; equal ones switch at once.
    assert idf_stage_at(0.3, base_fraction=0.4, blend_end=0.4).index == 0
    assert idf_stage_at(0.4, base_fraction=0.4, blend_end=0.4).index == 2
    assert idf_stage_at(0.99, base_fraction=1.0, blend_end=1.0).index == 0
    with pytest.raises(ValueError):
        idf_stage_at(0.5, base_fraction=0.6, blend_end=0.5)


def test_stage_sets_group_learning_rates_and_freezes():
    spec, params = small_idf(dtype=torch.float32)
    module = FieldModule(spec, params)
    groups = idf_param_groups(module.weights.items())
    assert [g["name"] for g in groups] == ["base", "displacement"]
    assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(params)
    apply_idf_stage(groups, idf_stage_at(0.1), 1e-3)
    assert groups[0]["lr"] == 1e-3 and groups[1]["lr"] == 0.0
    assert all(p.requires_grad for p in groups[0]["params"]) and not any(p.requires_grad for p in groups[1]["params"])
    apply_idf_stage(groups, idf_stage_at(0.9), 1e-3)
    assert groups[0]["lr"] == 0.0 and not any(p.requires_grad for p in groups[0]["params"])


def test_config_accepts_idf_and_checks_its_settings():
    config = config_from_dict(NetworkConfig, {"kind": "idf", "idf_displacement_width": 64, "idf_base_fraction": 0.1})
    assert config.idf_displacement_width == 64 and config.idf_displacement_layers is None
    assert NetworkConfig().kind == "siren" and NetworkConfig().width == 128  # defaults unchanged
    with pytest.raises(ConfigError, match="idf_nu: must be positive"):
        config_from_dict(NetworkConfig, {"kind": "idf", "idf_nu": 0})
    with pytest.raises(ConfigError, match="need 0 <= idf_base_fraction <= idf_blend_end <= 1"):
        config_from_dict(NetworkConfig, {"idf_base_fraction": 0.7})
    with pytest.raises(ConfigError, match="idf_displacement_layers: must be positive or null"):
        config_from_dict(NetworkConfig, {"idf_displacement_layers": 0})


def test_short_fit_of_a_sphere_in_stages():
    torch.manual_seed(0)
    points, normals = sphere_cloud(4000)
    config = TrainConfig(steps=300, batch_surface=512, batch_offsurface=0, batch_uniform=512, lr=1e-3,
                         lr_final=1e-4, log_every=50, device="cpu",
                         network=NetworkConfig(kind="idf", width=32, layers=2, idf_displacement_width=16,
                                               idf_displacement_layers=1))
    result = fit_sdf(points, normals, np.zeros((0, 3)), config)
    assert isinstance(result.spec, IdfSpec) and result.steps == 300
    # Logged after steps 50, 100, ...: progress 49/300 is before 0.2, 99/300 and 149/300 in the blend.
    assert [e["stage"] for e in result.history] == [0, 1, 1, 2, 2, 2]
    assert "base_surface" in result.history[1] and "base_surface" not in result.history[-1]
    test_points, _ = sphere_cloud(500, seed=1)
    on_surface = evaluate_points(result.spec, result.params, test_points.astype(np.float32))
    assert np.abs(on_surface).mean() < 0.01
    inside, outside = evaluate_points(result.spec, result.params, np.array([[0, 0, 0], [0.9, 0.9, 0.9]], np.float32))
    assert inside < 0 < outside
    shell_in = evaluate_points(result.spec, result.params, (test_points * 0.9).astype(np.float32))
    shell_out = evaluate_points(result.spec, result.params, (test_points * 1.1).astype(np.float32))
    assert (np.median(shell_in) < -0.02) and (np.median(shell_out) > 0.02)
