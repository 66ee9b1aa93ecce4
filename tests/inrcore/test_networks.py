import math

import pytest
import torch

from inrcore.config import NetworkConfig
from inrcore.networks import (
    FieldModule, LayerSpec, evaluate_network, init_siren_params, resolve_device, siren_spec, spec_from_list,
    spec_to_list,
)


def test_siren_spec_alternates_dense_and_sine():
    spec = siren_spec(NetworkConfig(width=8, layers=2, omega_first=30.0, omega_hidden=20.0))
    kinds = [layer.kind for layer in spec]
    assert kinds == ["dense", "sine", "dense", "sine", "dense", "sine", "dense"]
    assert [(l.in_features, l.out_features) for l in spec if l.kind == "dense"] == [(3, 8), (8, 8), (8, 8), (8, 1)]
    assert [l.omega for l in spec if l.kind == "sine"] == [30.0, 20.0, 20.0]


def test_spec_round_trips_and_rejects_unknown_kinds():
    spec = siren_spec(NetworkConfig(width=4, layers=1))
    assert spec_from_list(spec_to_list(spec)) == spec
    with pytest.raises(ValueError, match="unknown layer kind 'gelu'"):
        spec_from_list([{"kind": "gelu"}])


def test_siren_init_bounds():
    spec = siren_spec(NetworkConfig(width=64, layers=2, omega_first=30.0, omega_hidden=30.0))
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
    spec = siren_spec(NetworkConfig(width=16, layers=1))
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
