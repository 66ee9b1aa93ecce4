"""Meshing a neural implicit by range analysis (Sharp & Jacobson 2022, hierarchical meshing).

The lattice is the dense grid's: `resolution` points per axis spanning [-bound, bound]
(`inrcore.fields.evaluation`), so resolution - 1 cells per axis, grouped into leaf blocks of `leaf`
cells per axis. Boxes of leaf blocks are bounded level by level, coarse to fine, all boxes of a
level in batches on the device (`inrcore.queries.bounds.range_bound`): a box whose field is
certified positive or negative holds no surface and is dropped; an unknown box is split into its
eight children, down to single leaf blocks. Only the leaf blocks still unknown at the end are
sampled (each lattice point once) and go through marching cubes.

Every cell where the sampled values change sign lies in a surviving leaf block, because the
bound of a box covers its closed extent, so the mesh equals dense marching cubes over the
whole lattice (up to the rounding of evaluating the same points in other batches). A
certified leaf block is filled with +-1 of its sign for marching cubes; its cells then hold no
crossing, and the exact values of a surviving neighbour on the shared face overwrite the fill.

Plan separated from execution: `plan_range_mesh` does the subdivision and returns a `RangeMeshPlan`
(the certified sign of every leaf block, the surviving leaves, counts); `evaluate_leaf_values`
samples any subset of them (so a scheduler can spread them over workers); `mesh_from_leaf_values`
stitches one mesh. `range_mesh` does all three here.

Range analysis pays only where bounds certify boxes much larger than a cell. `estimate_range_mesh`
bounds a few hundred boxes per level first and predicts the cost of the plan; `range_mesh` falls
back to `dense_mesh` (the same mesh) when the plan would cost more than sampling every point.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import trimesh

from inrcore.fields.evaluation import evaluate_points
from inrcore.fields.networks import FieldSpec, Params
from inrcore.geometry.marching import marching_cubes_blocks
from inrcore.queries.bounds import UNKNOWN, bound_of, sign_of_bounds
from inrcore.queries.settings import RangeMeshConfig

Progress = Callable[[str, int, int], None]  # progress of a long step: (its name, done, total)


@dataclass(frozen=True)
class RangeMeshPlan:
    """The outcome of the subdivision.

    resolution: lattice points per axis; bound: the lattice spans [-bound, bound]^3.
    leaf: cells per leaf block edge. blocks: leaf blocks per axis.
    signs: int8 [blocks, blocks, blocks], +1 / -1 for a certified leaf block, 0 for a surviving one.
    leaves: int64 [L, 3], the surviving leaf blocks' indices, in C order.
    box_evaluations: boxes bounded, per level (coarsest first).
    seconds: wall time of the subdivision.
    """

    resolution: int
    bound: float
    leaf: int
    blocks: int
    signs: np.ndarray
    leaves: np.ndarray
    box_evaluations: tuple[int, ...]
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def cells(self) -> int:
        return self.resolution - 1

    @property
    def spacing(self) -> float:
        return 2.0 * self.bound / self.cells


def _lattice_range(start: torch.Tensor, size: int, leaf: int, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lattice index ranges [first, last] (closed) of boxes of `size` leaf blocks starting at `start` [M, 3]."""
    first = start * leaf
    last = torch.clamp((start + size) * leaf, max=cells)
    return first, last


def _signs_of_boxes(spec: FieldSpec, params: Params, boxes: torch.Tensor, size: int, leaf: int, cells: int,
                    bound: float, mode: str, max_symbols: Optional[int], batch_boxes: int, margin: float,
                    dtype: torch.dtype) -> torch.Tensor:
    """Certified sign (POSITIVE / NEGATIVE / UNKNOWN) of boxes of `size` leaf blocks whose first blocks are
    `boxes` [M, 3]: LongTensor [M]."""
    spacing = 2.0 * bound / cells
    first, last = _lattice_range(boxes, size, leaf, cells)
    lower_corner = first.to(dtype) * spacing - bound
    upper_corner = last.to(dtype) * spacing - bound
    centre = (lower_corner + upper_corner) / 2
    half = (upper_corner - lower_corner) / 2
    box_signs = torch.empty(len(boxes), dtype=torch.long, device=boxes.device)
    for s in range(0, len(boxes), batch_boxes):
        c = centre[s:s + batch_boxes]
        axes = torch.diag_embed(half[s:s + batch_boxes])
        with torch.no_grad():
            lo, hi = bound_of(spec, params, c, axes, mode, max_symbols)
        box_signs[s:s + len(c)] = sign_of_bounds(lo[:, 0] - margin, hi[:, 0] + margin)
    return box_signs


