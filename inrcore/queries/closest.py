"""Spatial queries on neural implicit fields by range analysis: intersection and closest points.

After Sharp & Jacobson 2022 ("Spelunking the deep", section 6), by branch and bound over
axis-aligned boxes in [-bound, bound]^3, each bounded with `arithmetic.range_bound`:

- `intersect_fields`: do the solids {f_a <= 0} and {f_b <= 0} meet? A box where either field
  is certified positive holds no common point and is dropped; the rest are split into octants
  down to `min_size`. Every surviving box's centre is evaluated exactly; a point where both
  fields are <= 0 is the witness (a box certified negative for both always yields one). When
  no box survives the answer is a certified False; boxes still undecided at the minimum size
  are sampled on a 3 x 3 x 3 grid, and if that finds no witness the answer is None (e.g.
  solids that only touch).
- `closest_point`: the nearest point of the zero level set to each query point. Boxes are
  taken best first (nearest to their query), split in two across their longest side, and
  dropped when certified to hold no surface or when they are no nearer than the best distance
  so far. A box's centre and face centres are evaluated exactly; a sign change between the
  centre and a face centre brackets a zero, narrowed by bisection, whose farther end bounds
  the distance from above. Boxes reaching the size `tolerance` without certificate are
  dropped too, their distance kept as a certified lower bound. The best point is then polished
  by a few Newton projections (each kept only if a short bracket along the normal confirms a
  zero nearer than before).

The authors' code (github.com/nmwsharp/neural-implicit-queries) splits kd-tree nodes in two
with tolerance 1e-3 in [-1, 1]^3; the defaults here follow it (intersection uses octants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from inrcore.fields.gradients import field_normals, field_of_network, field_values, values_and_gradients
from inrcore.fields.networks import FieldSpec, Params, device_dtype_of
from inrcore.queries.bounds import POSITIVE, UNKNOWN, range_bound


@dataclass(frozen=True, eq=False)
class Intersection:
    """Result of `intersect_fields`.

    intersects: True (with a witness), False (certified: no common point in the cube) or None
      (undecided at the minimum box size, or `max_boxes` reached).
    witness: [3] point where both fields are <= 0 by exact evaluation, or None.
    boxes: boxes whose bounds were taken (each for both fields). undecided: boxes left
      undecided at the end. levels: subdivision levels visited.
    """

    intersects: Optional[bool]
    witness: Optional[torch.Tensor]
    boxes: int
    undecided: int
    levels: int


@dataclass(frozen=True, eq=False)
class ClosestPoints:
    """Result of `closest_point` for Q query points.

    points [Q, 3]: a point within `tolerance` / 2^bisections of the zero level set (the middle
      of a bracket of a sign change; NaN where no surface was found). distances [Q]:
      |query - point| (inf where none).
    lower_bounds [Q]: certified lower bound of the true distance (the true distance lies in
      [lower_bounds, about distances]). boxes: boxes whose bounds were taken.
    """

    points: torch.Tensor
    distances: torch.Tensor
    lower_bounds: torch.Tensor
    boxes: int


def _signs(spec, params, lower, upper, mode, max_symbols, batch_size) -> torch.Tensor:
    """range_bound over the boxes [lower, upper] [B, 3] -> LongTensor [B], in chunks."""
    if len(lower) == 0:
        return torch.zeros(0, dtype=torch.long, device=lower.device)
    centre, half = (lower + upper) / 2, (upper - lower) / 2
    axes = torch.diag_embed(half)
    with torch.no_grad():
        return torch.cat([range_bound(spec, params, centre[i:i + batch_size], axes[i:i + batch_size],
                                      mode=mode, max_symbols=max_symbols)
                          for i in range(0, len(centre), batch_size)])


# ----------------------------------------------------------------------------- intersection


def intersect_fields(spec_a: FieldSpec, params_a: Params, spec_b: FieldSpec, params_b: Params,
                     bound: float = 1.0, min_size: float = 1e-3, mode: str = "affine",
                     max_symbols: Optional[int] = None, batch_size: int = 1024,
                     max_boxes: int = 2_000_000) -> Intersection:
    """Whether the solids {f_a <= 0} and {f_b <= 0} share a point in [-bound, bound]^3.

    Args:
        min_size: boxes are not split below this side length.
        mode, max_symbols: range-bound settings (`arithmetic.range_bound`).
        batch_size: boxes per bound evaluation. max_boxes: give up (None) beyond this many.
    Returns:
        `Intersection`.
    """
    device, dtype = device_dtype_of(params_a)
    centres = torch.zeros(1, 3, device=device, dtype=dtype)
    half, boxes, level = float(bound), 0, 0
    octants = torch.tensor([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], device=device, dtype=dtype)

    def witness_among(points: torch.Tensor) -> Optional[torch.Tensor]:
        both = (field_values(spec_a, params_a, points) <= 0) & (field_values(spec_b, params_b, points) <= 0)
        return points[torch.nonzero(both)[0, 0]].clone() if both.any() else None

    while len(centres):
        level += 1
        radius = torch.full_like(centres, half)
        lower, upper = centres - radius, centres + radius
        sign_a = _signs(spec_a, params_a, lower, upper, mode, max_symbols, batch_size)
        sign_b = _signs(spec_b, params_b, lower, upper, mode, max_symbols, batch_size)
        boxes += len(centres)
        alive = (sign_a != POSITIVE) & (sign_b != POSITIVE)
        centres = centres[alive]
        found = witness_among(centres) if len(centres) else None
        if found is not None:
            return Intersection(True, found, boxes, 0, level)
        if len(centres) == 0:
            break
        if 2.0 * half <= min_size or boxes + 8 * len(centres) > max_boxes:
            grid = torch.linspace(-1.0, 1.0, 3, device=device, dtype=dtype)
            offsets = torch.stack(torch.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
            samples = (centres[:, None, :] + half * offsets).reshape(-1, 3)
            found = witness_among(samples)
            if found is not None:
                return Intersection(True, found, boxes, 0, level)
            return Intersection(None, None, boxes, len(centres), level)
        half /= 2.0
        centres = (centres[:, None, :] + half * octants).reshape(-1, 3)
    return Intersection(False, None, boxes, 0, level)


# ----------------------------------------------------------------------------- closest point


def _bisect_segments(spec, params, a: torch.Tensor, b: torch.Tensor,
                     iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Narrow segments [a, b] [N, 3] whose ends differ in inside-ness (f <= 0) to ones that still do."""
    inside_a = field_values(spec, params, a) <= 0
    for _ in range(iterations):
        mid = (a + b) / 2
        same = ((field_values(spec, params, mid) <= 0) == inside_a)[:, None]
        a, b = torch.where(same, mid, a), torch.where(same, b, mid)
    return a, b


