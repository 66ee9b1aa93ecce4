import math

import pytest
import torch

from inrcore.device import resolve_device
from inrcore.fields.networks import (
    FieldModule,
    LayerSpec,
    evaluate_network,
    init_siren_params,
    siren_spec,
    spec_from_list,
    spec_to_list,
)
from inrcore.fields.settings import NetworkConfig


def test_siren_spec_alternates_dense_and_sine():
    spec = siren_spec(width=8, layers=2, omega_first=30.0, omega_hidden=20.0)
    kinds = [layer.kind for layer in spec]
    assert kinds == ["dense", "sine", "dense", "sine", "dense", "sine", "dense"]
    assert [(l.in_features, l.out_features) for l in spec if l.kind == "dense"] == [(3, 8), (8, 8), (8, 8), (8, 1)]
    assert [l.omega for l in spec if l.kind == "sine"] == [30.0, 20.0, 20.0]


def test_spec_round_trips_and_rejects_unknown_kinds():
    spec = siren_spec(width=4, layers=1)
    assert spec_from_list(spec_to_list(spec)) == spec
    with pytest.raises(ValueError, match="unknown layer kind 'gelu'"):
        spec_from_list([{"kind": "gelu"}])


def test_siren_init_bounds():
    spec = siren_spec(width=64, layers=2, omega_first=30.0, omega_hidden=30.0)
    params = init_siren_params(spec, torch.Generator().manual_seed(0))
    first = params["0_weight"]
    assert first.shape == (64, 3)
    assert first.abs().max() <= 1.0 / 3.0
    assert first.abs().max() > 0.9 / 3.0  # uniform over the whole range
    hidden = params["2_weight"]
    bound = math.sqrt(6.0 / 64) / 30.0
    assert hidden.abs().max() <= bound and hidden.abs().max() > 0.9 * bound
    assert params["0_bias"].abs().max() <= 1.0 / math.sqrt(3.0)