def _levels(resolution: int, leaf: int, top_blocks: int) -> tuple[int, int, int, int]:
    """(cells, leaf blocks per axis, number of subdivisions, coarsest box size in leaf blocks);
    ValueError for a lattice or leaf too small."""
    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if leaf < 1:
        raise ValueError(f"leaf must be at least 1, got {leaf}")
    cells = resolution - 1
    blocks = math.ceil(cells / leaf)
    levels = max(0, math.ceil(math.log2(max(blocks / top_blocks, 1))))
    return cells, blocks, levels, 2 ** levels


def _on_device(params: Params, device: torch.device | str) -> tuple[torch.device, Params, torch.dtype]:
    """(the device, the params moved there, their dtype)."""
    device = torch.device(device)
    params = {k: v.to(device) for k, v in params.items()}
    return device, params, next(iter(params.values())).dtype if params else torch.float32


def plan_range_mesh(spec: FieldSpec, params: Params, resolution: int, bound: float = 1.0, leaf: int = 8,
                    mode: str = "affine", max_symbols: Optional[int] = 8, top_blocks: int = 4,
                    batch_boxes: int = 4096, margin: float = 0.0, device: torch.device | str = "cpu",
                    on_level: Optional[Callable[[int, int], None]] = None) -> RangeMeshPlan:
    """Subdivide the lattice's boxes level by level and keep the leaf blocks the bound cannot certify.

    Args:
        spec, params: the field.
        resolution: lattice points per axis (resolution - 1 cells).
        bound: the lattice spans [-bound, bound]^3.
        leaf: cells per leaf block edge.
        mode, max_symbols: the range analysis (`inrcore.queries.bounds.bound_of`).
        top_blocks: about this many boxes per axis at the coarsest level.
        batch_boxes: boxes bounded per batch.
        margin: a box is certified only when its bound clears 0 by more than this.
        device: where the bounds are computed.
        on_level: called as (levels bounded, levels at most) after each level (progress).
    Returns:
        the plan (see `RangeMeshPlan`).
    """
    start_time = time.perf_counter()
    cells, blocks, levels, size = _levels(resolution, leaf, top_blocks)
    device, params, dtype = _on_device(params, device)
    top = math.ceil(blocks / size)
    signs = np.zeros((blocks, blocks, blocks), dtype=np.int8)

    axis = torch.arange(top, device=device) * size
    boxes = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    counts = []
    while True:
        box_signs = _signs_of_boxes(spec, params, boxes, size, leaf, cells, bound, mode, max_symbols,
                                    batch_boxes, margin, dtype)
        counts.append(len(boxes))
        if on_level is not None:
            on_level(len(counts), levels)
        certified = box_signs != UNKNOWN
        blocks_first = boxes[certified].cpu().numpy()
        blocks_sign = box_signs[certified].cpu().numpy().astype(np.int8)
        for (i, j, k), value in zip(blocks_first, blocks_sign):
            signs[i:i + size, j:j + size, k:k + size] = value
        unknown = boxes[~certified]
        if size == 1 or len(unknown) == 0:
            break
        size //= 2
        offsets = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], device=device) * size
        children = (unknown[:, None, :] + offsets[None]).reshape(-1, 3)
        boxes = children[(children < blocks).all(dim=1)]
    leaves = unknown.cpu().numpy().astype(np.int64) if size == 1 else np.zeros((0, 3), dtype=np.int64)
    order = np.lexsort((leaves[:, 2], leaves[:, 1], leaves[:, 0])) if len(leaves) else np.zeros(0, dtype=np.int64)
    return RangeMeshPlan(resolution=resolution, bound=bound, leaf=leaf, blocks=blocks, signs=signs,
                         leaves=leaves[order], box_evaluations=tuple(counts),
                         seconds=time.perf_counter() - start_time,
                         stats={"mode": mode, "max_symbols": max_symbols, "margin": margin})


