import math

import numpy as np
import pytest
import torch
from torch import nn

from inrcore.nerf.models import (
    NerfMLP,
    NerfRenderer,
    NgpField,
    NgpRenderer,
    OccupancyGrid,
    build_renderer,
    default_render_step,
    render_rays_in_chunks,
    trunc_exp,
)
from inrcore.nerf.settings import NerfConfig


RED = torch.tensor([1.0, 0.0, 0.0])
WHITE = torch.ones(3)


class OpaqueBall(nn.Module):
    """Density `inside` within radius 0.5 of the origin, 0 outside; red everywhere."""

    def __init__(self, inside=1e4, bound=1.0):
        super().__init__()
        self.bound = bound
        self.inside = inside
        self.dummy = nn.Parameter(torch.zeros(1))  # so the renderer can find a device

    def density(self, positions):
        return torch.where(positions.norm(dim=-1) < 0.5, self.inside, 0.0) + 0 * self.dummy

    def forward(self, positions, directions):
        return self.density(positions), RED.expand(len(positions), 3)


def _rays():
    # one ray through the centre from z = 4, one passing beside the ball at x = 0.8
    origins = torch.tensor([[0.0, 0.0, 4.0], [0.8, 0.0, 4.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    return origins, directions


def test_ngp_renderer_on_an_opaque_ball():
    ball = OpaqueBall()
    step = 0.01
    grid = OccupancyGrid(ball.bound, 32, step)
    renderer = NgpRenderer(ball, grid, step, WHITE)
    out = render_rays_in_chunks(renderer, *_rays())
    # the ray through the centre sees red, stopping at the surface 3.5 away (within a step)
    np.testing.assert_allclose(out["rgb"][0].numpy(), [1, 0, 0], atol=1e-4)
    assert out["depth"][0] == pytest.approx(3.5, abs=step)
    assert out["opacity"][0] == pytest.approx(1.0, abs=1e-4)
    # the other misses it and shows the white background
    np.testing.assert_allclose(out["rgb"][1].numpy(), [1, 1, 1], atol=1e-6)
    assert out["opacity"][1] == 0.0


def test_occupancy_grid_marks_the_ball_and_renders_the_same():
    ball = OpaqueBall()
    step = 0.01
    grid = OccupancyGrid(ball.bound, 16, step)
    grid.update(ball.density, step=0)
    occupied = grid.occupied.reshape(16, 16, 16)
    # cells are 1/8 wide: the cell at the centre holds density, the corner cell does not
    assert occupied[8, 8, 8] and not occupied[0, 0, 0]
    # every cell entirely inside the ball (its corner farthest from the centre < 0.5) is occupied
    centres = (torch.stack(torch.meshgrid(*[torch.arange(16)] * 3, indexing="ij"), -1) + 0.5) / 8 - 1
    inner = centres.norm(dim=-1) + math.sqrt(3) / 16 < 0.5
    assert occupied[inner].all()
    # and none entirely outside
    outer = centres.norm(dim=-1) - math.sqrt(3) / 16 > 0.5
    assert not occupied[outer].any()
    renderer = NgpRenderer(ball, grid, step, WHITE)
    origins, directions = _rays()
    result = renderer.render(origins, directions, perturb=False)
    np.testing.assert_allclose(result["rgb"][0].detach().numpy(), [1, 0, 0], atol=1e-4)
    # the skipped empty space: far fewer samples than the ray's 200 steps through the box
    assert result["samples"] < 60


def test_occupancy_grid_query_outside_the_box_is_empty():
    grid = OccupancyGrid(1.0, 4, 0.01)
    inside = grid.query(torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [-0.99, 0.99, 0.0]]))
    assert inside.tolist() == [True, False, True]
    # cell index: x slowest
    assert grid.cell_index(torch.tensor([[-0.9, -0.9, 0.6]])).item() == 3
    assert grid.cell_index(torch.tensor([[0.6, -0.9, -0.9]])).item() == 48


def test_nerf_renderer_coarse_and_fine_on_an_opaque_ball():
    renderer = NerfRenderer(OpaqueBall(), OpaqueBall(), near=2.0, far=6.0, n_coarse=64, n_fine=64, background=WHITE)
    origins, directions = _rays()
    out = renderer.render(origins, directions, perturb=False)
    np.testing.assert_allclose(out["rgb"][0].detach().numpy(), [1, 0, 0], atol=1e-4)
    np.testing.assert_allclose(out["rgb"][1].detach().numpy(), [1, 1, 1], atol=1e-6)
    # fine samples concentrate at the surface: depth much closer to 3.5 than a coarse bin (1/16)
    assert float(out["depth"][0].detach()) == pytest.approx(3.5, abs=0.02)
    assert out["samples"] == 2 * 64 + 2 * 128


def test_nerf_mlp_shapes_skip_and_ablations():
    net = NerfMLP(depth=8, width=32, skip=4)
    # the 6th layer (index 5) takes the hidden units and the encoded position (63 values)
    assert net.trunk[5].in_features == 32 + 63
    assert net.trunk[0].in_features == 63
    assert net.colour_hidden.in_features == 32 + 27
    sigma, rgb = net(torch.randn(5, 3), nn.functional.normalize(torch.randn(5, 3), dim=-1))
    assert sigma.shape == (5,) and rgb.shape == (5, 3)
    assert (sigma >= 0).all() and ((rgb > 0) & (rgb < 1)).all()
    plain = NerfMLP(depth=4, width=16, skip=2, positional_encoding=False, view_dependent=False)
    assert plain.trunk[0].in_features == 3 and plain.colour_hidden.in_features == 16
    x = torch.randn(4, 3)
    # without view dependence, the direction changes nothing
    a = plain(x, torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))[1]
    b = plain(x, torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3))[1]
    torch.testing.assert_close(a, b)
    # density does not depend on the direction either way
    d1 = net(x, torch.tensor([[0.0, 0.0, 1.0]]).expand(4, 3))[0]
    torch.testing.assert_close(d1, net.density(x))


