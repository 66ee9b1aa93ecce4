"""Mesh scenes: camera spirals, ray-cast views checked against hand-worked projections, and
a scene written from spot.obj and read back by the loader."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from inrcore.errors import ShapeError
from inrcore.geometry.cameras import Intrinsics, look_at_origin
from inrcore.geometry.meshes import load_mesh, normalise_mesh
from inrcore.nerf.meshscenes import (
    AMBIENT,
    LIGHT_DIRECTIONS,
    LIGHT_INTENSITIES,
    SPECULAR,
    base_colour,
    camera_poses_on_sphere,
    pixel_ray_directions,
    render_mesh_views,
    scene_from_mesh,
    shade_surface,
)
from inrcore.nerf.scenes import load_scene_split, scene_splits
from inrcore.nerf.settings import MeshSceneConfig


SPOT = Path(__file__).resolve().parents[3] / "datasets" / "meshes" / "spot.obj"
LEGO_ANGLE = 0.6911112070083618


# ----------------------------------------------------------------------------- poses


@pytest.mark.parametrize("n, upper", [(1, False), (7, False), (50, True), (200, False)])
def test_poses_look_at_the_origin_from_the_radius(n, upper):
    radius = 3.5
    poses = camera_poses_on_sphere(n, radius, upper_hemisphere=upper, seed=3)
    assert poses.shape == (n, 4, 4)
    rotation, centre = poses[:, :3, :3], poses[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centre, axis=1), radius, atol=1e-12)
    np.testing.assert_allclose(rotation.transpose(0, 2, 1) @ rotation, np.broadcast_to(np.eye(3), (n, 3, 3)),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    np.testing.assert_array_equal(poses[:, 3], np.broadcast_to([0.0, 0.0, 0.0, 1.0], (n, 4)))
    # The camera looks down its -z axis: -z is the unit vector from the camera to the origin.
    np.testing.assert_allclose(-rotation[:, :, 2], -centre / radius, atol=1e-12)
    # Upright: image right is horizontal, image up leans towards world +y.
    np.testing.assert_allclose(rotation[:, 1, 0], 0.0, atol=1e-12)
    assert np.all(rotation[:, 1, 1] > 0)
    # Fibonacci heights.
    index = np.arange(n) + 0.5
    heights = 1.0 - index / n if upper else 1.0 - 2.0 * index / n
    np.testing.assert_allclose(centre[:, 1] / radius, heights, atol=1e-12)
    if upper:
        assert np.all(centre[:, 1] > 0)


def test_spiral_is_even_and_seed_turns_it_about_y():
    a = camera_poses_on_sphere(200, 1.0, seed=0)
    assert np.linalg.norm(a[:, :3, 3].mean(axis=0)) < 0.01  # evenly spread over the sphere
    np.testing.assert_array_equal(a, camera_poses_on_sphere(200, 1.0, seed=0))
    b = camera_poses_on_sphere(200, 1.0, seed=1)
    np.testing.assert_allclose(a[:, 1, 3], b[:, 1, 3])  # same heights
    # One rotation about y maps the first spiral onto the other.
    turn = math.atan2(b[0, 0, 3], b[0, 2, 3]) - math.atan2(a[0, 0, 3], a[0, 2, 3])
    c, s = math.cos(turn), math.sin(turn)
    about_y = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    np.testing.assert_allclose(a[:, :3, 3] @ about_y.T, b[:, :3, 3], atol=1e-12)
    assert np.abs(a[:, :3, 3] - b[:, :3, 3]).max() > 0.1
    unturned = camera_poses_on_sphere(3, 1.0, seed=None)
    # Direction 0: height 1 - 1/3, azimuth 0 (in the y-z plane, towards +z).
    np.testing.assert_allclose(unturned[0, :3, 3], [0.0, 2 / 3, math.sqrt(1 - 4 / 9)], atol=1e-12)


def test_look_at_straight_down_and_bad_arguments():
    pose = look_at_origin(np.array([[0.0, 2.0, 0.0]]))[0]
    np.testing.assert_allclose(pose[:3, :3].T @ pose[:3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(pose[:3, 2], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="origin"):
        look_at_origin(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="positive integer"):
        camera_poses_on_sphere(0, 1.0)
    with pytest.raises(ValueError, match="radius"):
        camera_poses_on_sphere(3, -1.0)


def test_pixel_directions_agree_with_the_rays_module():
    from inrcore.geometry.rays import camera_directions_from_intrinsics

    camera = Intrinsics(width=5, height=3, fx=4.0, fy=5.0, cx=2.5, cy=1.5)
    one = pixel_ray_directions(camera, supersample=1)[:, :, 0]  # [H, W, 3]
    np.testing.assert_allclose(one, camera_directions_from_intrinsics(camera, dtype=torch.float64).numpy())
    # 2 x 2: pixel (v=0, u=0) samples image points (0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75).
    four = pixel_ray_directions(camera, supersample=2)[0, 0]
    expected = [[(x - 2.5) / 4.0, -(y - 1.5) / 5.0, -1.0] for y in (0.25, 0.75) for x in (0.25, 0.75)]
    np.testing.assert_allclose(four, expected)


# ----------------------------------------------------------------------------- rendering


def _camera(size: int, angle: float = LEGO_ANGLE) -> Intrinsics:
    return Intrinsics.from_camera_angle_x(size, size, angle)


def test_unit_cube_from_the_z_axis_covers_its_hand_worked_square():
    # Cube [-0.5, 0.5]^3, camera at (0, 0, 4) looking down -z, 32 x 32 pixels, lego's angle:
    # fx = 16 / tan(0.34556) = 44.44, and the front face (depth 3.5) spans
    # 44.44 * 0.5 / 3.5 = 6.349 pixels either side of the centre (16, 16). Sample points
    # (u + 0.25, u + 0.75) inside |x - 16| < 6.349: both for u = 10..21, one (9.75 and
    # 22.25) for u = 9 and 22, none elsewhere; likewise for rows.
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    camera = _camera(32)
    assert camera.fx * 0.5 / 3.5 == pytest.approx(6.349, abs=1e-3)
    pose = np.eye(4)
    pose[2, 3] = 4.0
    image = render_mesh_views(cube, pose[None], camera)
    assert image.shape == (1, 32, 32, 4) and image.dtype == np.uint8
    coverage = np.zeros(32)
    coverage[10:22] = 1.0
    coverage[[9, 22]] = 0.5
    expected_alpha = np.rint(255 * np.outer(coverage, coverage)).astype(np.uint8)  # 255, 128, 64 at corners
    np.testing.assert_array_equal(image[0, ..., 3], expected_alpha)
    assert image[0, 9, 9, 3] == 64 and image[0, 9, 15, 3] == 128 and image[0, 15, 15, 3] == 255
    np.testing.assert_array_equal(image[0, ..., :3][expected_alpha == 0], 0)

    # Pixel (row 16, column 16): its four rays hit the front face (normal +z, depth 3.5) at
    # x, y = (+-0.25 pixels) * 3.5 / fx; the colour is the mean of the shading there.
    offsets = np.array([0.25, 0.75]) / camera.fx * 3.5
    points = np.array([[x, -y, 0.5] for y in offsets for x in offsets])
    towards = np.array([0.0, 0.0, 4.0]) - points
    towards /= np.linalg.norm(towards, axis=1, keepdims=True)
    colour = shade_surface(points, np.tile([0.0, 0.0, 1.0], (4, 1)), towards).mean(axis=0)
    np.testing.assert_allclose(image[0, 16, 16, :3], np.rint(255 * colour), atol=1)


def test_views_put_things_where_the_pose_projects_them():
    # A small box right of and above the origin shows up right of and above the image centre
    # from the +z camera; from any camera it sits where the pinhole projection puts its centre.
    centre = np.array([0.6, 0.4, 0.0])
    box = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    box.apply_translation(centre)
    camera = _camera(48)
    poses = np.concatenate([look_at_origin(np.array([[0.0, 0.0, 4.0]])), camera_poses_on_sphere(5, 4.0, seed=2)])
    images = render_mesh_views(box, poses, camera)
    for pose, image in zip(poses, images):
        local = pose[:3, :3].T @ (centre - pose[:3, 3])  # camera coordinates, z < 0 in front
        if local[2] > -1.0:
            continue
        u = camera.cx + camera.fx * local[0] / -local[2]
        v = camera.cy - camera.fy * local[1] / -local[2]
        alpha = image[..., 3].astype(np.float64)
        assert alpha.sum() > 0
        rows, cols = np.indices(alpha.shape) + 0.5
        assert (alpha * cols).sum() / alpha.sum() == pytest.approx(u, abs=1.0)
        assert (alpha * rows).sum() / alpha.sum() == pytest.approx(v, abs=1.0)
    front = images[0, ..., 3] > 0
    rows, cols = np.nonzero(front)
    assert cols.min() > 24 and rows.max() < 24


def test_shading_is_view_dependent_with_the_hand_worked_highlight():
    # A point at the origin with normal +y. Seen from the mirror direction of light 0, the
    # half vector is the normal: the highlight adds SPECULAR * I_0 = 0.45 * 0.75. Seen from
    # light 0's own direction, n . h = n . L_0 = 1 / |(0.5, 1, 0.6)| = 0.788 and 0.788^40 ~ 7e-5.
    to_light = np.array(LIGHT_DIRECTIONS[0]) / np.linalg.norm(LIGHT_DIRECTIONS[0])
    mirror = to_light * np.array([-1.0, 1.0, -1.0])
    point, normal = np.zeros((1, 3)), np.array([[0.0, 1.0, 0.0]])
    diffuse = base_colour(point)[0] * (AMBIENT + LIGHT_INTENSITIES[0] * to_light[1])  # light 1 is below
    np.testing.assert_allclose(base_colour(point)[0], [0.5 + 0.25 * math.sin(p) for p in (0.3, 2.1, 4.2)])
    highlight = shade_surface(point, normal, mirror[None])[0]
    plain = shade_surface(point, normal, to_light[None])[0]
    np.testing.assert_allclose(highlight, diffuse + SPECULAR * LIGHT_INTENSITIES[0], atol=1e-12)
    np.testing.assert_allclose(plain, diffuse + SPECULAR * LIGHT_INTENSITIES[0] * (1 / 1.26886) ** 40, atol=1e-6)

    # The same through rendering: a floor at y = 0 seen at its centre (odd size: the middle
    # pixel's rays land within 0.02 of the origin) from both directions.
    floor = trimesh.Trimesh(vertices=[[-2, 0, -2], [2, 0, -2], [2, 0, 2], [-2, 0, 2]], faces=[[0, 2, 1], [0, 3, 2]])
    poses = look_at_origin(4.0 * np.stack([mirror, to_light]))
    images = render_mesh_views(floor, poses, _camera(21))
    assert images[0, 10, 10, 3] == 255 and images[1, 10, 10, 3] == 255
    np.testing.assert_allclose(images[0, 10, 10, :3], 255 * highlight, atol=3)
    np.testing.assert_allclose(images[1, 10, 10, :3], 255 * plain, atol=3)
    assert np.all(images[0, 10, 10, :3].astype(int) - images[1, 10, 10, :3] > 70)


def test_render_rejects_bad_poses():
    with pytest.raises(ValueError, match=r"\[N, 4, 4\]"):
        render_mesh_views(trimesh.creation.box(), np.eye(4), _camera(8))


# ----------------------------------------------------------------------------- scenes


def test_scene_from_spot_reads_back_with_the_same_poses_and_images(tmp_path):
    config = MeshSceneConfig(size=16, n_train=4, n_test=2, seed=5)
    folder = scene_from_mesh(SPOT, tmp_path / "spot", config)
    assert folder == tmp_path / "spot"
    assert scene_splits(folder) == ("train", "test")
    mesh, normalisation = normalise_mesh(load_mesh(SPOT), config.extent)
    camera = _camera(16)
    seeds = {"train": (4, 5), "test": (2, 6)}
    for split, (n, seed) in seeds.items():
        loaded = load_scene_split(folder, split)
        poses = camera_poses_on_sphere(n, config.radius, config.upper_hemisphere, seed)
        np.testing.assert_allclose(loaded.poses, poses.astype(np.float32), atol=1e-7)
        rgba = render_mesh_views(mesh, poses, camera).astype(np.float64) / 255.0
        composited = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])  # on white
        np.testing.assert_allclose(loaded.images, composited, atol=1e-6)
        assert loaded.intrinsics == camera and (loaded.near, loaded.far) == (2.0, 6.0)
        alpha = rgba[..., 3]
        assert (alpha == 1).any() and (alpha == 0).any()  # the cow is in the picture, with background
        with open(folder / f"transforms_{split}.json") as handle:
            meta = json.load(handle)
        assert meta["source"] == str(SPOT) and meta["extent"] == 1.0 and meta["radius"] == 4.0
        assert meta["normalisation"] == normalisation.to_dict()
        assert meta["camera_angle_x"] == LEGO_ANGLE
    train = load_scene_split(folder, "train").poses[:, :3, 3]
    test = load_scene_split(folder, "test").poses[:, :3, 3]
    assert np.linalg.norm(train[:, None] - test[None], axis=2).min() > 0.1  # disjoint cameras


def test_scene_from_mesh_without_test_views(tmp_path):
    folder = scene_from_mesh(SPOT, tmp_path / "s", MeshSceneConfig(size=8, n_train=2, n_test=0))
    assert scene_splits(folder) == ("train",)


def test_bad_mesh_path_raises_shape_error_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "cow.obj"
    with pytest.raises(ShapeError, match=re.escape(str(missing))):
        scene_from_mesh(missing, tmp_path / "scene", MeshSceneConfig(size=8, n_train=1, n_test=1))
    not_a_mesh = tmp_path / "cow.obj"
    not_a_mesh.write_text("this is not a mesh\n")
    with pytest.raises(ShapeError, match=re.escape(str(not_a_mesh))):
        scene_from_mesh(not_a_mesh, tmp_path / "scene", MeshSceneConfig(size=8, n_train=1, n_test=1))
    assert sorted(os.listdir(tmp_path)) == ["cow.obj"]