@dataclass(frozen=True)
class RangeMeshEstimate:
    """What `plan_range_mesh` would cost, predicted from bounds of a sample of boxes at every level.

    certified: per level (coarsest first), the share of sampled boxes certified (none below a level all certified).
    boxes: predicted boxes bounded per level (every level); leaves: predicted surviving leaf blocks;
    points: predicted lattice points sampled in them ((leaf + 1)^3 each, an upper bound).
    box_cost: one box bound's cost in point evaluations (measured on this device, or given).
    range_cost = box_cost * sum(boxes) + points and dense_cost = resolution^3, in point evaluations.
    sampled_boxes: boxes bounded to make the estimate; seconds: its wall time.
    """

    certified: tuple[float, ...]
    boxes: tuple[int, ...]
    leaves: int
    points: int
    box_cost: float
    range_cost: float
    dense_cost: float
    sampled_boxes: int
    seconds: float

    @property
    def worthwhile(self) -> bool:
        """Whether range analysis is predicted to cost less than sampling every lattice point."""
        return self.range_cost < self.dense_cost

    def to_dict(self) -> dict:
        return {"certified": list(self.certified), "boxes": list(self.boxes), "leaves": self.leaves,
                "points": self.points, "box_cost": self.box_cost, "range_cost": self.range_cost,
                "dense_cost": self.dense_cost, "sampled_boxes": self.sampled_boxes,
                "worthwhile": self.worthwhile, "seconds": self.seconds}


