"""Camera rays of pinhole images and ray/cube intersection, against values worked by hand."""

import math

import numpy as np
import pytest
import torch

from inrcore.geometry.cameras import Intrinsics
from inrcore.geometry.rays import camera_directions_from_intrinsics, ray_box_intersection, rays_from_cameras


TWO_BY_TWO = Intrinsics(width=2, height=2, fx=1.0, fy=1.0, cx=1.0, cy=1.0)


def test_camera_directions_of_a_2x2_image():
    directions = camera_directions_from_intrinsics(TWO_BY_TWO)
    assert directions.shape == (2, 2, 3) and directions.dtype == torch.float32
    # [v, u]: ((u + 0.5 - 1) / 1, -(v + 0.5 - 1) / 1, -1)
    expected = torch.tensor([[[-0.5, 0.5, -1.0], [0.5, 0.5, -1.0]],
                             [[-0.5, -0.5, -1.0], [0.5, -0.5, -1.0]]])
    assert torch.equal(directions, expected)


def test_camera_directions_with_uneven_focal_and_principal_point():
    camera = Intrinsics(width=3, height=1, fx=2.0, fy=4.0, cx=0.5, cy=0.0)
    directions = camera_directions_from_intrinsics(camera, dtype=torch.float64)
    assert directions.dtype == torch.float64
    # u = 0, 1, 2: x = (u + 0.5 - 0.5) / 2 = 0, 0.5, 1; v = 0: y = -(0.5 - 0) / 4 = -0.125
    expected = torch.tensor([[[0.0, -0.125, -1.0], [0.5, -0.125, -1.0], [1.0, -0.125, -1.0]]], dtype=torch.float64)
    assert torch.equal(directions, expected)


def test_identity_pose_rays_are_the_normalised_camera_directions():
    origins, directions = rays_from_cameras(torch.eye(4)[None], TWO_BY_TWO)
    assert origins.shape == directions.shape == (1, 2, 2, 3)
    assert torch.equal(origins, torch.zeros(1, 2, 2, 3))
    s = 1 / math.sqrt(1.5)  # |(0.5, 0.5, 1)|
    expected = torch.tensor([[[-0.5, 0.5, -1.0], [0.5, 0.5, -1.0]],
                             [[-0.5, -0.5, -1.0], [0.5, -0.5, -1.0]]]) * s
    assert torch.allclose(directions[0], expected, atol=1e-7)
    assert torch.allclose(directions.norm(dim=-1), torch.ones(1, 2, 2))


def test_translated_pose_moves_the_origin_but_not_the_directions():
    pose = torch.eye(4)
    pose[:3, 3] = torch.tensor([1.0, -2.0, 3.0])
    origins, directions = rays_from_cameras(pose[None], TWO_BY_TWO)
    assert torch.equal(origins, torch.tensor([1.0, -2.0, 3.0]).expand(1, 2, 2, 3))
    _, reference = rays_from_cameras(torch.eye(4)[None], TWO_BY_TWO)
    assert torch.allclose(directions, reference)


