import dataclasses
import math

import numpy as np
import pytest
import torch

from inrcore.errors import ConfigError
from inrcore.settings import config_from_dict
from inrcore.shapespace.occnet import init_occnet, occupancy_field
from inrcore.shapespace.occnet_views import averaged_views, mirror_matrix, symmetric_axes
from inrcore.shapespace.settings import OccNetConfig


def _mug_like(seed: int) -> torch.Tensor:
    """A cylinder's wall (symmetric across x = 0 and z = 0) with a handle on +x only: symmetric across z = 0
    alone. [300, 3] with noise 0.005."""
    rng = np.random.default_rng(seed)
    angle, height = rng.uniform(0, 2 * math.pi, 250), rng.uniform(-0.4, 0.4, 250)
    wall = np.stack([0.3 * np.cos(angle), height, 0.3 * np.sin(angle)], axis=1)
    t = rng.uniform(-math.pi / 2, math.pi / 2, 50)
    handle = np.stack([0.3 + 0.15 * np.cos(t), 0.15 * np.sin(t), np.zeros(50)], axis=1)
    cloud = np.concatenate([wall, handle]) + 0.005 * rng.standard_normal((300, 3))
    return torch.as_tensor(cloud, dtype=torch.float32)


def test_mirror_matrix_by_hand():
    assert torch.equal(mirror_matrix("x"), torch.diag(torch.tensor([-1.0, 1.0, 1.0])))
    assert torch.equal(torch.tensor([[0.1, 0.2, 0.3]]) @ mirror_matrix("z"), torch.tensor([[0.1, 0.2, -0.3]]))
    with pytest.raises(ValueError, match="one of x, y, z"):
        mirror_matrix("w")


def test_symmetric_axes_finds_the_planes_the_cloud_is_symmetric_about():
    cloud = _mug_like(0)
    assert symmetric_axes(cloud, "xz") == "z"  # the handle breaks the x = 0 plane
    assert symmetric_axes(cloud, "xyz") == "yz"  # the wall's height is centred: y too
    assert symmetric_axes(cloud[:250], "xz") == "xz"  # the wall alone
    assert symmetric_axes(cloud + torch.tensor([0.2, 0.0, 0.0]), "x") == ""  # off the plane through the origin
    assert symmetric_axes(cloud[:1], "xz") == ""
    assert symmetric_axes(cloud, "") == ""


def test_averaged_views_by_hand():
    cloud = _mug_like(1)[:250]  # symmetric across x = 0 and z = 0
    points = torch.tensor([[0.2, 0.0, 0.1], [-0.3, 0.1, 0.0]])
    # a view reading logit x at a point: the x-mirrored view reads -x there, and with z the mirror z view
    # reads x again; with only "x" the probabilities are sigma(x) and sigma(-x), whose mean is 1/2: logit 0
    views = averaged_views(lambda c: lambda p: p[:, 0], cloud, "x")
    assert torch.allclose(views(points), torch.zeros(2), atol=1e-6)
    # with "xz": sigma(x), sigma(-x), sigma(x): mean (1 + sigma(x)) / 3
    x = points[:, 0]
    mean = (1.0 + torch.sigmoid(x)) / 3.0
    assert torch.allclose(averaged_views(lambda c: lambda p: p[:, 0], cloud, "xz")(points),
                          torch.log(mean / (1 - mean)), atol=1e-6)
    # constant logits 0 for the cloud and log 3 (probability 3/4) for its mirror image: mean 5/8, logit log 5/3
    views = averaged_views(lambda c: lambda p: torch.full((len(p),), 0.0 if torch.equal(c, cloud) else math.log(3.0)),
                           cloud, "x")
    assert torch.allclose(views(points), torch.full((2,), math.log(5.0 / 3.0)), atol=1e-6)
    # no symmetric plane: exactly the one view; huge logits stay finite
    asymmetric = _mug_like(2)
    assert torch.equal(averaged_views(lambda c: lambda p: 50.0 * p[:, 0], asymmetric, "x")(points), 50.0 * x)
    assert torch.isfinite(averaged_views(lambda c: lambda p: 1e4 * p[:, 0], cloud, "z")(points)).all()


def test_occupancy_field_with_mirror_views_averages_the_views():
    config = OccNetConfig(hidden=16, code=16, decoder_hidden=16, blocks=2, neighbours=3)
    params = init_occnet(config, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    params = {k: v + 0.05 * torch.randn(v.shape, generator=gen) for k, v in params.items() if not k.endswith("var")} | \
        {k: v for k, v in params.items() if k.endswith("var")}
    cloud = _mug_like(3)  # symmetric across z = 0 only
    points = torch.rand(50, 3, generator=gen) - 0.5
    one = occupancy_field(params, config, cloud, torch.device("cpu"))
    viewed = occupancy_field(params, dataclasses.replace(config, mirror_views="xz"), cloud, torch.device("cpu"))
    mirror = mirror_matrix("z")
    other = occupancy_field(params, config, cloud @ mirror, torch.device("cpu"))(points @ mirror)
    mean = (torch.sigmoid(-one(points)) + torch.sigmoid(-other)) / 2.0
    assert not torch.allclose(one(points), other, atol=1e-3)  # the two views differ
    assert torch.allclose(viewed(points), -torch.log(mean / (1.0 - mean)), atol=1e-5)


def test_mirror_views_setting_is_checked():
    assert config_from_dict(OccNetConfig, {"mirror_views": "xz"}).mirror_views == "xz"
    with pytest.raises(ConfigError, match="mirror_views"):
        config_from_dict(OccNetConfig, {"mirror_views": "xx"})
