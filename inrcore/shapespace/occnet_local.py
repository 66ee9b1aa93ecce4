"""The Occupancy Network's local readings of the cloud (not the authors': their decoder sees the code
alone): for each query, its k nearest cloud points' encoder features and positions, either averaged
by inverse square distance (`local_features`, PointNet++'s interpolation) or each passed with its
offset from the query through one learned layer and pooled by their maximum
(`pooled_local_features`, a PointNet over the neighbourhood). `inrcore.shapespace.occnet` adds them
to the decoder's first features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from inrcore.shapespace.settings import OccNetConfig


OFFSET_SCALE = 10.0  # pooled local features read neighbour offsets in tenths of the unit box: order one


def neighbour_weights(clouds: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of queries [B, N, 3], its k nearest points of clouds [B, T, 3] (all T when k >= T) and
    their weights: (weights [B, N, k] in proportion to 1 / (d² + 1e-8), d the distances, each row
    summing to 1; indices [B, N, k] into the cloud, nearest first). Float32 and without gradients:
    the weights depend on the points alone."""
    squared, index = _nearest(clouds, queries, k)
    weights = 1.0 / (squared + 1e-8)
    return weights / weights.sum(dim=-1, keepdim=True), index


def cloud_neighbours(clouds: torch.Tensor, k: int) -> torch.Tensor:
    """Indices [B, T, min(k, T)] of each cloud point's k nearest points of its own cloud (clouds [B, T, 3]),
    itself first (at distance 0; a repeated point may come first instead); float32, no gradients."""
    return _nearest(clouds, clouds, k)[1]


