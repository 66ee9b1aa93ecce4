import dataclasses

import pytest
import torch
import torch.nn.functional as F

from inrcore.errors import ConfigError
from inrcore.settings import config_from_dict
from inrcore.shapespace.occnet import cloud_logits, encode_points, init_occnet, occupancy_field
from inrcore.shapespace.occnet_refine import refined_code, refinement_loss
from inrcore.shapespace.settings import EVALUATION_FIELDS, OccNetConfig, evaluated_with


def test_refinement_loss_by_hand():
    logits = torch.tensor([[0.5, -2.0]])
    # smooth-L1 from 0: 0.5 * 0.5² = 0.125 and 2 - 0.5 = 1.5, mean 0.8125; pull 2 * mean(0², 1²) = 1.0
    loss = refinement_loss(logits, torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]]), weight=2.0)
    assert loss.item() == pytest.approx(1.8125)
    assert refinement_loss(torch.zeros(1, 3), torch.ones(1, 2), torch.ones(1, 2), 5.0).item() == 0.0


def test_first_adam_step_moves_each_coordinate_by_the_rate_against_its_gradient():
    code = torch.tensor([[0.5, -0.25]])
    # logits are the code itself: the surface term's gradient is z / 2 per coordinate, the pull's 0 at the start
    moved = refined_code(code, lambda z: z, steps=1, lr=0.01, weight=1.0)
    assert torch.allclose(moved, torch.tensor([[0.49, -0.24]]), atol=1e-6)
    assert torch.equal(code, torch.tensor([[0.5, -0.25]]))  # the input is left alone


def test_refined_code_converges_to_the_objectives_minimum():
    # one logit equal to the code z, encoded as 0.5, weight 1: 0.5 z² + (z - 0.5)² is least at z = 1/3
    moved = refined_code(torch.tensor([[0.5]]), lambda z: z, steps=3000, lr=1e-3, weight=1.0)
    assert moved.item() == pytest.approx(1.0 / 3.0, abs=3e-3)
    # no pull: all the way to the boundary
    assert refined_code(torch.tensor([[0.5]]), lambda z: z, steps=3000, lr=1e-3, weight=0.0).item() == \
        pytest.approx(0.0, abs=3e-3)


def test_refined_code_under_no_grad_and_with_no_steps():
    code = torch.tensor([[3.0]])
    # the logit 2z stays above 1, where smooth-L1's gradient is constant (2): every Adam step is the rate
    with torch.no_grad():
        moved = refined_code(code, lambda z: 2.0 * z, steps=5, lr=0.01, weight=0.0)
    assert moved.item() == pytest.approx(2.95, abs=1e-6) and not moved.requires_grad
    assert torch.equal(refined_code(code, lambda z: 1 / 0, steps=0, lr=0.01, weight=1.0), code)  # never called
    with pytest.raises(ValueError, match="steps must be 0 or more"):
        refined_code(code, lambda z: z, steps=-1, lr=0.01, weight=1.0)


def _network_and_cloud():
    config = OccNetConfig(hidden=16, code=16, decoder_hidden=16, blocks=2, neighbours=3)
    params = init_occnet(config, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    params = {k: v if k.endswith("var") else v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in params.items()}
    cloud = torch.nn.functional.normalize(torch.randn(200, 3, generator=gen), dim=1) * 0.4  # a sphere's points
    return config, params, cloud


def test_occupancy_field_refines_the_code_towards_the_clouds_points():
    config, params, cloud = _network_and_cloud()
    plain = occupancy_field(params, config, cloud, torch.device("cpu"))
    refined_config = dataclasses.replace(config, refine_steps=30, refine_lr=0.01, refine_weight=0.1)
    refined = occupancy_field(params, refined_config, cloud, torch.device("cpu"))
    before = F.smooth_l1_loss(plain(cloud), torch.zeros(len(cloud)))
    after = F.smooth_l1_loss(refined(cloud), torch.zeros(len(cloud)))
    assert after < 0.8 * before  # the boundary moved towards the cloud's points
    # the same as refining by hand with the library's pieces
    code, features = encode_points(params, config, cloud[None])
    by_hand = refined_code(code, lambda c: cloud_logits(params, config, cloud[None], c, features, cloud[None]),
                           30, 0.01, 0.1)
    points = torch.rand(40, 3, generator=torch.Generator().manual_seed(2)) - 0.5
    expected = -cloud_logits(params, config, cloud[None], by_hand, features, points[None])[0]
    assert torch.allclose(refined(points), expected, atol=1e-5)
    # no steps: exactly the unrefined field
    same = occupancy_field(params, dataclasses.replace(config, refine_lr=0.5), cloud, torch.device("cpu"))
    assert torch.equal(same(points), plain(points))


def test_evaluated_with_takes_only_the_evaluation_settings_a_command_names():
    network = OccNetConfig(hidden=64, mirror_views="xz", refine_steps=20, threshold=0.45)
    command = OccNetConfig(hidden=256, refine_steps=5, refine_weight=0.5)
    assert evaluated_with(network, command, []) == network  # a command that names none of them
    changed = evaluated_with(network, command, ["refine_steps", "refine_weight", "hidden", "threshold"])
    assert (changed.refine_steps, changed.refine_weight, changed.mirror_views) == (5, 0.5, "xz")
    assert (changed.hidden, changed.threshold) == (64, 0.45)  # the network's own, whatever the command says
    # naming a field at its default turns the saved setting off
    assert evaluated_with(network, OccNetConfig(), {"refine_steps": 0, "mirror_views": ""}) == \
        dataclasses.replace(network, refine_steps=0, mirror_views="")
    assert set(EVALUATION_FIELDS) <= {f.name for f in dataclasses.fields(OccNetConfig)}


def test_refinement_settings_are_checked():
    assert config_from_dict(OccNetConfig, {"refine_steps": 20}).refine_steps == 20
    for bad in ({"refine_steps": -1}, {"refine_lr": 0}, {"refine_weight": -0.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            config_from_dict(OccNetConfig, bad)
