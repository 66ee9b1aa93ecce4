"""DeepSDF and occupancy samples of one shape: counts by hand, signs, spreads, refusals."""

import numpy as np
import pytest
import trimesh

from inrcore.errors import ShapeError
from inrcore.shapespace.samples import check_samples, load_normalised_mesh, sample_shape_space, split_counts
from inrcore.shapespace.settings import DeepSdfSamplingConfig


def test_split_counts_by_hand():
    assert split_counts(50_000, 0.94, 2) == ([23_500, 23_500], 3_000)
    assert split_counts(11, 0.94, 2) == ([5, 5], 1)  # round(10.34) = 10 near points
    assert split_counts(10, 0.5, 3) == ([2, 2, 1], 5)


@pytest.fixture(scope="module")
def sphere_samples():
    mesh = trimesh.creation.icosphere(4, radius=0.5)
    config = DeepSdfSamplingConfig(n_samples=20_000, n_surface=3_000, n_occupancy=20_000)
    return mesh, config, sample_shape_space(mesh, config)


def test_signs_and_distances_are_the_spheres(sphere_samples):
    _, _, samples = sphere_samples
    radius = np.linalg.norm(samples.points, axis=1)
    assert np.abs(samples.sdf - (radius - 0.5)).max() < 2e-3  # the icosphere's faceting
    inside = np.linalg.norm(samples.occupancy_points, axis=1) < 0.5
    assert (samples.inside == inside).mean() > 0.999
    assert np.abs(np.linalg.norm(samples.surface, axis=1) - 0.5).max() < 2e-3
    assert np.abs(np.einsum("ij,ij->i", samples.normals, samples.surface / 0.5)).min() > 0.99


def test_near_points_spread_at_the_two_scales(sphere_samples):
    _, config, samples = sphere_samples
    near = samples.points[:18_800]  # 0.94 of 20 000, half at each variance
    offsets = np.abs(samples.sdf[:18_800])
    first, second = offsets[:9_400], offsets[9_400:]
    # |N(0, v I)| projected on the normal is half-normal of standard deviation sqrt(v): mean sqrt(2 v / pi)
    assert first.mean() == pytest.approx(np.sqrt(2 * 0.005 / np.pi), rel=0.08)
    assert second.mean() == pytest.approx(np.sqrt(2 * 0.0005 / np.pi), rel=0.08)
    assert np.abs(samples.points[18_800:]).max() <= 1.0 and len(near) == 18_800
    assert np.abs(samples.occupancy_points).max() <= config.extent + config.padding


def test_seeded(sphere_samples):
    mesh, config, samples = sphere_samples
    again = sample_shape_space(mesh, config)
    assert np.array_equal(again.points, samples.points) and np.array_equal(again.inside, samples.inside)


def test_an_open_sheet_is_refused_by_name(tmp_path):
    sheet = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], [[0, 1, 2], [1, 3, 2]])
    sheet.export(tmp_path / "sheet.obj")
    mesh, _ = load_normalised_mesh(tmp_path / "sheet.obj", 0.9)
    samples = sample_shape_space(mesh, DeepSdfSamplingConfig(n_samples=2000, n_surface=100, n_occupancy=100))
    with pytest.raises(ShapeError, match="sheet.obj: no sample point lies inside the shape"):
        check_samples(samples, tmp_path / "sheet.obj")
