import math

import numpy as np
import pytest
import torch
import trimesh

from inrcore.fields.build import network_for
from inrcore.fields.settings import NetworkConfig
from inrcore.geometry.grids import block_points, grid_blocks
from inrcore.geometry.marching import marching_cubes_blocks
from inrcore.geometry.settings import GridConfig
from inrcore.queries.mise import (
    EvaluatedPoints,
    _BlockFiller,
    dilate_cells,
    lattice_indices,
    lattice_keys,
    mise_field_mesh,
    mise_mesh,
)
from inrcore.queries.rangemesh import dense_mesh
from inrcore.queries.settings import MiseConfig
from tests.inrcore.analytic_fields import icosphere


def sphere(radius=0.5, centre=(0.0, 0.0, 0.0)):
    return lambda p: (p - torch.tensor(centre)).norm(dim=-1) - radius


def torus(major=0.5, minor=0.2):
    return lambda p: torch.stack([p[:, :2].norm(dim=-1) - major, p[:, 2]], dim=-1).norm(dim=-1) - minor


def union(*fields):
    return lambda p: torch.stack([f(p) for f in fields]).min(dim=0).values


def dense_reference(evaluate, cells: int, bound: float = 1.0, level: float = 0.0) -> trimesh.Trimesh:
    """Marching cubes over every point of the lattice of `cells` cells per axis (cells + 1 points)."""
    grid = GridConfig(resolution=cells + 1, bound=bound)

    def read_block(block):
        values = evaluate(torch.from_numpy(block_points(grid, block)))
        return values.numpy().reshape(tuple(s.stop - s.start for s in block))

    return marching_cubes_blocks(read_block, (cells + 1,) * 3, 64, 2.0 * bound / cells, (-bound,) * 3, level)


def same_mesh(a: trimesh.Trimesh, b: trimesh.Trimesh, atol: float = 1e-6) -> bool:
    return (len(a.faces) == len(b.faces) > 0 and len(a.vertices) == len(b.vertices)
            and np.allclose(np.sort(a.vertices, axis=0), np.sort(b.vertices, axis=0), atol=atol))


def components(mesh: trimesh.Trimesh) -> list:
    return sorted(mesh.split(only_watertight=False), key=lambda part: -len(part.faces))


def test_plane_by_hand():
    # f = x - 0.3, 8 cells of 0.25 per axis: the plane lies in the cells of x index 5 (x in [0.25, 0.5]);
    # those 64 and their neighbours (x index 4, 5, 6: 192 cells) are split. Their children's corners are
    # x points 8..14 of 17, every y and z: 7 * 17 * 17 = 2023, of which 4 * 9 * 9 = 324 were coarse points.
    mesh, stats = mise_mesh(lambda p: p[:, 0] - 0.3, start=8, levels=1)
    assert stats["levels"] == [{"resolution": 8, "evaluated": 729, "active_cells": 64, "refined_cells": 192},
                               {"resolution": 16, "evaluated": 2023 - 324, "active_cells": 256, "refined_cells": 0}]
    assert stats["evaluations"] == 729 + 1699 and stats["dense_evaluations"] == 17 ** 3
    assert stats["resolution"] == 16 and stats["lattice_points"] == 17
    # Padded: the solid x < 0.3 of the box, closed by caps on the box's faces (1.3 x 2 x 2).
    assert mesh.is_watertight and mesh.volume == pytest.approx(5.2, abs=1e-4)
    assert np.allclose(mesh.bounds, [[-1, -1, -1], [0.3, 1, 1]], atol=1e-5)
    # Not padded: the plane alone, two triangles in each of the 16 x 16 cells it crosses.
    open_mesh, _ = mise_mesh(lambda p: p[:, 0] - 0.3, start=8, levels=1, pad=False)
    assert len(open_mesh.faces) == 2 * 16 * 16 and np.allclose(open_mesh.vertices[:, 0], 0.3, atol=1e-6)


@pytest.mark.parametrize("name,field,start,levels", [
    ("sphere", sphere(0.5), 8, 2),
    ("off-centre sphere", sphere(0.37, (0.11, -0.05, 0.2)), 8, 2),
    ("torus", torus(0.5, 0.2), 8, 2),
    ("two spheres", union(sphere(0.3, (-0.4, 0.0, 0.0)), sphere(0.25, (0.45, 0.1, 0.0))), 16, 1),
])
def test_mise_equals_dense_marching_cubes_on_analytic_fields(name, field, start, levels):
    mesh, stats = mise_mesh(field, start=start, levels=levels)
    cells = start * 2 ** levels
    dense = dense_reference(field, cells)
    assert same_mesh(mesh, dense), name
    assert mesh.is_watertight
    assert stats["evaluations"] < stats["dense_evaluations"] == (cells + 1) ** 3
    assert stats["evaluations"] == sum(level["evaluated"] for level in stats["levels"])
    assert len(components(mesh)) == (2 if name == "two spheres" else 1)