def closest_point(spec: FieldSpec, params: Params, query: torch.Tensor, bound: float = 1.0,
                  tolerance: float = 1e-3, mode: str = "affine", max_symbols: Optional[int] = None,
                  batch_size: int = 1024, bisections: int = 10, newton_steps: int = 5,
                  max_boxes: int = 2_000_000) -> ClosestPoints:
    """Closest point of the field's zero level set inside [-bound, bound]^3 to each query point.

    Args:
        query: [Q, 3] points (anywhere).
        tolerance: boxes are not split below this side length; the answer's distance exceeds
          the true one by about tolerance at most (usually far less after polishing).
        bisections: each bracketed zero is narrowed to tolerance / 2^bisections.
        newton_steps: polishing rounds.
        max_boxes: stop after bounding this many boxes (the lower bounds then stay loose).
    Returns:
        `ClosestPoints`.
    """
    device, dtype = device_dtype_of(params)
    query = query.to(device, dtype).reshape(-1, 3)
    q_count = len(query)
    best = torch.full((q_count,), math.inf, device=device, dtype=dtype)
    best_point = torch.full((q_count, 3), math.nan, device=device, dtype=dtype)
    floor = torch.full((q_count,), math.inf, device=device, dtype=dtype)  # min distance of undecided leaves
    owner = torch.arange(q_count, device=device)
    lower = torch.full((q_count, 3), -float(bound), device=device, dtype=dtype)
    upper = torch.full((q_count, 3), float(bound), device=device, dtype=dtype)
    near = (query - query.clamp(lower, upper)).norm(dim=-1)
    faces = torch.cat([torch.eye(3, device=device, dtype=dtype), -torch.eye(3, device=device, dtype=dtype)])
    boxes = 0

    while len(owner):
        live = near < best[owner]
        owner, lower, upper, near = owner[live], lower[live], upper[live], near[live]
        if len(owner) == 0:
            break
        if boxes >= max_boxes:
            floor = floor.scatter_reduce(0, owner, near, reduce="amin")
            break
        if len(owner) > batch_size:
            take = torch.zeros(len(owner), dtype=torch.bool, device=device)
            take[torch.topk(near, batch_size, largest=False).indices] = True
        else:
            take = torch.ones(len(owner), dtype=torch.bool, device=device)
        b_owner, b_lower, b_upper, b_near = owner[take], lower[take], upper[take], near[take]
        owner, lower, upper, near = owner[~take], lower[~take], upper[~take], near[~take]

        sign = _signs(spec, params, b_lower, b_upper, mode, max_symbols, batch_size)
        boxes += len(b_owner)
        unknown = sign == UNKNOWN
        b_owner, b_lower, b_upper, b_near = b_owner[unknown], b_lower[unknown], b_upper[unknown], b_near[unknown]
        if len(b_owner) == 0:
            continue

        # Exact samples: centre and the six face centres; a sign change brackets a zero.
        centre, half = (b_lower + b_upper) / 2, (b_upper - b_lower) / 2
        ends = centre[:, None, :] + faces[None] * half[:, None, :]  # [B, 6, 3]
        q = query[b_owner]
        inside_c = field_values(spec, params, centre) <= 0
        inside_f = (field_values(spec, params, ends.reshape(-1, 3)) <= 0).reshape(-1, 6)
        change = inside_f != inside_c[:, None]
        reach = torch.maximum((ends - q[:, None, :]).norm(dim=-1), (centre - q).norm(dim=-1)[:, None])
        reach = torch.where(change, reach, torch.full_like(reach, math.inf))
        pick_reach, pick = reach.min(dim=1)
        bracketed = torch.isfinite(pick_reach) & (pick_reach < best[b_owner])
        if bracketed.any():
            rows = torch.nonzero(bracketed).flatten()
            a, b = centre[rows], ends[rows, pick[rows]]
            rounds = bisections + max(0, math.ceil(math.log2(float((b - a).norm(dim=-1).max()) / tolerance)))
            a, b = _bisect_segments(spec, params, a, b, rounds)
            qq = q[rows]
            upper_bound = torch.maximum((a - qq).norm(dim=-1), (b - qq).norm(dim=-1))
            _offer(best, best_point, b_owner[rows], upper_bound, (a + b) / 2)

        size = (b_upper - b_lower).amax(dim=-1)
        leaf = size <= tolerance
        if leaf.any():
            floor = floor.scatter_reduce(0, b_owner[leaf], b_near[leaf], reduce="amin")
        split = ~leaf
        if split.any():
            s_owner, s_lower, s_upper = b_owner[split], b_lower[split], b_upper[split]
            axis = (s_upper - s_lower).argmax(dim=-1)
            mid = ((s_lower + s_upper) / 2).gather(1, axis[:, None])
            mask = torch.nn.functional.one_hot(axis, 3).bool()
            first_upper = torch.where(mask, mid, s_upper)
            second_lower = torch.where(mask, mid, s_lower)
            new_lower = torch.cat([s_lower, second_lower])
            new_upper = torch.cat([first_upper, s_upper])
            new_owner = s_owner.repeat(2)
            qn = query[new_owner]
            new_near = (qn - torch.maximum(torch.minimum(qn, new_upper), new_lower)).norm(dim=-1)
            owner, lower = torch.cat([owner, new_owner]), torch.cat([lower, new_lower])
            upper, near = torch.cat([upper, new_upper]), torch.cat([near, new_near])

    _polish(spec, params, query, best, best_point, tolerance * 2.0 ** -bisections, newton_steps)
    found = torch.isfinite(best)
    distances = torch.where(found, (best_point - query).norm(dim=-1), torch.full_like(best, math.inf))
    lower_bounds = torch.minimum(floor, best)
    return ClosestPoints(best_point, distances, lower_bounds, boxes)