def test_evaluate_network_by_hand():
    spec = (LayerSpec("dense", 3, 1), LayerSpec("sine", omega=2.0))
    params = {"0_weight": torch.tensor([[1.0, 2.0, 3.0]]), "0_bias": torch.tensor([0.5])}
    x = torch.tensor([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    # 0.1 + 0.4 + 0.9 + 0.5 = 1.9 -> sin(3.8); 0.5 -> sin(1.0)
    expected = torch.tensor([[math.sin(3.8)], [math.sin(1.0)]])
    assert torch.allclose(evaluate_network(spec, params, x), expected, atol=1e-6)


def test_field_module_matches_functional_evaluation_and_exports_params():
    spec = siren_spec(width=16, layers=1)
    params = init_siren_params(spec, torch.Generator().manual_seed(1))
    module = FieldModule(spec, params)
    x = torch.rand(10, 3)
    assert torch.equal(module(x), evaluate_network(spec, params, x))
    exported = module.params()
    assert exported.keys() == params.keys()
    assert all(torch.equal(exported[k], params[k]) for k in params)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_activation_and_encoding_rules_by_hand():
    from inrcore.fields.networks import fourier_features

    relu = (LayerSpec("relu"),)
    assert torch.equal(evaluate_network(relu, {}, torch.tensor([[-1.0, 0.0, 2.0]])), torch.tensor([[0.0, 0.0, 2.0]]))
    softplus = (LayerSpec("softplus", beta=100.0),)
    assert evaluate_network(softplus, {}, torch.zeros(1, 1)).item() == pytest.approx(math.log(2.0) / 100.0)
    assert evaluate_network(softplus, {}, torch.tensor([[1.0]])).item() == pytest.approx(1.0)
    # [x, sin(pi x), sin(2 pi x), cos(pi x), cos(2 pi x)] for x = 0.5
    out = fourier_features(torch.tensor([[0.5]]), 2)
    assert torch.allclose(out, torch.tensor([[0.5, 1.0, 0.0, 0.0, -1.0]]), atol=1e-6)
    assert fourier_features(torch.zeros(4, 3), 6).shape == (4, 3 + 36)


def test_concat_input_appends_the_encoded_input_scaled():
    spec = (LayerSpec("dense", 2, 1), LayerSpec("concat_input"))
    params = {"0_weight": torch.tensor([[1.0, 1.0]]), "0_bias": torch.tensor([0.0])}
    out = evaluate_network(spec, params, torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(out, torch.tensor([[7.0, 3.0, 4.0]]) / math.sqrt(2.0))


def test_igr_spec_layout_with_skip_and_encoding():
    from inrcore.fields.networks import igr_spec

    spec = igr_spec(16, 4)
    assert [l.kind for l in spec] == ["dense", "softplus", "dense", "softplus", "concat_input", "dense", "softplus",
                                      "dense", "softplus", "dense"]
    dense = [(l.in_features, l.out_features) for l in spec if l.kind == "dense"]
    assert dense == [(3, 16), (16, 13), (16, 16), (16, 16), (16, 1)]
    pe = igr_spec(64, 2, activation="relu", frequencies=4)  # encoded input: 3 + 24 = 27
    assert pe[0] == LayerSpec("fourier", frequencies=4)
    assert [(l.in_features, l.out_features) for l in pe if l.kind == "dense"] == [(27, 37), (64, 64), (64, 1)]
    with pytest.raises(ValueError, match="activation must be"):
        igr_spec(16, 2, activation="tanh")


@pytest.mark.parametrize("activation, frequencies", [("softplus", 0), ("relu", 0), ("relu", 6)])
def test_geometric_init_starts_near_a_sphere_sdf(activation, frequencies):
    from inrcore.fields.networks import igr_spec, init_geometric_params

    spec = igr_spec(256, 4, activation=activation, frequencies=frequencies)
    params = init_geometric_params(spec, radius=0.5, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    d = torch.randn(2000, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    on_sphere = evaluate_network(spec, params, 0.5 * d)[:, 0]
    # The zero level set starts near |x| = 0.5 (finite width: 0.015 to 0.073 over seeds 0-2 and these nets).
    assert on_sphere.abs().mean() < 0.1
    assert (evaluate_network(spec, params, 0.2 * d) < 0).all() and (evaluate_network(spec, params, 0.9 * d) > 0).all()
    x = torch.rand(4000, 3, generator=g) * 2 - 1
    u, r = evaluate_network(spec, params, x)[:, 0], x.norm(dim=1)
    slope = torch.linalg.lstsq(torch.stack([r, torch.ones_like(r)], 1), u[:, None]).solution[0, 0]
    assert 0.7 < slope < 1.1  # about |x| - r: unit slope in the infinite-width limit
    if frequencies:
        assert torch.count_nonzero(params["1_weight"][:, 3:]) == 0  # encoding features start switched off


def test_new_layer_kinds_round_trip_through_the_spec_list():
    from inrcore.fields.networks import igr_spec

    spec = igr_spec(32, 4, activation="relu", frequencies=3)
    assert spec_from_list(spec_to_list(spec)) == spec


def test_network_for_each_kind():
    from inrcore.fields.build import network_for

    g = torch.Generator().manual_seed(0)
    siren, _ = network_for(NetworkConfig(kind="siren", width=8, layers=1), g)
    igr, igr_params = network_for(NetworkConfig(kind="igr", width=16, layers=2, radius=0.3), g)
    pe, _ = network_for(NetworkConfig(kind="relu-pe", width=16, layers=2, frequencies=2), g)
    assert siren[1].kind == "sine" and igr[1] == LayerSpec("softplus", beta=100.0)
    assert pe[0] == LayerSpec("fourier", frequencies=2) and pe[2].kind == "relu"
    last = max(int(k.split("_")[0]) for k in igr_params)
    assert torch.equal(igr_params[f"{last}_bias"], torch.tensor([-0.3]))


def test_siren_initialisation_keeps_the_activation_distribution_across_layers():
    # Sitzmann et al. 2020, sec. 3.2: with their initialisation every hidden sine layer's output
    # is arcsine-distributed on [-1, 1] (mean 0, variance 1/2, CDF 1/2 + arcsin(y)/pi) however
    # deep the network. Each pre-activation omega (W y + b) has variance
    # omega^2 n Var(w) Var(y) + omega^2 Var(b) = 1 + omega^2 / (3 n) for n inputs per unit.
    from inrcore.fields.networks import EXACT_RULES

    width, omega = 256, 30.0
    spec = siren_spec(width=width, layers=6, omega_first=omega, omega_hidden=omega)
    params = init_siren_params(spec, torch.Generator().manual_seed(0))
    x = torch.rand(5000, 3, generator=torch.Generator().manual_seed(1)) * 2.0 - 1.0
    sine_stats, pre_std = [], []
    for index, layer in enumerate(spec):
        x = EXACT_RULES[layer.kind](layer, index, params, x)
        if layer.kind == "dense" and 0 < index < len(spec) - 1:
            pre_std.append(omega * x.std().item())
        if layer.kind == "sine":
            y = torch.sort(x.flatten()).values.double()
            arcsine_cdf = 0.5 + torch.asin(y.clamp(-1, 1)) / math.pi
            empirical = (torch.arange(len(y), dtype=torch.float64) + 0.5) / len(y)
            sine_stats.append((y.mean().item(), y.var().item(), (arcsine_cdf - empirical).abs().max().item()))
    assert len(sine_stats) == 7 and len(pre_std) == 6
    for mean, variance, ks in sine_stats:
        assert abs(mean) < 0.1 and abs(variance - 0.5) < 0.03 and ks < 0.06
    expected = math.sqrt(1.0 + omega**2 / (3 * width))  # 1.47
    assert all(abs(s - expected) < 0.1 * expected for s in pre_std)


def test_stacked_dense_by_hand_and_stack_unstack():
    from inrcore.fields.networks import stack_params, unstack_params

    spec = (LayerSpec("dense", 2, 1),)
    first = {"0_weight": torch.tensor([[1.0, 2.0]]), "0_bias": torch.tensor([0.5])}
    second = {"0_weight": torch.tensor([[-1.0, 0.0]]), "0_bias": torch.tensor([3.0])}
    stacked = stack_params([first, second])
    assert stacked["0_weight"].shape == (2, 1, 2) and stacked["0_bias"].shape == (2, 1)
    x = torch.tensor([[[1.0, 1.0], [2.0, 0.0]], [[1.0, 1.0], [2.0, 0.0]]])  # [B=2, N=2, 2]
    out = evaluate_network(spec, stacked, x)
    assert out.tolist() == [[[3.5], [2.5]], [[2.0], [1.0]]]
    assert torch.equal(unstack_params(stacked, 1)["0_bias"], second["0_bias"])
    with pytest.raises(ValueError, match="parameter '0_weight' of set 1 has shape"):
        stack_params([first, {"0_weight": torch.zeros(1, 3), "0_bias": torch.zeros(1)}])


def test_generic_field_functions_take_layer_lists_and_composite_specs():
    from inrcore.fields.build import field_spec_from_json, field_spec_to_json, network_for
    from inrcore.fields.idf import IdfSpec
    from inrcore.fields.networks import evaluate_field

    spec = siren_spec(width=8, layers=1)
    params = init_siren_params(spec, torch.Generator().manual_seed(0))
    x = torch.rand(5, 3)
    assert torch.equal(evaluate_field(spec, params, x), evaluate_network(spec, params, x))
    assert field_spec_to_json(spec) == spec_to_list(spec) and field_spec_from_json(spec_to_list(spec)) == spec
    idf, idf_params = network_for(NetworkConfig(kind="idf", width=8, layers=1), torch.Generator().manual_seed(0))
    assert isinstance(idf, IdfSpec) and field_spec_from_json(field_spec_to_json(idf)) == idf
    module = FieldModule(idf, idf_params)
    assert module.spec is idf and set(module.params()) == set(idf_params)
    assert torch.equal(module(x), evaluate_field(idf, idf_params, x))
