"""Mirror views of an Occupancy Network's input (not the authors'): when the input cloud is its own mirror
image across a coordinate plane through the origin (a chair across x = 0, a mug across z = 0, a table across
both, in the collection's frame), the mirrored cloud is another noisy view of the same shape; the network's
occupancy probabilities for the views, each read at the mirrored query, are averaged.

A cloud counts as symmetric across a plane when at most `SYMMETRY_OUTLIERS` of its mirrored points lie
farther from the cloud than `SYMMETRY_SPACING` times the cloud's median spacing (each point's distance to
its nearest other point). On the benchmark's held-out shapes (300 points, noise 0.005) that share is 0 to
0.003 across the symmetric planes and 0.25 to 0.51 across the others (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


SYMMETRY_SPACING = 3.0  # a mirrored point farther than this many median spacings from the cloud is amiss
SYMMETRY_OUTLIERS = 0.05  # the largest share of amiss mirrored points a symmetric cloud has
AXES = "xyz"


def mirror_matrix(axis: str) -> torch.Tensor:
    """[3, 3] float32: the reflection across the coordinate plane through the origin normal to `axis`."""
    if axis not in AXES or len(axis) != 1:
        raise ValueError(f"axis must be one of x, y, z, got {axis!r}")
    diagonal = torch.ones(3)
    diagonal[AXES.index(axis)] = -1.0
    return torch.diag(diagonal)


def symmetric_axes(cloud: torch.Tensor, axes: str) -> str:
    """Those of `axes` (letters of "xyz") across whose plane through the origin the cloud [T, 3] is its own
    mirror image (see the module docstring); "" for a cloud of fewer than 2 points."""
    cloud = cloud.float()
    if len(cloud) < 2:
        return ""
    own = torch.cdist(cloud, cloud)
    own.fill_diagonal_(float("inf"))
    spacing = own.min(dim=1).values.median()
    found = ""
    for axis in axes:
        mirrored = cloud @ mirror_matrix(axis).to(cloud.device)
        amiss = torch.cdist(mirrored, cloud).min(dim=1).values > SYMMETRY_SPACING * spacing
        if float(amiss.float().mean()) <= SYMMETRY_OUTLIERS:
            found += axis
    return found


def averaged_views(field_of: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]], cloud: torch.Tensor,
                   axes: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """points [N, 3] -> logits [N] of the mean occupancy probability over the views: the cloud [T, 3] itself
    and its mirror images across each plane of `symmetric_axes(cloud, axes)`, every view read at the
    mirrored points; `field_of(view)` gives one view's field, points -> logits (built once per view). With no
    symmetric plane, exactly `field_of(cloud)`."""
    matrices = [mirror_matrix(a).to(cloud.device, cloud.dtype) for a in symmetric_axes(cloud, axes)]
    if not matrices:
        return field_of(cloud)
    views = [(field_of(cloud), None)] + [(field_of(cloud @ m), m) for m in matrices]

    def evaluate(points: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([field(points if m is None else points @ m) for field, m in views])
        # log of the mean probability and of the mean of its complement, then their difference: stable
        inside = torch.logsumexp(-F.softplus(-logits), dim=0)
        outside = torch.logsumexp(-F.softplus(logits), dim=0)
        return inside - outside

    return evaluate
