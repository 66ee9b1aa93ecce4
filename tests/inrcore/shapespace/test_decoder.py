"""The DeepSDF decoder as data: its layout, weight normalisation, and members folded into fields."""


import pytest
import torch

from inrcore.fields.networks import evaluate_network
from inrcore.queries.bounds import bound_of
from inrcore.shapespace.decoder import (
    decoder_spec,
    decoder_values,
    effective_params,
    init_decoder_params,
    member_network,
)
from inrcore.shapespace.settings import DecoderConfig


def test_layout_of_the_papers_decoder():
    spec = decoder_spec(DecoderConfig.paper())
    dense = [layer for layer in spec if layer.kind == "dense"]
    assert [(d.in_features, d.out_features) for d in dense] == [
        (259, 512), (512, 512), (512, 512), (512, 253), (512, 512), (512, 512), (512, 512), (512, 512), (512, 1)]
    assert [layer.kind for layer in spec].count("concat_input") == 1
    assert spec[-1].kind == "tanh"
    params = init_decoder_params(spec, True, torch.Generator().manual_seed(0))
    n = sum(v.numel() for k, v in params.items() if not k.endswith("_gain"))
    assert n == pytest.approx(1.84e6, rel=0.01)  # the paper's "about 1.84M parameters"


def test_weight_norm_starts_as_the_plain_weights_and_scales_with_the_gain():
    spec = decoder_spec(DecoderConfig(latent=4, width=16, layers=4, skip_at=2))
    params = init_decoder_params(spec, True, torch.Generator().manual_seed(0))
    plain = effective_params(spec, params)
    for name in plain:
        assert torch.allclose(plain[name], params[name], atol=1e-6)
    params["0_gain"] = params["0_gain"] * 2
    assert torch.allclose(effective_params(spec, params)["0_weight"], 2 * params["0_weight"], atol=1e-6)
    rows = effective_params(spec, params)["0_weight"].norm(dim=1)
    assert torch.allclose(rows, params["0_gain"], atol=1e-6)


@pytest.mark.parametrize("config", [DecoderConfig(latent=5, width=24, layers=6, skip_at=3),
                                    DecoderConfig(latent=3, width=16, layers=3, skip_at=0)])
def test_a_member_is_the_decoder_at_its_code(config):
    g = torch.Generator().manual_seed(1)
    spec = decoder_spec(config)
    params = {k: v.double() for k, v in init_decoder_params(spec, True, g).items()}
    params = {k: v + 0.2 * torch.randn(v.shape, generator=g, dtype=torch.float64) for k, v in params.items()}
    code = torch.randn(config.latent, generator=g, dtype=torch.float64)
    points = torch.rand(2, 50, 3, generator=g, dtype=torch.float64) * 2 - 1
    expected = decoder_values(spec, params, code[None].expand(2, -1), points)
    member_spec, member_params = member_network(spec, params, code)
    assert member_spec[0].in_features == 3
    got = evaluate_network(member_spec, member_params, points)[..., 0]
    assert torch.allclose(got, expected, atol=1e-12)
    # The member goes through range analysis like any field: sound bounds over small boxes.
    centre = points[0, :4]
    axes = torch.eye(3, dtype=torch.float64)[None].expand(4, -1, -1) * 0.05
    lo, hi = bound_of(member_spec, member_params, centre, axes, mode="affine")
    assert bool((lo[:, 0] <= got[0, :4]).all()) and bool((got[0, :4] <= hi[:, 0]).all())


def test_dropout_only_while_training():
    spec = decoder_spec(DecoderConfig(latent=2, width=16, layers=4, skip_at=2, dropout=0.5))
    params = init_decoder_params(spec, False, torch.Generator().manual_seed(0))
    codes, points = torch.zeros(1, 2), torch.rand(1, 64, 3)
    a = decoder_values(spec, params, codes, points, dropout=0.5, training=False)
    b = decoder_values(spec, params, codes, points, dropout=0.5, training=False)
    assert torch.equal(a, b)
    torch.manual_seed(0)
    c = decoder_values(spec, params, codes, points, dropout=0.5, training=True)
    assert not torch.allclose(a, c)
    assert bool((a.abs() < 1).all())  # the final tanh


def test_too_narrow_for_the_skip_is_refused():
    with pytest.raises(ValueError, match="width 16 must exceed latent"):
        decoder_spec(DecoderConfig(latent=13, width=16, layers=4, skip_at=2))
