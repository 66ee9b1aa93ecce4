"""Ray-cast renders: framing, silhouettes and shading checked against hand-worked numbers.

With size 256 and bound 1 the view is 2 sqrt(3) world units wide, so one world unit is
256 / (2 sqrt(3)) = 73.9 pixels and the image centre (128, 128) is the origin.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from inrcore.geometry.images import image_grid, side_by_side, write_gif, write_png
from inrcore.geometry.render import render_mesh
from inrcore.geometry.settings import ViewConfig


SIZE = 256
PIXELS_PER_UNIT = SIZE / (2 * math.sqrt(3.0))
COLOR = (0.75, 0.8, 0.9)


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.8)


@pytest.fixture(scope="module")
def sphere_image(sphere) -> np.ndarray:
    return render_mesh(sphere, ViewConfig(size=(SIZE, SIZE), color=COLOR))


def _covered(image: np.ndarray) -> np.ndarray:
    return (image != 255).any(axis=2)


def test_sphere_covers_the_centre_and_not_the_corners(sphere_image):
    assert sphere_image.shape == (SIZE, SIZE, 3) and sphere_image.dtype == np.uint8
    covered = _covered(sphere_image)
    assert covered[120:136, 120:136].all()
    for corner in (covered[:10, :10], covered[:10, -10:], covered[-10:, :10], covered[-10:, -10:]):
        assert not corner.any()
    assert (sphere_image[0, 0] == 255).all()


def test_sphere_silhouette_is_the_analytic_disk(sphere_image):
    # Orthographic: a sphere of radius 0.8 projects to a disk of radius 0.8 * 73.9 = 59.1 px,
    # area pi 59.1^2 = 10977 px. The icosphere is inscribed (faces 0.05 % inside).
    expected = math.pi * (0.8 * PIXELS_PER_UNIT) ** 2
    assert _covered(sphere_image).sum() == pytest.approx(expected, rel=0.01)


def test_centre_faces_the_headlight_and_is_brightest(sphere_image):
    grey = sphere_image.astype(int).sum(axis=2)
    centre = sphere_image[128, 128].astype(int)
    # Full light at the centre: 255 * colour = (191, 204, 230), up to a facet's tilt.
    assert np.abs(centre - np.rint(255 * np.array(COLOR))).max() <= 2
    assert grey[128, 128] >= grey[_covered(sphere_image)].max() - 3  # brightest of the sphere
    # At 0.95 of the disk radius the normal makes cos = sqrt(1 - 0.95^2) = 0.312 with the
    # light: 0.15 + 0.85 * 0.312 = 0.415 of full light.
    column = int(128 + 0.95 * 0.8 * PIXELS_PER_UNIT)
    rim = sphere_image[128, column].astype(float)
    assert rim[2] / (255 * COLOR[2]) == pytest.approx(0.415, abs=0.05)


def test_framing_is_fixed_by_bound_not_by_the_mesh():
    # A small ball at x = +0.6, seen from +z (azimuth 0, elevation 0): centred 0.6 * 73.9 =
    # 44.3 px right of the image centre, on the middle row; +y is up.
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    ball.apply_translation([0.6, 0.0, 0.0])
    front = ViewConfig(size=(SIZE, SIZE), azimuth_deg=0, elevation_deg=0)
    rows, columns = np.nonzero(_covered(render_mesh(ball, front)))
    assert columns.mean() == pytest.approx(128 + 0.6 * PIXELS_PER_UNIT, abs=0.5)
    assert rows.mean() == pytest.approx(128, abs=0.5)
    ball.apply_translation([-0.6, 0.5, 0.0])
    rows, _ = np.nonzero(_covered(render_mesh(ball, front)))
    assert rows.mean() == pytest.approx(128 - 0.5 * PIXELS_PER_UNIT, abs=0.5)


def test_back_facing_open_surface_is_drawn():
    # One triangle in the plane z = 0 whose normal points away from a camera on +z.
    triangle = trimesh.Trimesh(vertices=[[-0.5, -0.5, 0], [0.5, 0.5, 0], [0.5, -0.5, 0]], faces=[[0, 1, 2]])
    assert triangle.face_normals[0] @ [0, 0, 1] == pytest.approx(-1.0)
    image = render_mesh(triangle, ViewConfig(size=(64, 64), azimuth_deg=0, elevation_deg=0))
    covered = _covered(image)
    # half of a 0.5 x ... square: area 0.5 world units^2 at (64 / 2 sqrt 3)^2 px per unit^2
    assert covered.sum() == pytest.approx(0.5 * (64 / (2 * math.sqrt(3))) ** 2, rel=0.05)
    assert tuple(image[covered][0]) == tuple(int(round(255 * c)) for c in COLOR)  # |n.l| = 1


def test_empty_mesh_renders_white():
    empty = trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=int))
    image = render_mesh(empty, ViewConfig(size=(20, 30)))
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert (image == 255).all()


def test_write_png_round_trips_atomically(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, size=(4, 3, 4), dtype=np.uint8)
    written = write_png(rgb, tmp_path / "pictures" / "rgb.png")
    write_png(rgba, tmp_path / "pictures" / "rgba.png")
    write_png(rgb[::-1], tmp_path / "pictures" / "rgb.png")  # overwrite in place
    assert written == tmp_path / "pictures" / "rgb.png"
    assert sorted(os.listdir(tmp_path / "pictures")) == ["rgb.png", "rgba.png"]
    with Image.open(written) as picture:
        assert picture.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(picture), rgb[::-1])
    with Image.open(tmp_path / "pictures" / "rgba.png") as picture:
        np.testing.assert_array_equal(np.asarray(picture), rgba)


def test_write_png_rejects_bad_arrays_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_png(np.zeros((4, 4, 3)), tmp_path / "float.png")
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        write_png(np.zeros((4, 4), dtype=np.uint8), tmp_path / "grey.png")
    assert os.listdir(tmp_path) == []


def test_side_by_side_pads_with_white():
    a = np.zeros((4, 2, 3), dtype=np.uint8)
    b = np.full((2, 3, 3), 7, dtype=np.uint8)
    joined = side_by_side([a, b], gap=1)
    assert joined.shape == (4, 2 + 1 + 3, 3)
    assert (joined[:, :2] == 0).all()
    assert (joined[:, 2] == 255).all()  # the gap
    assert (joined[:2, 3:] == 7).all() and (joined[2:, 3:] == 255).all()  # b is shorter
    with_alpha = side_by_side([a, np.zeros((4, 1, 4), dtype=np.uint8)], gap=0)
    assert with_alpha.shape == (4, 3, 4)
    assert (with_alpha[:, :2, 3] == 255).all()  # opaque where the RGB image was
    with pytest.raises(ValueError):
        side_by_side([])


def test_point_render_shows_the_cloud_in_the_middle():
    from inrcore.geometry.render import render_point_cloud

    d = np.random.default_rng(0).normal(size=(4000, 3))
    normals = d / np.linalg.norm(d, axis=1, keepdims=True)
    image = render_point_cloud(0.5 * normals, normals, ViewConfig(size=(64, 64)))
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert (image[32, 32] < 255).any() and (image[0, 0] == 255).all()
    # A sphere of radius 0.5 spans 1 * 64 / (2 sqrt 3) = 18.5 pixels, plus a pixel of splat on each side.
    covered = np.flatnonzero((image < 255).any(axis=2).any(axis=0))
    assert 19 <= covered.max() - covered.min() + 1 <= 22


def test_image_grid_places_images_row_by_row():
    images = [np.full((2, 3, 3), 10 * (i + 1), dtype=np.uint8) for i in range(5)]
    images[4] = np.full((1, 2, 3), 50, dtype=np.uint8)  # smaller: top-left of its cell
    grid = image_grid(images, columns=2, gap=1)
    # 3 rows of 2-pixel cells with 2 gaps, 2 columns of 3-pixel cells with 1 gap.
    assert grid.shape == (3 * 2 + 2, 2 * 3 + 1, 3) and grid.dtype == np.uint8
    for i in range(4):
        top, left = (i // 2) * 3, (i % 2) * 4
        assert (grid[top : top + 2, left : left + 3] == 10 * (i + 1)).all()
    assert (grid[2] == 255).all() and (grid[5] == 255).all()  # row gaps
    assert (grid[:, 3] == 255).all()  # column gap
    assert (grid[6, 0:2] == 50).all() and (grid[6, 2] == 255).all() and (grid[7, 0:3] == 255).all()
    assert (grid[6:, 4:] == 255).all()  # the empty last cell


def test_image_grid_with_fewer_images_than_columns_and_alpha():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    grid = image_grid([np.zeros((2, 2, 3), dtype=np.uint8), rgba], columns=5, gap=0)
    assert grid.shape == (2, 4, 4)
    assert (grid[:, :2, 3] == 255).all() and (grid[:, 2:, 3] == 0).all()
    with pytest.raises(ValueError, match="columns"):
        image_grid([rgba], columns=0)
    with pytest.raises(ValueError, match="at least one"):
        image_grid([], columns=2)


def test_write_gif_frames_read_back_with_pillow(tmp_path):
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (40, 80, 120)]
    frames = []
    for colour in colours:
        frame = np.full((6, 8, 3), colour, dtype=np.uint8)
        frame[0, 0] = 255  # a white corner on every frame
        frames.append(frame)
    path = write_gif(frames, tmp_path / "out" / "spin.gif", seconds_per_frame=0.05)
    assert path == tmp_path / "out" / "spin.gif"
    assert os.listdir(tmp_path / "out") == ["spin.gif"]
    with Image.open(path) as picture:
        assert picture.format == "GIF" and picture.n_frames == 4 and picture.size == (8, 6)
        for i, frame in enumerate(frames):
            picture.seek(i)
            assert picture.info["duration"] == 50
            np.testing.assert_array_equal(np.asarray(picture.convert("RGB")), frame)


def test_write_gif_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_gif([], tmp_path / "a.gif")
    with pytest.raises(ValueError, match=r"frames\[1\] has shape"):
        write_gif([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)], tmp_path / "a.gif")
    with pytest.raises(ValueError, match="RGB"):
        write_gif([np.zeros((4, 4, 4), np.uint8)], tmp_path / "a.gif")
    assert os.listdir(tmp_path) == []
