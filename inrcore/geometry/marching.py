"""Surface extraction from a sampled field, block by block, so grids larger than memory work."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import trimesh
from skimage.measure import marching_cubes

from inrcore.geometry.grids import Block, grid_blocks


def marching_cubes_blocks(
    read_block: Callable[[Block], np.ndarray],
    shape: tuple[int, int, int],
    chunk: int,
    spacing: float,
    origin: tuple[float, float, float],
    level: float = 0.0,
    on_block: Optional[Callable[[int, int], None]] = None,
) -> trimesh.Trimesh:
    """Marching cubes over a chunked grid, stitched into one mesh.

    Each block is read with one extra layer of samples on its upper faces so that
    neighbouring blocks share their boundary cells' edges; vertices on shared edges come out
    identical and are welded, giving the same mesh as one marching-cubes pass over the
    whole grid. Blocks whose values do not straddle `level` are skipped.

    Args:
        read_block: returns the field values [a, b, c] of a block of index slices.
        shape: the grid's shape (R0, R1, R2).
        chunk: the block edge length in samples.
        spacing: distance between grid points.
        origin: coordinates of grid point [0, 0, 0].
        level: the iso-value.
        on_block: called as (blocks done, blocks in all) after each block (progress).
    Returns:
        the mesh in world coordinates, faces oriented so that normals point towards
        increasing values (outward for a signed distance, negative inside).
    """
    vertices, faces, count = [], [], 0
    blocks = list(grid_blocks(shape, chunk))
    for done, block in enumerate(blocks, start=1):
        if on_block is not None and done > 1:
            on_block(done - 1, len(blocks))
        grown = tuple(slice(s.start, min(s.stop + 1, n)) for s, n in zip(block, shape))
        if any(s.stop - s.start < 2 for s in grown):
            continue
        values = np.asarray(read_block(grown), dtype=np.float32)
        finite = values[np.isfinite(values)]
        if finite.size == 0 or not (finite.min() < level < finite.max()):
            continue
        v, f, _, _ = marching_cubes(values, level=level, spacing=(spacing,) * 3, gradient_direction="descent")
        start = np.array([s.start for s in grown], dtype=np.float64) * spacing
        vertices.append(v.astype(np.float64) + start + np.asarray(origin, dtype=np.float64))
        faces.append(f + count)
        count += len(v)
    if on_block is not None:
        on_block(len(blocks), len(blocks))
    if not vertices:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)
    return weld_vertices(np.concatenate(vertices), np.concatenate(faces), tolerance=spacing * 1e-4)


def weld_vertices(vertices: np.ndarray, faces: np.ndarray, tolerance: float) -> trimesh.Trimesh:
    """Merge vertices closer than about `tolerance` (snapped to a lattice) and drop faces that collapse.

    Args:
        vertices [V, 3], faces [F, 3].
    """
    keys = np.round(vertices / tolerance).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    new_faces = inverse[faces]
    keep = (new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2]) & (new_faces[:, 0] != new_faces[:, 2])
    return trimesh.Trimesh(vertices=vertices[first], faces=new_faces[keep], process=False)
