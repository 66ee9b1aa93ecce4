"""Range-bound ray casting (per ray, by frusta) and sphere tracing, on fields with known zero sets."""

import math

import numpy as np
import pytest
import torch

from inrcore.geometry.rays import clip_to_cube
from inrcore.geometry.render import pixel_rays
from inrcore.queries.frusta import (
    cast_frusta,
    depth_image,
    normal_image,
    orthographic_camera,
    perspective_camera,
    render_field,
    write_render,
)
from inrcore.queries.raycast import cast_rays, sphere_trace
from inrcore.queries.settings import CastOptions
from tests.inrcore.analytic_fields import icosphere, octahedron


FAST = CastOptions(mode="interval", tiles_per_side=4)
AFFINE = CastOptions(mode="affine", tiles_per_side=4)


def sphere_hits(origins, directions, centre, radius):
    """Exact first hits of unit-direction rays with a sphere: (depth [N], discriminant [N]); depth NaN on a miss."""
    offset = origins.double() - torch.tensor(centre, dtype=torch.float64)
    d = directions.double()
    b = (d * offset).sum(-1)
    disc = b * b - ((offset * offset).sum(-1) - radius * radius)
    depth = torch.where(disc > 0, -b - disc.clamp(min=0).sqrt(), torch.full_like(b, math.nan))
    return depth, disc


def test_orthographic_camera_is_render_pixel_rays():
    camera = orthographic_camera((6, 9), 30.0, 20.0, bound=0.8, distance=2.5)
    origins, directions = camera.rays()
    expected_o, expected_d = pixel_rays((6, 9), 30.0, 20.0, 0.8, 2.5)
    assert torch.allclose(origins, torch.tensor(expected_o, dtype=torch.float32), atol=1e-6)
    assert torch.allclose(directions, torch.tensor(expected_d, dtype=torch.float32), atol=1e-6)


def test_perspective_camera_rays_start_at_the_eye_and_frame_the_cube():
    camera = perspective_camera((8, 8), 0.0, 0.0, bound=1.0, distance=6.0)
    origins, directions = camera.rays()
    assert torch.allclose(origins, torch.tensor([0.0, 0.0, 6.0]).expand(64, 3))
    assert torch.allclose(directions.norm(dim=-1), torch.ones(64))
    # the outermost columns look just inside the cone holding the sphere of radius sqrt(3)
    half_tan = math.tan(math.asin(math.sqrt(3.0) / 6.0))
    sideways = (directions[:, 0] / -directions[:, 2]).abs()
    assert half_tan * 0.8 < float(sideways.max()) < half_tan