def _offer(best: torch.Tensor, best_point: torch.Tensor, owner: torch.Tensor, distance: torch.Tensor,
           point: torch.Tensor) -> None:
    """Keep, per query, the point of least `distance` among the offers that beat `best` (in place)."""
    new_best = best.scatter_reduce(0, owner, distance, reduce="amin")
    winner = (distance == new_best[owner]) & (distance < best[owner])
    if winner.any():
        best_point[owner[winner]] = point[winner]
        best.copy_(new_best)


def _polish(spec, params, query, best, best_point, delta: float, steps: int) -> None:
    """Newton refinement of the best points (in place).

    Each round slides every point a fraction (1, 1/2, 1/4: the right one depends on the
    curvature) of the way towards the foot of its query on the tangent plane, projects it onto
    the zero set by two Newton steps along the gradient, and keeps the nearest candidate that is
    certified (a sign change across +-delta along its normal) and nearer than the point before.
    """
    rows = torch.nonzero(torch.isfinite(best)).flatten()
    for _ in range(steps):
        if len(rows) == 0:
            return
        p, q = best_point[rows], query[rows]
        n = field_normals(spec, params, p)
        towards = q - p
        tangential = towards - (towards * n).sum(-1, keepdim=True) * n
        reach_best, point_best = best[rows].clone(), p.clone()
        for fraction in (1.0, 0.5, 0.25):
            candidate = p + fraction * tangential
            for _ in range(2):  # Newton steps onto the zero set along the gradient
                value, grad = values_and_gradients(field_of_network(spec, params), candidate)
                norm2 = (grad * grad).sum(-1).clamp(min=1e-12)
                candidate = candidate - (value / norm2)[:, None] * grad
            normal = field_normals(spec, params, candidate)
            a, b = candidate - delta * normal, candidate + delta * normal
            valid = (field_values(spec, params, a) <= 0) != (field_values(spec, params, b) <= 0)
            valid &= torch.isfinite(candidate).all(dim=-1)
            reach = torch.maximum((a - q).norm(dim=-1), (b - q).norm(dim=-1))
            better = valid & (reach < reach_best)
            reach_best = torch.where(better, reach, reach_best)
            point_best = torch.where(better[:, None], candidate, point_best)
        improved = reach_best < best[rows]
        if not improved.any():
            return
        best[rows[improved]] = reach_best[improved]
        best_point[rows[improved]] = point_best[improved]
        rows = rows[improved]