def test_a_surface_in_every_cell_evaluates_each_lattice_point_once():
    # A gyroid of period 0.5: every coarse cell (0.25) or a neighbour of it changes sign, so every cell
    # is refined, and every one of the 33^3 points is evaluated exactly once: as many as dense.
    k = 4 * math.pi

    def gyroid(p):
        x, y, z = (k * p[:, i] + 0.1 for i in range(3))
        return torch.sin(x) * torch.cos(y) + torch.sin(y) * torch.cos(z) + torch.sin(z) * torch.cos(x)

    seen = []

    def counting(points):
        seen.append(points.clone())
        return gyroid(points)

    mesh, stats = mise_mesh(counting, start=8, levels=2, pad=False)
    points = torch.cat(seen)
    assert stats["evaluations"] == stats["dense_evaluations"] == len(points) == 33 ** 3
    assert len(torch.unique(points, dim=0)) == len(points)
    assert same_mesh(mesh, dense_reference(gyroid, 32))


def test_a_part_smaller_than_the_starting_cell_is_missed():
    # A tiny sphere (radius 0.06) at the centre of the coarse cell [0.75, 1]^3 (cells of 0.25 from
    # start 8): every coarse corner is outside it, and neither that cell nor any neighbour is active
    # (the big sphere stays inside [-0.5, 0.5]^3), so it is never refined. Dense marching cubes at the
    # final 32 cells (points 0.0625 apart) sees it. MISE gives the big sphere alone, from the very
    # points it evaluates for the big sphere alone.
    big, tiny = sphere(0.5), sphere(0.06, (0.875, 0.875, 0.875))
    mesh, stats = mise_mesh(union(big, tiny), start=8, levels=2)
    alone, alone_stats = mise_mesh(big, start=8, levels=2)
    dense_parts = components(dense_reference(union(big, tiny), 32))
    assert len(dense_parts) == 2 and np.allclose(dense_parts[1].centroid, 0.875, atol=1e-3)
    assert len(components(mesh)) == 1 and same_mesh(mesh, alone) and same_mesh(mesh, dense_parts[0])
    assert stats["evaluations"] == alone_stats["evaluations"]
    # The same tiny sphere next to an active coarse cell is found: the neighbours of active cells are refined.
    near = sphere(0.06, (0.625, 0.625, 0.625))  # cell [0.5, 0.75]^3, beside [0.25, 0.5]^3 that the big sphere crosses
    found, _ = mise_mesh(union(big, near), start=8, levels=2)
    assert len(components(found)) == 2 and same_mesh(found, dense_reference(union(big, near), 32))


def test_occupancy_style_field_at_a_threshold():
    # An occupancy p = sigmoid(8 (0.5 - |x|)) given as -logit(p) = 8 (|x| - 0.5), meshed where p = 0.2:
    # level = -logit(0.2) = log 4, the sphere |x| = 0.5 + log(4) / 8. Inside (p > 0.2) is value < level.
    def minus_logits(p):
        return -torch.logit(torch.sigmoid(8.0 * (0.5 - p.norm(dim=-1))))

    level = -math.log(0.2 / 0.8)
    mesh, stats = mise_mesh(minus_logits, start=8, levels=2, level=level)
    assert same_mesh(mesh, dense_reference(minus_logits, 32, level=level), atol=1e-5)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.allclose(radii, 0.5 + math.log(4.0) / 8.0, atol=2e-3)
    assert mesh.is_watertight and mesh.volume > 0  # normals outward: towards decreasing occupancy
    assert stats["evaluations"] < stats["dense_evaluations"]


