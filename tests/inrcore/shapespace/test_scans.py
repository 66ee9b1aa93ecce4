"""Partial scans: depths, normals and samples against a plane and a sphere worked out by hand, the depth
noise's statistics, determinism, the error of a scan that sees nothing, and scan files (round trip, bad ones
refused, nothing unpickled)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import trimesh

from inrcore.errors import ConfigError, ShapeError
from inrcore.geometry.meshes import Normalisation
from inrcore.shapespace.scans import (
    DepthScan,
    denoise_radius,
    depth_scan,
    read_depth_scan,
    scan_cloud_picture,
    scan_samples,
    write_depth_scan,
)
from inrcore.shapespace.settings import ScanConfig


CONFIG = ScanConfig(resolution=64)
THICKNESS = 0.01  # the plane is the top face of a box this thick, at y = THICKNESS / 2
RADIUS = 0.5


@pytest.fixture(scope="module")
def plane() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(4.0, THICKNESS, 4.0))


@pytest.fixture(scope="module")
def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=RADIUS)


@pytest.fixture(scope="module")
def top_view(plane) -> DepthScan:
    """Straight down (elevation 90: y is up) onto the plane, from (0, 2.5, 0)."""
    return depth_scan(plane, CONFIG, azimuth_deg=0.0, elevation_deg=90.0)


@pytest.fixture(scope="module")
def sphere_scan(sphere) -> DepthScan:
    return depth_scan(sphere, CONFIG, seed=3)


def test_the_camera_looks_straight_down_through_square_pixels(top_view):
    np.testing.assert_allclose(top_view.origin, [0.0, 2.5, 0.0], atol=1e-12)
    assert top_view.directions.shape == (64, 64, 3)
    np.testing.assert_allclose(np.linalg.norm(top_view.directions, axis=-1), 1.0, atol=1e-12)
    # the corner pixel's centre lies (63/64)·tan(22.5°) off the axis in both image directions
    corner = top_view.directions[0, 0]
    offset = 63 / 64 * math.tan(math.radians(22.5))
    np.testing.assert_allclose(np.abs(corner[[0, 2]] / corner[1]), [offset, offset], rtol=1e-12)
    assert corner[1] < 0


def test_plane_depths_are_the_distance_over_the_cosine(top_view):
    assert top_view.hits.all()
    expected = (2.5 - THICKNESS / 2) / np.abs(top_view.directions[..., 1])
    np.testing.assert_allclose(top_view.depth, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(top_view.points()[:, 1], THICKNESS / 2, atol=1e-12)


def test_plane_normals_point_up_at_the_camera(top_view):
    assert np.isfinite(top_view.normals).all()
    np.testing.assert_allclose(top_view.normals.reshape(-1, 3), np.tile([0.0, 1.0, 0.0], (64 * 64, 1)), atol=1e-6)


def test_plane_sample_targets_are_the_true_distances(top_view):
    samples = scan_samples(top_view, CONFIG)
    n = 64 * 64
    counts = samples.counts()
    assert counts.pop("noise_estimate") < 1e-3  # perspective: depth along rays is not linear in the pixels
    assert counts == {"samples": 4 * n, "surface": n, "front": n, "behind": n, "free": n, "denoise_radius": 0}
    height = samples.points[:, 1].astype(np.float64) - THICKNESS / 2  # signed distance to the plane
    exact = samples.exact
    assert exact[: 3 * n].all() and not exact[3 * n:].any()
    np.testing.assert_array_equal(samples.sdf[:n], 0.0)
    np.testing.assert_allclose(samples.sdf[:n], height[:n], atol=1e-6)
    # offset·|n·d| is exact for a plane: in front above it, behind below it
    np.testing.assert_allclose(samples.sdf[n: 3 * n], height[n: 3 * n], atol=1e-6)
    assert (samples.sdf[n: 2 * n] > 0).all() and (samples.sdf[2 * n: 3 * n] < 0).all()
    # the front point of the centre ray (straight down, d = -y) is offset above the plane
    straight_down = np.abs(top_view.directions[..., 1]).max()
    np.testing.assert_allclose(samples.sdf[n:2 * n].max(), CONFIG.offset * straight_down, rtol=1e-6)


def test_plane_free_space_lies_between_the_cube_and_the_margin(top_view):
    samples = scan_samples(top_view, CONFIG)
    free = samples.points[~samples.exact].astype(np.float64)
    ray_length = samples.sdf[~samples.exact].astype(np.float64)
    assert (np.abs(free) <= 1.0 + 1e-6).all()  # drawn inside the normalised frame's cube
    assert (ray_length >= CONFIG.free_margin - 1e-6).all()
    # one free point per pixel in pixel order; the stored value is its distance along the ray to the
    # hit, so its height above the plane is that length times |d_y|
    cosines = np.abs(top_view.directions[..., 1]).ravel()
    np.testing.assert_allclose(free[:, 1] - THICKNESS / 2, ray_length * cosines, atol=1e-6)
    # the centre ray enters the cube at y = 1, so its free points spread over (0.055, 1)
    assert free[:, 1].max() > 0.9 and free[:, 1].min() < 0.2


def test_sphere_points_lie_on_the_sphere_and_fill_the_projected_disc(sphere_scan):
    points = sphere_scan.points()
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), RADIUS, atol=1e-3)
    # the sphere subtends asin(r / D); its image is a disc of radius tan of that on the unit image plane
    pixel = 2 * math.tan(math.radians(22.5)) / 64
    disc = math.pi * math.tan(math.asin(RADIUS / 2.5)) ** 2 / pixel ** 2  # 781.25 pixels
    assert len(points) == pytest.approx(disc, rel=0.03)
    # the visible cap (1 - r/D)/2 = 40 % of the sphere: every point faces the camera
    towards = sphere_scan.origin / np.linalg.norm(sphere_scan.origin)
    assert (points @ towards > RADIUS * RADIUS / 2.5 - 1e-3).all()


def test_sphere_normals_are_radial(sphere_scan):
    points = sphere_scan.points()
    normals = sphere_scan.normals[sphere_scan.hits]
    assert np.isfinite(normals).all()
    radial = points / np.linalg.norm(points, axis=1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(np.sum(normals * radial, axis=1), -1.0, 1.0)))
    assert angles.max() < 2.0  # silhouette pixels included
    assert np.median(angles) < 0.2


def test_sphere_sample_targets_match_the_distance_to_the_sphere(sphere_scan):
    samples = scan_samples(sphere_scan, CONFIG)
    counts = samples.counts()
    surface, near = counts["surface"], counts["front"] + counts["behind"]
    assert counts["front"] == surface == len(sphere_scan.points())
    true = np.linalg.norm(samples.points.astype(np.float64), axis=1) - RADIUS
    # first order in the offset: off by at most offset² / radius
    np.testing.assert_allclose(samples.sdf[surface: surface + near], true[surface: surface + near],
                               atol=CONFIG.offset ** 2 / RADIUS)
    free = ~samples.exact
    assert free.sum() == counts["free"] == surface
    assert (true[free] > CONFIG.free_margin * 0.2).all()  # all outside, not touching
    assert (samples.sdf[free] >= true[free] - 1e-3).all()  # without noise: an upper bound


def test_free_space_samples_per_ray(sphere_scan):
    three = ScanConfig(resolution=64, free_per_ray=3)
    none = ScanConfig(resolution=64, free_per_ray=0)
    hits = int(sphere_scan.hits.sum())
    assert scan_samples(sphere_scan, three).counts()["free"] == 3 * hits
    counts = scan_samples(sphere_scan, none).counts()
    # a clean scan: the coarse sphere's own curvature only, under the offset / 4 that would start smoothing
    assert counts.pop("noise_estimate") < CONFIG.offset / 4
    assert counts == {"samples": 3 * hits, "surface": hits, "front": hits, "behind": hits, "free": 0,
                      "denoise_radius": 0}


def test_depth_noise_has_the_configured_spread(plane, top_view):
    noisy = depth_scan(plane, ScanConfig(resolution=64, noise=0.02), azimuth_deg=0.0, elevation_deg=90.0)
    residual = (noisy.depth - top_view.depth)[top_view.hits]
    assert len(residual) == 4096
    assert residual.std() == pytest.approx(0.02, rel=0.1)
    assert abs(residual.mean()) < 3 * 0.02 / math.sqrt(4096)
    # the points move along their rays, so their back-projections differ by the residual
    moved = np.linalg.norm(noisy.points() - top_view.points(), axis=1)
    np.testing.assert_allclose(moved, np.abs(residual), atol=1e-12)


def test_the_smoothing_window_is_the_smallest_that_brings_noise_under_a_quarter_offset():
    assert denoise_radius(0.004, offset=0.02, largest=6) == 0  # under 0.005 already
    assert denoise_radius(0.01, offset=0.02, largest=6) == 1  # 2 pixels a side needed: 3
    assert denoise_radius(0.05, offset=0.02, largest=6) == 5  # 10 a side: 11
    assert denoise_radius(0.2, offset=0.02, largest=6) == 6  # 40 a side, capped


def test_a_noisy_scan_is_smoothed_before_its_samples(plane, top_view):
    config = ScanConfig(resolution=64, noise=0.05)
    noisy = depth_scan(plane, config, azimuth_deg=0.0, elevation_deg=90.0)
    samples = scan_samples(noisy, config)
    counts = samples.counts()
    assert counts["noise_estimate"] == pytest.approx(0.05, rel=0.1)
    assert counts["denoise_radius"] == 5
    surface = samples.points[:counts["surface"], 1] - THICKNESS / 2  # the plane's height error
    raw = noisy.points()[:, 1] - THICKNESS / 2
    assert np.abs(surface).std() < raw.std() / 4
    # the normals come from the smoothed depth: nearly straight up, where the raw ones scatter widely
    front = samples.points[counts["surface"]:counts["surface"] + counts["front"]]
    behind = samples.points[counts["surface"] + counts["front"]:counts["surface"] + 2 * counts["front"]]
    assert counts["front"] > 0.95 * 64 * 64
    directions = (behind - front) / np.linalg.norm(behind - front, axis=1, keepdims=True)
    targets = samples.sdf[counts["surface"]:counts["surface"] + counts["front"]]
    # targets offset·|n·d|: with n up they are the ray's vertical share of the offset
    np.testing.assert_allclose(np.median(targets / (config.offset * np.abs(directions[:, 1]))), 1.0, atol=0.01)
    # the free points all lie above the plane (the raw depth, 0.05 deep noise, would put some below it)
    assert (samples.points[~samples.exact, 1] > THICKNESS / 2).all()
    # off: the raw depth
    raw_samples = scan_samples(noisy, ScanConfig(resolution=64, noise=0.05, denoise=False))
    assert raw_samples.counts()["denoise_radius"] == 0
    np.testing.assert_allclose(raw_samples.points[:raw_samples.n_surface], noisy.points().astype(np.float32))


def test_a_clean_scan_is_used_as_measured(sphere_scan):
    on, off = scan_samples(sphere_scan, CONFIG), scan_samples(sphere_scan, ScanConfig(resolution=64, denoise=False))
    np.testing.assert_array_equal(on.points, off.points)
    np.testing.assert_array_equal(on.sdf, off.sdf)


def test_the_seed_draws_the_view_and_the_noise(sphere):
    noisy = ScanConfig(resolution=32, noise=0.01, elevation_deg=(10.0, 45.0))
    first, again = depth_scan(sphere, noisy, seed=7), depth_scan(sphere, noisy, seed=7)
    assert (first.azimuth_deg, first.elevation_deg) == (again.azimuth_deg, again.elevation_deg)
    np.testing.assert_array_equal(first.depth, again.depth)
    np.testing.assert_array_equal(scan_samples(first, noisy).points, scan_samples(again, noisy).points)
    other = depth_scan(sphere, noisy, seed=8)
    assert other.azimuth_deg != first.azimuth_deg
    # no seed: the config's; the noise leaves the view alone
    assert depth_scan(sphere, ScanConfig(resolution=32, seed=7)).azimuth_deg == first.azimuth_deg
    clean = depth_scan(sphere, ScanConfig(resolution=32, elevation_deg=(10.0, 45.0)), seed=7)
    np.testing.assert_array_equal(clean.hits, first.hits)
    views = [depth_scan(sphere, noisy, seed=s) for s in range(8)]
    assert all(0.0 <= v.azimuth_deg < 360.0 and 10.0 <= v.elevation_deg <= 45.0 for v in views)


def test_a_scan_that_hits_nothing_names_the_view(sphere):
    far = sphere.copy()
    far.apply_translation([100.0, 0.0, 0.0])
    view = r"far\.ply: the scan from azimuth 30\.0°, elevation 20\.0° .*hit nothing"
    with pytest.raises(ShapeError, match=view):
        depth_scan(far, CONFIG, azimuth_deg=30.0, elevation_deg=20.0, name="far.ply")


def test_an_elevation_range_needs_two_values(sphere):
    with pytest.raises(ConfigError, match="elevation_deg"):
        depth_scan(sphere, ScanConfig(resolution=8, elevation_deg=(10.0,)))


def test_the_picture_is_bright_near_and_black_where_nothing_was_hit(sphere_scan):
    picture = scan_cloud_picture(sphere_scan)
    assert picture.shape == (64, 64, 3) and picture.dtype == np.uint8
    assert (picture[~sphere_scan.hits] == 0).all()
    grey = picture[..., 0]
    nearest = np.unravel_index(np.argmin(np.where(sphere_scan.hits, sphere_scan.depth, np.inf)), grey.shape)
    farthest = np.unravel_index(np.argmax(np.where(sphere_scan.hits, sphere_scan.depth, -np.inf)), grey.shape)
    assert grey[nearest] == 255 and grey[farthest] == 64
    assert (grey[sphere_scan.hits] >= 64).all()


def test_a_scan_file_round_trips_through_the_input_frame(sphere_scan, tmp_path):
    normalisation = Normalisation((1.0, -2.0, 0.5), 0.25)  # input = normalised / 0.25 + center
    write_depth_scan(tmp_path / "s.npz", sphere_scan, normalisation)
    with np.load(tmp_path / "s.npz") as data:
        assert np.allclose(data["origin"], sphere_scan.origin * 4.0 + [1.0, -2.0, 0.5])
        hits = np.isfinite(data["depth"])
        assert np.allclose(data["depth"][hits], sphere_scan.depth[hits] * 4.0)
    back, found = read_depth_scan(tmp_path / "s.npz")
    assert found == normalisation
    assert np.array_equal(back.hits, sphere_scan.hits)
    assert np.allclose(back.points(), sphere_scan.points(), atol=1e-12)
    assert np.allclose(np.nan_to_num(back.normals), np.nan_to_num(sphere_scan.normals), atol=1e-9)


def test_a_scan_file_without_normalisation_is_in_the_normalised_frame(sphere_scan, tmp_path):
    write_depth_scan(tmp_path / "s.npz", sphere_scan)
    back, found = read_depth_scan(tmp_path / "s.npz")
    assert found is None and np.allclose(back.points(), sphere_scan.points())


@pytest.mark.parametrize("arrays, message", [
    ({"origin": np.zeros(3), "depth": np.ones((4, 4))}, "lacks directions"),
    ({"origin": np.zeros(2), "directions": np.ones((4, 4, 3)), "depth": np.ones((4, 4))}, "expected origin [3]"),
    ({"origin": np.zeros(3), "directions": np.ones((4, 4, 3)), "depth": np.full((4, 4), np.inf)}, "holds no hit"),
    ({"origin": np.zeros(3), "directions": np.zeros((4, 4, 3)), "depth": np.ones((4, 4))}, "non-zero"),
    ({"origin": np.zeros(3), "directions": np.ones((4, 4, 3)), "depth": np.ones((4, 4)), "scale": 2.0}, "both"),
])
def test_bad_scan_files_are_refused_naming_them(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ShapeError, match=re.escape(message)) as caught:
        read_depth_scan(path)
    assert str(path) in str(caught.value)


def test_a_pickled_scan_file_is_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, origin=np.zeros(3), directions=np.array([{"a": 1}], dtype=object), depth=np.ones((1, 1)))
    with pytest.raises(ShapeError, match="not a readable depth-scan"):
        read_depth_scan(path)