def test_trunc_exp_clamps_the_gradient():
    x = torch.tensor([0.0, 20.0], requires_grad=True)
    trunc_exp(x).sum().backward()
    assert x.grad[0].item() == pytest.approx(1.0)
    assert x.grad[1].item() == pytest.approx(math.exp(15.0), rel=1e-5)


def test_ngp_field_normalises_positions_and_is_view_dependent():
    torch.manual_seed(0)
    field = NgpField(bound=1.5, levels=4, features=2, log2_size=12, base_resolution=4, finest_resolution=32, width=16)
    x = torch.rand(6, 3) * 3 - 1.5
    sigma, rgb = field(x, nn.functional.normalize(torch.randn(6, 3), dim=-1))
    assert sigma.shape == (6,) and rgb.shape == (6, 3) and (sigma > 0).all()
    for p in field.colour_net.parameters():  # make the colour depend on its inputs visibly
        nn.init.normal_(p, std=0.2)
    a = field(x, torch.tensor([[0.0, 0.0, 1.0]]).expand(6, 3))[1]
    b = field(x, torch.tensor([[1.0, 0.0, 0.0]]).expand(6, 3))[1]
    assert (a - b).abs().max() > 1e-3


def test_build_renderer_from_config():
    nerf = build_renderer(NerfConfig(model="nerf", depth=2, width=8, skip=0, n_fine=0), 2.0, 6.0, torch.device("cpu"))
    assert isinstance(nerf, NerfRenderer) and nerf.fine is None
    ngp = build_renderer(NerfConfig(model="ngp", hash_log2_size=12, grid_resolution=8), 2.0, 6.0, torch.device("cpu"))
    assert isinstance(ngp, NgpRenderer)
    assert ngp.step == pytest.approx(default_render_step(1.5)) == pytest.approx(2 * math.sqrt(3) * 1.5 / 256)
    # the same seed gives the same weights
    again = build_renderer(NerfConfig(model="ngp", hash_log2_size=12, grid_resolution=8), 2.0, 6.0, torch.device("cpu"))
    for p, q in zip(ngp.field.parameters(), again.field.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ngp_renders_on_cuda():
    renderer = build_renderer(NerfConfig(model="ngp", hash_log2_size=12, grid_resolution=8), 2.0, 6.0,
                              torch.device("cuda"))
    origins, directions = _rays()
    out = render_rays_in_chunks(renderer, origins.cuda(), directions.cuda())
    assert out["rgb"].device.type == "cuda" and out["rgb"].shape == (2, 3)