def test_network_fields_mesh_like_dense_mesh():
    # mise_field_mesh's lattice is dense_mesh's at start * 2^levels + 1 points per axis.
    for spec, params in (icosphere(0.45, (0.05, 0.0, -0.1)),
                         network_for(NetworkConfig(kind="igr", radius=0.5, width=32, layers=3),
                                     torch.Generator().manual_seed(0))):
        mesh, stats = mise_field_mesh(spec, params, start=8, levels=2)
        dense, dense_stats = dense_mesh(spec, params, 33)
        assert same_mesh(mesh, dense, atol=1e-5)
        assert stats["method"] == "mise" and stats["box_evaluations"] == 0
        assert stats["point_evaluations"] == stats["evaluations"] < dense_stats["evaluations"] == 33 ** 3
        assert stats["vertices"] == len(mesh.vertices) and stats["faces"] == len(mesh.faces)


def test_points_reach_evaluate_in_batches_on_the_device_as_float32():
    shapes = []

    def field(points):
        shapes.append((tuple(points.shape), points.dtype, points.device.type))
        return points.norm(dim=-1) - 0.5

    levels_done = []
    mise_mesh(field, start=4, levels=2, batch=100, on_level=lambda done, total: levels_done.append((done, total)))
    assert all(n <= 100 and width == 3 and dtype == torch.float32 and device == "cpu"
               for (n, width), dtype, device in shapes)
    assert levels_done == [(1, 3), (2, 3), (3, 3)]


def test_dilation_keeps_the_grid():
    cells = dilate_cells(np.array([[0, 0, 0], [3, 3, 3]]), 4)
    assert len(cells) == 8 + 8 and cells.tolist() == sorted(cells.tolist())
    assert len(dilate_cells(np.array([[1, 1, 1]]), 4)) == 27


def test_bad_arguments_and_fields_are_refused():
    with pytest.raises(ValueError, match="start must be at least 1"):
        mise_mesh(sphere(), start=0)
    with pytest.raises(ValueError, match="bound and batch must be positive"):
        mise_mesh(sphere(), bound=0.0)
    with pytest.raises(ValueError, match=r"gave 2 values for \d+ points"):
        mise_mesh(lambda p: torch.zeros(2), start=2, levels=1)
    assert MiseConfig(start=32, levels=3).resolution == 256


@pytest.mark.parametrize("start,levels", [(4, 3), (2, 4)])
def test_blocks_read_the_same_filled_lattice_as_one_global_fill(start, levels):
    # Marching cubes reads the lattice block by block; each block's fill (coarse to fine: upsample,
    # then write the evaluated points) must equal the fill of the whole lattice at once, also on the
    # faces blocks share, where the coarse cells being interpolated reach into the next block
    # (blocks of 8 points: coarse cells of 8 and of 16 fine cells).
    n = start * 2 ** levels + 1
    evaluated = EvaluatedPoints()
    field = union(torus(0.5, 0.2), sphere(0.25, (0.05, 0.0, 0.0)))

    def recording(points):
        values = field(points)
        keys = lattice_keys(np.round((points.numpy() + 1.0) * (n - 1) / 2.0).astype(np.int64), n)
        order = np.argsort(keys)
        evaluated.add(keys[order], values.numpy()[order])
        return values

    mise_mesh(recording, start=start, levels=levels)
    indices = lattice_indices(evaluated.keys, n)
    grid = np.zeros((start + 1,) * 3, dtype=np.float32)
    for depth in range(levels + 1):
        stride = 2 ** (levels - depth)
        if depth:
            for dim in range(3):  # trilinear upsampling by two, one axis at a time
                grid = np.moveaxis(grid, dim, 0)
                finer = np.empty((2 * len(grid) - 1,) + grid.shape[1:], dtype=np.float32)
                finer[0::2], finer[1::2] = grid, (grid[:-1] + grid[1:]) / 2
                grid = np.moveaxis(finer, 0, dim)
        on = (indices % stride == 0).all(axis=1)
        grid[tuple((indices[on] // stride).T)] = evaluated.values[on]
    filler = _BlockFiller(grid[::2 ** levels, ::2 ** levels, ::2 ** levels].copy(), evaluated, n, levels, 8, 0.0, 1)
    padded = np.pad(grid, 1, constant_values=filler.outside)
    shortcuts = 0
    for block in grid_blocks(padded.shape, 8):
        grown = tuple(slice(s.start, min(s.stop + 1, padded.shape[0])) for s in block)
        got, want = filler(grown), padded[grown]
        if not np.array_equal(got, want):  # only a block on one side throughout may be given one value
            shortcuts += 1
            assert np.array_equal(got < 0, want < 0) and len(np.unique(got[got != filler.outside])) == 1, grown
    assert shortcuts < len(list(grid_blocks(padded.shape, 8))) / 2