def test_clip_to_cube():
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 2.0, 3.0], [0.5, 0.0, 0.0], [0.0, 0.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    near, far = clip_to_cube(origins, directions, 1.0)
    assert near[0] == pytest.approx(2.0) and far[0] == pytest.approx(4.0)
    assert near[1] > far[1]  # passes beside the cube
    assert near[2] == pytest.approx(0.0) and far[2] == pytest.approx(0.5)  # starts inside
    assert near[3] > far[3]  # points away


@pytest.mark.parametrize("method", ["ray", "frusta", "sphere"])
def test_octahedron_depth_and_normals_are_exact(method):
    # f = (|x|_1 - r) / sqrt(3); a ray along -z through (x, y) hits at z = r - |x| - |y|.
    spec, params = octahedron(0.5)
    camera = orthographic_camera((24, 24), 0.0, 0.0, bound=1.0, distance=3.0)
    result = render_field(spec, params, camera, method, options=FAST)
    origins, _ = camera.rays()
    x, y = origins[:, 0].reshape(24, 24), origins[:, 1].reshape(24, 24)
    z = 0.5 - x.abs() - y.abs()
    assert torch.equal(result.hit, z > 0)  # no pixel centre lies within 1e-2 of the rim
    assert float((z.abs() - 0.0).min()) > 1e-2
    tolerance = 1e-5 if method != "sphere" else 2e-3
    assert torch.allclose(result.depth[z > 0], (3.0 - z)[z > 0], atol=tolerance)
    assert torch.isinf(result.depth[z <= 0]).all()
    expected = torch.stack([x.sign(), y.sign(), torch.ones_like(x)], -1) / math.sqrt(3.0)
    assert torch.allclose(result.normals[z > 0], expected[z > 0], atol=1e-5)
    assert torch.equal(result.normals[z <= 0], torch.zeros_like(result.normals[z <= 0]))
    assert result.stats["method"] == method and result.stats["steps"] > 0 and result.stats["unfinished"] == 0


@pytest.mark.parametrize("perspective", [False, True])
def test_icosphere_depth_normals_and_misses(perspective):
    centre, radius = (0.1, -0.05, 0.0), 0.5
    spec, params = icosphere(radius, centre)
    make = perspective_camera if perspective else orthographic_camera
    camera = make((32, 32), 25.0, 15.0, bound=1.0)
    result = render_field(spec, params, camera, "frusta", options=AFFINE)
    origins, directions = camera.rays()
    expected, disc = sphere_hits(origins, directions, centre, radius)
    expected, disc = expected.reshape(32, 32).float(), disc.reshape(32, 32)
    clear_hit, clear_miss = disc > (0.25 * radius) ** 2, disc < -0.01
    assert clear_hit.sum() > 50 and clear_miss.sum() > 500
    assert result.hit[clear_hit].all() and not result.hit[clear_miss].any()
    assert torch.allclose(result.depth[clear_hit], expected[clear_hit], atol=2e-3)
    points = (origins + result.depth.reshape(-1, 1) * directions).reshape(32, 32, 3)[clear_hit]
    radial = points - torch.tensor(centre)
    radial = radial / radial.norm(dim=-1, keepdim=True)
    assert float((result.normals[clear_hit] * radial).sum(-1).min()) > 0.999


def test_methods_agree_and_frusta_take_fewer_steps():
    spec, params = icosphere(0.5, (0.05, 0.1, -0.1))
    camera = orthographic_camera((40, 40), 35.0, 25.0, bound=1.0)
    ray = render_field(spec, params, camera, "ray", options=AFFINE)
    frusta = render_field(spec, params, camera, "frusta", options=AFFINE)
    sphere = render_field(spec, params, camera, "sphere", options=AFFINE)
    assert torch.equal(ray.hit, frusta.hit)
    both = ray.hit & frusta.hit
    assert float((ray.depth[both] - frusta.depth[both]).abs().max()) < AFFINE.tolerance
    assert float((ray.hit != sphere.hit).float().mean()) < 0.01  # silhouette pixels may differ
    # Away from the silhouette sphere tracing stops within its hit tolerance / |grad f| (|grad f|
    # is about 0.45 here) of the surface, which is at most that / cos(incidence) along the ray.
    facing = (ray.normals * -torch.tensor(camera.forward)).sum(-1)
    inner = ray.hit & sphere.hit & (facing > 0.3)
    assert float((ray.depth[inner] - sphere.depth[inner]).abs().max()) < AFFINE.tolerance / (0.45 * 0.3)
    assert frusta.stats["steps"] == frusta.stats["tile_steps"] + frusta.stats["ray_steps"]
    assert frusta.stats["steps"] < 0.7 * ray.stats["steps"]


def test_frusta_on_a_perspective_camera_match_per_ray_casting():
    spec, params = octahedron(0.6, (0.0, 0.1, 0.0))
    camera = perspective_camera((24, 32), 40.0, 30.0, bound=1.0)
    cast, stats = cast_frusta(spec, params, camera, options=FAST)
    origins, directions = camera.rays(unit=True)
    single = cast_rays(spec, params, origins, directions, options=FAST)
    assert torch.equal(cast.hit, single.hit) and cast.hit.any()
    _, unnormalised = camera.rays(unit=False)
    depth = cast.t * unnormalised.norm(dim=-1)
    assert torch.allclose(depth[cast.hit], single.t[single.hit], atol=2e-3)
    assert stats["tiles"] >= 16 and stats["tile_steps"] > 0


def test_cast_rays_outside_the_cube_and_starting_inside_the_solid():
    spec, params = octahedron(0.5)
    origins = torch.tensor([[0.0, 3.0, 3.0], [0.0, 0.0, 0.0], [0.1, 0.1, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    result = cast_rays(spec, params, origins, directions, options=FAST)
    assert result.hit.tolist() == [False, True, True]
    assert result.steps[0] == 0 and math.isnan(float(result.t[0]))
    assert float(result.t[1]) == pytest.approx(0.5, abs=1e-5)  # leaves the solid at x = 0.5
    assert float(result.t[2]) == pytest.approx(3.0 - 0.3, abs=1e-5)
    traced = sphere_trace(spec, params, origins, directions, options=FAST)
    assert traced.hit.tolist() == [False, True, True]
    assert float(traced.t[2]) == pytest.approx(2.7, abs=2e-3)


def test_rays_that_run_out_of_steps_are_unfinished_misses():
    spec, params = icosphere(0.5)
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.9, 0.9, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    options = CastOptions(mode="interval", max_steps=3)
    result = cast_rays(spec, params, origins, directions, options=options)
    assert not result.hit[0] and result.unfinished[0] and result.steps[0] == 3
    full = cast_rays(spec, params, origins, directions, options=FAST)
    assert full.hit.tolist() == [True, False] and not full.unfinished.any()
    assert float(full.t[0]) == pytest.approx(2.5, abs=1e-3)


def test_images_and_pngs(tmp_path):
    spec, params = octahedron(0.5)
    camera = orthographic_camera((16, 20), 10.0, 10.0)
    result = render_field(spec, params, camera, "ray", options=FAST)
    depth, normals = depth_image(result.depth, result.hit), normal_image(result.normals, result.hit)
    assert depth.shape == (16, 20, 3) and normals.shape == (16, 20, 3) and depth.dtype == np.uint8
    miss = ~result.hit.numpy()
    assert (depth[miss] == 255).all() and (normals[miss] == 255).all()
    hit = result.hit.numpy()
    assert depth[hit].min() == 32 and depth[hit].max() == 224
    expected = np.rint(255 * (result.normals.numpy()[hit] + 1) / 2)
    assert np.array_equal(normals[hit], expected.astype(np.uint8))
    paths = write_render(result, tmp_path / "oct")
    assert paths["depth"].is_file() and paths["normals"].is_file()
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(paths["normals"])), normals)


def test_bad_arguments():
    spec, params = octahedron(0.5)
    with pytest.raises(ValueError, match="method"):
        render_field(spec, params, orthographic_camera((4, 4)), "marching")
    with pytest.raises(ValueError):
        CastOptions(shrink=1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_parameters_device():
    spec, params = icosphere(0.5)
    params = {k: v.cuda() for k, v in params.items()}
    result = render_field(spec, params, orthographic_camera((16, 16)), "frusta", options=AFFINE)
    assert result.depth.is_cuda and result.hit.any()