def pooled_over(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The maximum [B, N, F] of values [B, T, F] over each row's points index [B, N, k] (into T), channel
    by channel. Its gradient goes to the maximising point of each (row, channel) alone (`_PooledMax`)."""
    batch, count = values.shape[:2]
    return _PooledMax.apply(values.reshape(batch * count, -1), _flat_index(index, count))


class _PooledMax(torch.autograd.Function):
    """max_j values[flat[.., j]] over the last axis of flat [B, N, k]: [B, N, F] from values [P, F]. The
    backward pass keeps only which point gave each (row, channel) its maximum and scatters [B, N, F]
    gradients to them, where autograd would keep and compare the [B, N, k, F] gathered values."""

    @staticmethod
    def forward(ctx, values, flat):
        # one neighbour at a time: [B, N, F] values in flight instead of the [B, N, k, F] gathered ones
        # (and torch's maximum with indices over them: 55 ms against this loop's 33 for [64, 300, 8, 64] on two
        # EPYC cores, a throwaway timing)
        best = values[flat[..., 0]]  # [B, N, F]
        choice = torch.zeros(best.shape, dtype=torch.int32, device=best.device)
        for j in range(1, flat.shape[-1]):
            candidate = values[flat[..., j]]
            choice.masked_fill_(candidate > best, j)  # the first of equal maxima kept
            best = torch.maximum(best, candidate)
        ctx.save_for_backward(flat.gather(2, choice.long()))  # the point each channel's maximum came from
        ctx.shape = values.shape
        return best

    @staticmethod
    def backward(ctx, grad):
        (rows,) = ctx.saved_tensors
        return _summed_into_rows(grad, rows, ctx.shape[0]), None


def _summed_into_rows(grad: torch.Tensor, rows: torch.Tensor, count: int) -> torch.Tensor:
    """[count, D] zeros with grad [B, N, D] added channel by channel at the rows rows [B, N, D] name: the
    gradient of a maximum over gathered rows, sent to the row that gave each channel its maximum."""
    width = grad.shape[-1]
    summed = torch.zeros(count, width, device=grad.device, dtype=grad.dtype)
    return summed.scatter_add_(0, rows.reshape(-1, width), grad.reshape(-1, width))


def _nearest(clouds: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared distances and indices [B, N, min(k, T)] of the nearest points of clouds [B, T, 3] to each
    of queries [B, N, 3], nearest first; float32, no gradients. The points are ranked by |p|² - 2 q·p
    (|q - p|² less |q|², one batched product) and only the k chosen distances are taken exactly."""
    with torch.no_grad(), torch.autocast(queries.device.type, enabled=False):
        points, queries = clouds.float(), queries.float()
        rank = torch.baddbmm(points.square().sum(-1)[:, None, :], queries, points.transpose(1, 2), alpha=-2.0)
        index = rank.topk(min(k, clouds.shape[1]), dim=-1, largest=False, sorted=True).indices  # [B, N, k]
        squared = (_gather_points(points, index) - queries[:, :, None, :]).square().sum(-1)
        return squared, index


def _flat_index(index: torch.Tensor, count: int) -> torch.Tensor:
    """Indices [B, N, k] into each of B clouds of `count` points, as indices into the B · count points."""
    return index + count * torch.arange(index.shape[0], device=index.device)[:, None, None]


def _gather_points(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values [B, T, F] at indices [B, N, k] into T: [B, N, k, F]."""
    batch, count = values.shape[:2]
    return values.reshape(batch * count, -1)[_flat_index(index, count)]


def local_features(clouds: torch.Tensor, features: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """Each query's local features [B, N, F + 3]: the k nearest cloud points' features [B, T, F] and
    positions (clouds [B, T, 3]) averaged by `neighbour_weights`, the position less the query's own
    (queries [B, N, 3]), so that it points from the query towards the nearby surface. Only the k
    neighbours are gathered, never a [B, N, T] matrix of weights that is mostly zeros."""
    weights, index = neighbour_weights(clouds, queries, k)
    averaged = (weights[:, :, None, :].to(features.dtype) @ _gather_points(features, index))[:, :, 0]
    with torch.autocast(queries.device.type, enabled=False):  # positions and their difference in float32
        offsets = (weights[:, :, None, :] @ _gather_points(clouds.float(), index))[:, :, 0] - queries.float()
    return torch.cat([averaged, offsets.to(averaged.dtype)], dim=-1)


def pooled_local_features(params, clouds: torch.Tensor, features: torch.Tensor, queries: torch.Tensor,
                          k: int) -> torch.Tensor:
    """Each query's pooled local features [B, N, L] (L `config.local_width`): over its k nearest points j
    of clouds [B, T, 3], relu(max_j (local_point(f_j) + local_offset(OFFSET_SCALE (p_j - q)))), f_j the
    points' features [B, T, h] and q the query (queries [B, N, 3]). local_point acts once per cloud
    point and is then gathered, so each query-neighbour pair costs one 3 -> L layer."""
    index = _nearest(clouds, queries, k)[1]  # [B, N, k]
    batch, count = clouds.shape[:2]
    flat = _flat_index(index, count)  # into the B * T points
    point = F.linear(features, params["dec.local_point.weight"], params["dec.local_point.bias"])  # [B, T, L]
    with torch.autocast(queries.device.type, enabled=False):
        neighbours = clouds.float().reshape(batch * count, 3)[flat]  # [B, N, k, 3]
        offsets = (neighbours - queries.float()[:, :, None, :]) * OFFSET_SCALE
        return _PooledPairs.apply(point.reshape(batch * count, -1), params["dec.local_offset.weight"], offsets,
                                  flat)


class _PooledPairs(torch.autograd.Function):
    """relu(max_j (point[flat[.., j]] + offsets[.., j] @ weight^T)) over the last axis of flat [B, N, k]:
    [B, N, D] from point [P, D] (any float type; the sums in its type), weight [D, 3] and offsets
    [B, N, k, 3] (no gradient). Only the maximising neighbour of each (query, channel) is kept for
    the backward pass, which scatters [B, N, D] values where autograd would keep and reduce the
    [B, N, k, D] pairs."""

    @staticmethod
    def forward(ctx, point, weight, offsets, flat):
        pairs = point[flat]  # [B, N, k, D]
        pairs += offsets.to(point.dtype) @ weight.to(point.dtype).t()
        best, choice = pairs.max(dim=2)  # [B, N, D]
        ctx.save_for_backward(offsets, flat, choice, best > 0)
        ctx.shapes = (point.shape, point.dtype, weight.dtype)
        return torch.relu(best)

    @staticmethod
    def backward(ctx, grad):
        offsets, flat, choice, positive = ctx.saved_tensors
        (points, _), dtype, weight_dtype = ctx.shapes
        grad = torch.where(positive, grad, 0.0).to(torch.promote_types(dtype, torch.float32))  # [B, N, D]
        grad_point = _summed_into_rows(grad, flat.gather(2, choice), points)  # to each channel's maximising point
        chosen = offsets.gather(2, choice.unsqueeze(-1).expand(-1, -1, -1, 3))
        grad_weight = torch.einsum("bnd,bndc->dc", grad, chosen.to(grad.dtype))
        return grad_point.to(dtype), grad_weight.to(weight_dtype), None, None


def local_width(config: OccNetConfig) -> int:
    """The width of the local features the decoder reads: h + 3 averaged, `config.local_width` pooled, 0
    without neighbours."""
    if not config.neighbours:
        return 0
    return config.local_width if config.local_encoder == "pool" else config.hidden + 3