def test_rotated_pose_camera_on_x_axis_looking_at_the_origin():
    # 90 degrees about y: R = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]; camera at (3, 0, 0)
    pose = torch.tensor([[0.0, 0.0, 1.0, 3.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    camera = Intrinsics(width=3, height=3, fx=1.0, fy=1.0, cx=1.5, cy=1.5)
    origins, directions = rays_from_cameras(pose[None], camera)
    assert torch.equal(origins[0, 1, 2], torch.tensor([3.0, 0.0, 0.0]))
    # middle pixel: camera (0, 0, -1) -> world (-1, 0, 0), towards the origin
    assert torch.allclose(directions[0, 1, 1], torch.tensor([-1.0, 0.0, 0.0]))
    # right of middle (u = 2, v = 1): camera (1, 0, -1) -> R @ = (-1, 0, -1) / sqrt 2 (image right is world -z)
    assert torch.allclose(directions[0, 1, 2], torch.tensor([-1.0, 0.0, -1.0]) / math.sqrt(2))
    # above middle (u = 1, v = 0): camera (0, 1, -1) -> (-1, 1, 0) / sqrt 2 (image up is world +y)
    assert torch.allclose(directions[0, 0, 1], torch.tensor([-1.0, 1.0, 0.0]) / math.sqrt(2))
    # top-left corner (u = 0, v = 0): camera (-1, 1, -1) -> (-1, 1, 1) / sqrt 3
    assert torch.allclose(directions[0, 0, 0], torch.tensor([-1.0, 1.0, 1.0]) / math.sqrt(3))


def test_batch_of_poses_dtype_and_numpy_and_3x4_input():
    poses = torch.stack([torch.eye(4), torch.eye(4)]).double()
    poses[1, :3, 3] = torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64)
    origins, directions = rays_from_cameras(poses, TWO_BY_TWO)
    assert origins.shape == (2, 2, 2, 3) and origins.dtype == directions.dtype == torch.float64
    assert torch.equal(origins[1, 1, 0], torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))
    o3, d3 = rays_from_cameras(poses[:, :3, :], TWO_BY_TWO)
    assert torch.equal(o3, origins) and torch.equal(d3, directions)
    o_np, d_np = rays_from_cameras(np.eye(4, dtype=np.float32)[None], TWO_BY_TWO)
    assert o_np.dtype == torch.float32 and o_np.shape == (1, 2, 2, 3)
    single_o, single_d = rays_from_cameras(poses[1], TWO_BY_TWO)
    assert single_o.shape == (2, 2, 3) and torch.equal(single_d, directions[1])
    with pytest.raises(ValueError, match="poses must have shape"):
        rays_from_cameras(torch.eye(3)[None], TWO_BY_TWO)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rays_stay_on_the_poses_device():
    origins, directions = rays_from_cameras(torch.eye(4, device="cuda")[None], TWO_BY_TWO)
    assert origins.device.type == directions.device.type == "cuda"
    t_near, t_far, hit = ray_box_intersection(origins.reshape(-1, 3), directions.reshape(-1, 3), 1.0)
    assert hit.device.type == "cuda" and bool(hit.all())


def box(origins, directions, bound=1.0, dtype=torch.float32):
    return ray_box_intersection(torch.tensor(origins, dtype=dtype), torch.tensor(directions, dtype=dtype), bound)


def test_ray_box_intersection_by_hand():
    r = 1 / math.sqrt(2)
    t_near, t_far, hit = box(
        [[-3.0, 0.0, 0.0],   # straight through along +x: t in [2, 4]
         [0.0, 0.0, 0.0],    # starts at the centre: [0, 1]
         [0.5, 0.5, 0.0],    # starts inside, off-centre: [0, 0.5]
         [-3.0, -3.0, 0.0],  # diagonal in xy: [2 sqrt 2, 4 sqrt 2]
         [-3.0, 2.0, 0.0],   # parallel to x but above the cube: miss
         [3.0, 0.0, 0.0],    # the cube is behind: miss
         [-3.0, 0.0, 0.0],   # diagonal that passes above: x in [2 sqrt 2, 4 sqrt 2], y in [-sqrt 2, sqrt 2]: miss
         [-3.0, 0.0, 0.0]],  # non-unit direction (2, 0, 0): t in [1, 2]
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [r, r, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0],
         [r, r, 0.0], [2.0, 0.0, 0.0]])
    s = math.sqrt(2)
    assert hit.tolist() == [True, True, True, True, False, False, False, True]
    assert torch.allclose(t_near, torch.tensor([2.0, 0.0, 0.0, 2 * s, 0.0, 0.0, 0.0, 1.0]), atol=1e-6)
    assert torch.allclose(t_far, torch.tensor([4.0, 1.0, 0.5, 4 * s, 0.0, 0.0, 0.0, 2.0]), atol=1e-6)


def test_ray_box_intersection_bound_edges_and_shapes():
    # bound 0.5; ray leaving from the face; ray touching only a corner; zero direction
    t_near, t_far, hit = box([[0.0, 0.0, 0.5], [-1.5, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]],
                             [[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -1.0]],
                             bound=0.5, dtype=torch.float64)
    assert t_near.dtype == torch.float64
    assert hit.tolist() == [False, False, False, True]
    assert t_near.tolist() == [0.0, 0.0, 0.0, 0.0] and t_far.tolist() == [0.0, 0.0, 0.0, 1.0]
    # leading batch shape [2, 1, 3] -> [2, 1]
    t_near, t_far, hit = ray_box_intersection(torch.tensor([[[-2.0, 0, 0]], [[0, -3.0, 0]]]),
                                              torch.tensor([[[1.0, 0, 0]], [[0, 1.0, 0]]]), 1.0)
    assert t_near.shape == (2, 1) and t_near.flatten().tolist() == [1.0, 2.0] and t_far.flatten().tolist() == [3.0, 4.0]
    with pytest.raises(ValueError, match="bound"):
        box([[0.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]], bound=0.0)


def test_camera_rays_hit_the_cube_they_look_at():
    # a Blender-like camera 4 units away on +z looking at the origin: the centre ray enters at 3 and leaves at 5
    pose = torch.eye(4)
    pose[2, 3] = 4.0
    camera = Intrinsics(width=4, height=4, fx=10.0, fy=10.0, cx=2.0, cy=2.0)
    origins, directions = rays_from_cameras(pose[None], camera)
    t_near, t_far, hit = ray_box_intersection(origins.reshape(-1, 3), directions.reshape(-1, 3), 1.0)
    assert bool(hit.all())
    # pixel (1, 1): camera (-0.05, 0.05, -1); hits z = 1 at t = 3 |d| / |d_z|
    d = torch.tensor([-0.05, 0.05, -1.0])
    assert t_near[5].item() == pytest.approx(3.0 * d.norm().item(), rel=1e-6)
    assert t_far[5].item() == pytest.approx(5.0 * d.norm().item(), rel=1e-6)