def estimate_range_mesh(spec: FieldSpec, params: Params, resolution: int, bound: float = 1.0, leaf: int = 8,
                        mode: str = "affine", max_symbols: Optional[int] = 8, top_blocks: int = 4,
                        samples: int = 256, seed: int = 0, box_cost: Optional[float] = None,
                        batch_boxes: int = 4096, device: torch.device | str = "cpu") -> RangeMeshEstimate:
    """Predict the work of `plan_range_mesh` + `evaluate_leaf_values` before doing it.

    At every level of the subdivision, `samples` boxes drawn at random (all of them when the level
    has fewer) are bounded; p_l is the share certified. A box certified at a coarse level is taken
    to stand for boxes its size or smaller there, so the share of the volume still unknown after
    level l is a_l = 1 - max(p_0 .. p_l); level l bounds (its box count) * a_(l-1) boxes, and
    (leaf blocks) * a_last leaves survive. On a field whose bounds certify no box of any size
    (e.g. an omega = 30 SIREN with few symbols) this predicts every leaf bounded and sampled, so
    the caller can mesh densely instead at the cost of a few hundred bounds.

    Args:
        samples: boxes sampled per level; seed: their draw.
        box_cost: a box bound's cost in point evaluations; None measures it here (the leaf level's
            sampled bounds against as many network evaluations of random points, timed on `device`).
        The rest as `plan_range_mesh`.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    start_time = time.perf_counter()
    cells, blocks, levels, size = _levels(resolution, leaf, top_blocks)
    device, params, dtype = _on_device(params, device)
    rng = np.random.default_rng(seed)
    certified, totals = [], []
    sampled = 0
    while True:
        per_axis = math.ceil(blocks / size)
        total = per_axis ** 3
        chosen = rng.choice(total, size=min(samples, total), replace=False)
        starts = np.stack(np.unravel_index(chosen, (per_axis,) * 3), axis=1) * size
        boxes = torch.as_tensor(starts, dtype=torch.long, device=device)
        tick = time.perf_counter()
        box_signs = _signs_of_boxes(spec, params, boxes, size, leaf, cells, bound, mode, max_symbols,
                                    batch_boxes, 0.0, dtype)
        certified.append(float((box_signs != UNKNOWN).float().mean()))  # (waits for the device)
        seconds_per_box = (time.perf_counter() - tick) / len(boxes)
        totals.append(total)
        sampled += len(boxes)
        if size == 1 or certified[-1] == 1.0:  # nothing left to subdivide below a fully certified level
            break
        size //= 2
    if box_cost is None:
        points = torch.rand(sampled, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float32) * 2 - 1
        tick = time.perf_counter()
        evaluate_points(spec, params, points.numpy() * bound, device)
        seconds_per_point = (time.perf_counter() - tick) / sampled
        box_cost = seconds_per_box / max(seconds_per_point, 1e-12)
    unknown, boxes_per_level = 1.0, []
    for share, total in zip(certified, totals):
        boxes_per_level.append(int(round(total * unknown)))
        unknown = min(unknown, 1.0 - share)
    boxes_per_level += [0] * (levels + 1 - len(boxes_per_level))
    leaves = int(round(blocks ** 3 * unknown))
    points = min(leaves * (leaf + 1) ** 3, resolution ** 3)
    return RangeMeshEstimate(certified=tuple(certified), boxes=tuple(boxes_per_level), leaves=leaves, points=points,
                             box_cost=float(box_cost), range_cost=float(box_cost * sum(boxes_per_level) + points),
                             dense_cost=float(resolution ** 3), sampled_boxes=sampled,
                             seconds=time.perf_counter() - start_time)


def leaf_lattice_points(plan: RangeMeshPlan, leaves: np.ndarray) -> np.ndarray:
    """Lattice indices of the closed leaf blocks `leaves` [L, 3]: int64 [L, n, n, n, 3], n = leaf + 1,
    clipped to the lattice (a block at the upper edge repeats its last layer)."""
    steps = np.arange(plan.leaf + 1)
    local = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1)  # [n, n, n, 3]
    points = leaves[:, None, None, None, :] * plan.leaf + local[None]
    return np.minimum(points, plan.cells)


def evaluate_leaf_values(spec: FieldSpec, params: Params, plan: RangeMeshPlan, leaves: np.ndarray,
                         device: torch.device | str = "cpu", batch_points: int = 65536) -> tuple[np.ndarray, int]:
    """Field values at the lattice points of leaf blocks, each distinct point evaluated once.

    Args:
        leaves: int64 [L, 3] leaf block indices (any subset of `plan.leaves`).
    Returns:
        values float32 [L, n, n, n] (n = leaf + 1) and the number of points evaluated.
    """
    n = plan.leaf + 1
    if len(leaves) == 0:
        return np.zeros((0, n, n, n), dtype=np.float32), 0
    indices = leaf_lattice_points(plan, np.asarray(leaves, dtype=np.int64)).reshape(-1, 3)
    stride = plan.resolution
    keys = torch.from_numpy((indices[:, 0] * stride + indices[:, 1]) * stride + indices[:, 2])
    unique, inverse = torch.unique(keys, return_inverse=True)
    unique = unique.numpy()
    lattice = np.stack([unique // (stride * stride), (unique // stride) % stride, unique % stride], axis=1)
    points = (lattice * plan.spacing - plan.bound).astype(np.float32)
    values = evaluate_points(spec, params, points, device, batch_points)
    return values[inverse.numpy()].reshape(len(leaves), n, n, n), len(unique)


def mesh_from_leaf_values(plan: RangeMeshPlan, values: np.ndarray, chunk: int = 64, level: float = 0.0,
                          on_block: Optional[Callable[[int, int], None]] = None) -> trimesh.Trimesh:
    """One mesh from the surviving leaves' values [L, n, n, n] (in the order of `plan.leaves`).

    Marching cubes runs block by block over the lattice (`inrcore.geometry.marching.marching_cubes_blocks`),
    each block assembled from the certified signs (+-1) with the surviving leaves' values on top.
    """
    leaves, leaf, n = plan.leaves, plan.leaf, plan.leaf + 1
    if len(leaves) != len(values):
        raise ValueError(f"{len(values)} value blocks for {len(leaves)} surviving leaves")
    first = leaves * leaf  # [L, 3] lattice index of each leaf's first point

    def read_block(block) -> np.ndarray:
        lo = np.array([s.start for s in block])
        hi = np.array([s.stop for s in block])  # exclusive
        ranges = [np.arange(a, b) for a, b in zip(lo, hi)]
        owner = [np.minimum(r // leaf, plan.blocks - 1) for r in ranges]
        out = plan.signs[np.ix_(*owner)].astype(np.float32)
        touching = np.all((first <= hi - 1) & (first + leaf >= lo), axis=1)
        for index in np.flatnonzero(touching):
            a = np.maximum(first[index], lo)
            b = np.minimum(first[index] + n, hi)
            src = tuple(slice(int(x - f), int(y - f)) for x, y, f in zip(a, b, first[index]))
            dst = tuple(slice(int(x - l), int(y - l)) for x, y, l in zip(a, b, lo))
            out[dst] = values[index][src]
        return out

    shape = (plan.resolution,) * 3
    return marching_cubes_blocks(read_block, shape, chunk, plan.spacing, (-plan.bound,) * 3, level, on_block)


def range_mesh(spec: FieldSpec, params: Params, settings: RangeMeshConfig = RangeMeshConfig(),
               device: torch.device | str = "cpu", chunk: int = 64,
               on_progress: Optional[Progress] = None) -> tuple[trimesh.Trimesh, dict]:
    """Plan, sample the surviving leaves and mesh, on one machine (`settings.tasks` is not used:
    the collection flow's task spreads the leaves over Dask tasks).

    With `settings.fallback`, `estimate_range_mesh` first bounds `settings.samples` boxes per
    level; when range analysis is predicted to cost more than sampling every lattice point, the
    field is meshed by `dense_mesh` instead (the same mesh: both run marching cubes on the same
    lattice). `chunk`: lattice points per block edge of marching cubes. `on_progress` is called as
    (step, done, total): "bounding" per level, "sampling" once, "meshing" per block.

    Returns:
        the mesh (world coordinates, outward normals) and stats: "method" ("range", or "dense"
        after a fallback, with "fallback": True), "box_evaluations" (every box bounded, the
        estimate's included; "box_evaluations_per_level" of the plan), "point_evaluations",
        "evaluations" (their sum: one bound of a box counted as one network evaluation),
        "leaves", "leaf_blocks" (all of them), "seconds" (and "seconds_plan", "seconds_points",
        "seconds_mesh"; the estimate's own in "estimate"), "vertices", "faces", and "estimate" when one was made.
    """
    start = time.perf_counter()
    resolution, bound, leaf, mode, max_symbols = (settings.resolution, settings.bound, settings.leaf, settings.mode,
                                                  settings.max_symbols)
    batch_boxes, batch_points = settings.batch_boxes, settings.batch_points
    shown = {"resolution": resolution, "leaf": leaf, "mode": mode, "max_symbols": max_symbols}
    estimated = {}
    sampled = 0
    if settings.fallback:
        estimate = estimate_range_mesh(spec, params, resolution, bound, leaf, mode, max_symbols, samples=settings.samples,
                                       batch_boxes=batch_boxes, device=device)
        sampled = estimate.sampled_boxes
        estimated = {"estimate": estimate.to_dict()}
        if not estimate.worthwhile:
            mesh, stats = dense_mesh(spec, params, resolution, bound, device, batch_points, chunk, on_progress)
            return mesh, {**stats, **shown, "method": "dense", "fallback": True, "box_evaluations": sampled,
                          "box_evaluations_per_level": [], "evaluations": stats["evaluations"] + sampled,
                          "seconds": time.perf_counter() - start, **estimated}
    t_estimate = time.perf_counter()
    report = on_progress or (lambda step, done, total: None)
    plan = plan_range_mesh(spec, params, resolution, bound, leaf, mode, max_symbols, batch_boxes=batch_boxes,
                           device=device, on_level=lambda done, total: report("bounding", done, total))
    t_plan = time.perf_counter()
    report("sampling", 0, 1)
    values, evaluated = evaluate_leaf_values(spec, params, plan, plan.leaves, device, batch_points)
    t_points = time.perf_counter()
    mesh = mesh_from_leaf_values(plan, values, chunk, on_block=lambda done, total: report("meshing", done, total))
    end = time.perf_counter()
    boxes = int(sum(plan.box_evaluations)) + sampled
    return mesh, {
        "method": "range", **shown, "fallback": False,
        "box_evaluations": boxes, "box_evaluations_per_level": list(plan.box_evaluations),
        "point_evaluations": int(evaluated), "evaluations": boxes + int(evaluated),
        "leaves": int(len(plan.leaves)), "leaf_blocks": int(plan.blocks ** 3),
        "seconds": end - start, "seconds_plan": t_plan - t_estimate, "seconds_points": t_points - t_plan,
        "seconds_mesh": end - t_points, "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
        **estimated,
    }


def dense_mesh(spec: FieldSpec, params: Params, resolution: int, bound: float = 1.0,
               device: torch.device | str = "cpu", batch_points: int = 65536, chunk: int = 64,
               on_progress: Optional[Progress] = None) -> tuple[trimesh.Trimesh, dict]:
    """Marching cubes over the whole lattice, every point evaluated: the reference for `range_mesh`
    (`on_progress`: ("meshing", blocks done, blocks in all) after each block).

    Returns the mesh and stats ("evaluations" = resolution^3, "seconds", "vertices", "faces").
    """
    from inrcore.fields.evaluation import evaluate_grid_block
    from inrcore.geometry.settings import GridConfig

    start = time.perf_counter()
    grid = GridConfig(resolution=resolution, chunk=chunk, bound=bound, batch_points=batch_points)
    on_block = None if on_progress is None else (lambda done, total: on_progress("meshing", done, total))
    mesh = marching_cubes_blocks(lambda block: evaluate_grid_block(spec, params, grid, block, device),
                                 (resolution,) * 3, chunk, 2.0 * bound / (resolution - 1), (-bound,) * 3,
                                 on_block=on_block)
    return mesh, {"method": "dense", "resolution": resolution, "evaluations": resolution ** 3,
                  "point_evaluations": resolution ** 3, "box_evaluations": 0,
                  "seconds": time.perf_counter() - start,
                  "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}
