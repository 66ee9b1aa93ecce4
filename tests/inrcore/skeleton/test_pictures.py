"""skeleton.png: the skeleton's colours at hand-picked pixels, seen through the surface.

With size 256 and bound 1 one world unit is 256 / (2 sqrt(3)) = 73.9 pixels and the origin is
at pixel (128, 128) (`inrcore.geometry.render`); a sphere of radius 0.8 covers 59 pixels
around it. Seen head-on the sphere's front is fully lit: its colour is 255 x COLOR, and
through it at 30% a skeleton colour c shows as 0.3 x 255 x COLOR + 0.7 x c.
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from inrcore.geometry.cameras import camera_axes
from inrcore.geometry.render import render_mesh
from inrcore.geometry.settings import ViewConfig
from inrcore.skeleton.pictures import (
    CLOUD_OPACITY,
    EDGE_COLOR,
    POINT_COLOR,
    SURFACE_OPACITY,
    TRIANGLE_COLOR,
    render_skeleton,
)


COLOR = (0.75, 0.8, 0.9)
VIEW = ViewConfig(size=(256, 256), color=COLOR)
POINTS = np.array([[0.0, 0.0, 0.0], [0.3, 0.0, 0.0]])
RADII = np.array([0.8, 0.5])
EDGES = np.array([[0, 1]])
NO_FACES = np.zeros((0, 3), dtype=np.int64)
PIXELS_PER_UNIT = 256 / (2 * np.sqrt(3.0))


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=4, radius=0.8)


def _through_front(color) -> np.ndarray:
    """A flat skeleton colour seen through the head-on, fully lit front of the surface."""
    return SURFACE_OPACITY * 255 * np.asarray(COLOR) + (1 - SURFACE_OPACITY) * 255 * np.asarray(color)


def _pixel_of(point) -> tuple[int, int]:
    _, right, up = camera_axes(VIEW.azimuth_deg, VIEW.elevation_deg)
    return int(np.floor(128 - np.dot(point, up) * PIXELS_PER_UNIT)), int(np.floor(np.dot(point, right) * PIXELS_PER_UNIT + 128))


def test_skeleton_seen_through_a_sphere(sphere):
    image = render_skeleton(sphere, None, POINTS, RADII, EDGES, NO_FACES, VIEW)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    # the centre point, then the middle of the edge, each behind the sphere's front
    assert image[128, 128] == pytest.approx(_through_front(POINT_COLOR), abs=3)
    assert image[_pixel_of([0.15, 0.0, 0.0])] == pytest.approx(_through_front(EDGE_COLOR), abs=3)
    # 35 pixels below the centre: only the translucent surface, on white
    surface = image[163, 128].astype(float)
    assert (surface < 250).any() and (surface > (1 - SURFACE_OPACITY) * 255).all()
    assert surface[2] > surface[0]  # the surface's blue tint, not the skeleton's red
    assert (image[0, 0] == 255).all() and (image[128, 128 + 62] == 255).all()  # outside the silhouette


def test_surface_alone_is_render_mesh_at_thirty_percent(sphere):
    image = render_skeleton(sphere, None, np.zeros((0, 3)), np.zeros(0), np.zeros((0, 2)), NO_FACES, VIEW)
    alone = render_mesh(sphere, VIEW).astype(float)
    covered = (alone != 255).any(axis=2)
    expected = np.where(covered[..., None], np.rint(SURFACE_OPACITY * alone + (1 - SURFACE_OPACITY) * 255), 255)
    np.testing.assert_array_equal(image, expected.astype(np.uint8))


def test_without_surface_the_skeleton_has_its_own_colours():
    image = render_skeleton(None, None, POINTS, RADII, EDGES, NO_FACES, VIEW)
    assert image[128, 128] == pytest.approx(255 * np.asarray(POINT_COLOR), abs=1)
    assert image[_pixel_of([0.15, 0.0, 0.0])] == pytest.approx(255 * np.asarray(EDGE_COLOR), abs=1)
    assert (image[163, 128] == 255).all()


def test_triangles_are_shaded_orange(sphere):
    # a triangle in the plane facing the camera, around the origin
    towards, right, up = camera_axes(VIEW.azimuth_deg, VIEW.elevation_deg)
    corners = np.array([-0.4 * right - 0.3 * up, 0.4 * right - 0.3 * up, 0.4 * up])
    image = render_skeleton(sphere, None, corners, np.full(3, 0.1), np.zeros((0, 2)), np.array([[0, 1, 2]]), VIEW)
    assert image[128, 128] == pytest.approx(_through_front(TRIANGLE_COLOR), abs=3)  # lit head-on


def test_point_cloud_input_shows_as_faint_dots(sphere):
    cloud = trimesh.sample.sample_surface_even(sphere, 20000, seed=0)[0]
    image = render_skeleton(None, cloud, POINTS, RADII, EDGES, NO_FACES, VIEW)
    inside = image[100:160, 100:160].reshape(-1, 3)
    faint = (inside != 255).any(axis=1) & (inside > 255 * (1 - CLOUD_OPACITY) - 1).all(axis=1)
    assert faint.mean() > 0.5  # dots nearly everywhere in the silhouette, and only faint
    assert image[128, 128, 0] > 100 and image[128, 128, 1] < 100  # the centre point still shows
    assert (image[0, 0] == 255).all()
