"""The Occupancy Network (Mescheder et al. 2019) for shape completion from a noisy point cloud.

An encoder turns the cloud into a code; a decoder conditioned on the code gives the logit of the
probability that a query point is inside the shape. Both are kept as data, as the project keeps
its fields: one flat dict of named tensors (the batch-norm running statistics among them, named
by `STAT_SUFFIXES`) and plain functions of (params, config, tensors).

encoder: a PointNet with residual blocks. fc_pos lifts each point from 3 to 2h features; each of
`ENCODER_BLOCKS` residual blocks maps 2h -> h per point, and between blocks each point's features
are joined by their maximum over the cloud (h + h = 2h again); after the last block the maximum
over the cloud goes through ReLU and fc_c to the code. With `config.encoder_neighbours` k > 0 (not the
authors'; their Convolutional Occupancy Networks pool over grid cells instead) the blocks
`LOCAL_POOL_BLOCKS` join each point's features by their maximum over its k nearest cloud points (itself
among them) instead of the whole cloud, so that a point's features can tell the surface around it (its
direction, a thin part's other side) before the later blocks join the cloud's maximum; the parameters are
the same.

decoder: fc_p lifts each query point to dh features; with `config.neighbours` k > 0 (not the
authors': their decoder sees the code alone) fc_local adds the query's local features, its k nearest
cloud points' encoder features (after the last block, through ReLU) and positions averaged with
inverse-square-distance weights (PointNet++'s interpolation, `local_features`), the position less
the query's. With `config.local_encoder` "pool" fc_local reads instead a small PointNet over the same
k neighbours (`pooled_local_features`: each neighbour's features and its offset from the query through
one learned layer, their maximum through ReLU), which can tell a query between two sheets of points
from one beside a single sheet, where the average of their offsets cancels. Then `config.blocks`
residual blocks each compute
x + fc1(relu(cbn1(fc0(relu(cbn0(x)))))); the logit is fc_out(relu(cbn(x))). A conditional batch
norm (cbn) normalises each channel over every query point of the batch (all shapes together) and
scales and shifts it by gamma(code) and beta(code), two linear maps of the code that start at
gamma = 1, beta = 0. The second dense layer of every residual block starts at zero, so each block
starts as its shortcut.

The local readings are `inrcore.shapespace.occnet_local`; training (the data, the loop, the
threshold's choice) is `inrcore.shapespace.occnet_training`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from inrcore.errors import ShapeError
from inrcore.files import read_safetensors, write_safetensors
from inrcore.settings import config_from_dict, config_to_dict
from inrcore.shapespace.occnet_local import (
    cloud_neighbours,
    local_features,
    local_width,
    pooled_local_features,
    pooled_over,
)
from inrcore.shapespace.occnet_refine import refined_code
from inrcore.shapespace.occnet_views import averaged_views
from inrcore.shapespace.settings import OccNetConfig


ENCODER_BLOCKS = 5  # the authors' ResNet-PointNet
LOCAL_POOL_BLOCKS = (1, 2)  # with `encoder_neighbours`: the blocks joining a neighbourhood's maximum
STAT_SUFFIXES = ("running_mean", "running_var")  # batch-norm statistics: kept, not trained
MOMENTUM = 0.1  # running statistics: new = (1 - momentum) old + momentum batch
EPS = 1e-5
_CONFIG_KEY = "inrflow.occnet"
_META_KEY = "inrflow.metadata"


def is_statistic(name: str) -> bool:
    """Whether a parameter name holds batch-norm running statistics (updated, not optimised)."""
    return name.endswith(STAT_SUFFIXES)


def occnet_param_shapes(config: OccNetConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, encoder first, in a fixed order."""
    h, c, dh = config.hidden, config.code, config.decoder_hidden
    shapes: dict[str, tuple[int, ...]] = {}

    def dense(name: str, n_in: int, n_out: int, bias: bool = True) -> None:
        shapes[f"{name}.weight"] = (n_out, n_in)
        if bias:
            shapes[f"{name}.bias"] = (n_out,)

    def cbn(name: str) -> None:
        dense(f"{name}.gamma", c, dh)
        dense(f"{name}.beta", c, dh)
        shapes[f"{name}.running_mean"] = (dh,)
        shapes[f"{name}.running_var"] = (dh,)

    dense("enc.fc_pos", 3, 2 * h)
    for i in range(ENCODER_BLOCKS):
        dense(f"enc.block{i}.fc0", 2 * h, h)
        dense(f"enc.block{i}.fc1", h, h)
        dense(f"enc.block{i}.shortcut", 2 * h, h, bias=False)
    dense("enc.fc_c", h, c)
    dense("dec.fc_p", 3, dh)
    if config.neighbours and config.local_encoder == "pool":
        dense("dec.local_point", h, config.local_width)
        dense("dec.local_offset", 3, config.local_width, bias=False)
        dense("dec.fc_local", config.local_width, dh)
    elif config.neighbours:
        dense("dec.fc_local", h + 3, dh)
    for i in range(config.blocks):
        cbn(f"dec.block{i}.cbn0")
        dense(f"dec.block{i}.fc0", dh, dh)
        cbn(f"dec.block{i}.cbn1")
        dense(f"dec.block{i}.fc1", dh, dh)
    cbn("dec.cbn")
    dense("dec.fc_out", dh, 1)
    return shapes


def init_occnet(config: OccNetConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Initial parameters (float32, CPU): dense weights and biases uniform in ±1/sqrt(fan in), the
    residual blocks' second layers zero, gamma maps giving 1 and beta maps 0 for any code, running
    means 0 and variances 1."""
    params: dict[str, torch.Tensor] = {}
    shapes = occnet_param_shapes(config)
    for name, shape in shapes.items():
        if name.endswith("running_var") or name.endswith(".gamma.bias"):
            params[name] = torch.ones(shape)
        elif (name.endswith("running_mean") or ".gamma." in name or ".beta." in name
              or (".block" in name and ".fc1." in name)):
            params[name] = torch.zeros(shape)
        else:
            fan_in = shapes[name.rsplit(".", 1)[0] + ".weight"][1]
            bound = 1.0 / math.sqrt(fan_in)
            params[name] = (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound
    return params


def _dense(params, name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))


def encode(params, config: OccNetConfig, clouds: torch.Tensor) -> torch.Tensor:
    """Codes [B, C] of point clouds [B, T, 3]; invariant to the order of each cloud's points."""
    return encode_points(params, config, clouds)[0]


def encode_points(params, config: OccNetConfig, clouds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes [B, C] of point clouds [B, T, 3] and each point's features [B, T, h] after the last
    block, through ReLU (what `local_features` averages)."""
    if clouds.ndim != 3 or clouds.shape[-1] != 3 or clouds.shape[1] == 0:
        raise ValueError(f"clouds must be [B, T, 3] with T > 0, got {list(clouds.shape)}")
    x = _dense(params, "enc.fc_pos", clouds)
    index = cloud_neighbours(clouds, config.encoder_neighbours) if config.encoder_neighbours else None
    for i in range(ENCODER_BLOCKS):
        if i == 0:
            inner = _dense(params, "enc.block0.fc0", torch.relu(x))
            shortcut = _dense(params, "enc.block0.shortcut", x)
        else:  # the blocks' input is [x, the maximum of x over the cloud (one row) or each point's neighbourhood]
            if index is not None and i in LOCAL_POOL_BLOCKS:
                pooled = pooled_over(x, index)
            else:
                pooled = x.max(dim=1, keepdim=True).values
            inner = _dense_joined(params, f"enc.block{i}.fc0", torch.relu(x), torch.relu(pooled))
            shortcut = _dense_joined(params, f"enc.block{i}.shortcut", x, pooled)
        x = shortcut + _dense(params, f"enc.block{i}.fc1", torch.relu(inner))
    x = torch.relu(x)  # relu(max) = max(relu): the code's input is the maximum of the points' features
    return _dense(params, "enc.fc_c", x.max(dim=1).values), x


def _dense_joined(params, name: str, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """The dense layer `name` of [x, pooled] joined along features, for x [B, T, F] and pooled [B, 1, F] or
    [B, T, F], without joining them: each half of the weight acts on its own input and the sum broadcasts,
    so a cloud's maximum ([B, 1, F]) is multiplied once, not T times (half the multiplications)."""
    weight = params[f"{name}.weight"]
    split = x.shape[-1]
    return F.linear(x, weight[:, :split], params.get(f"{name}.bias")) + F.linear(pooled, weight[:, split:])


def conditional_batch_norm(params, name: str, x: torch.Tensor, codes: torch.Tensor, training: bool,
                           relu: bool = False) -> torch.Tensor:
    """gamma(code) · (x - mean) / sqrt(var + eps) + beta(code) for features x [B, N, F], codes [B, C];
    with `relu`, its positive part.

    Mean and (biased) variance per channel over all B · N points when training, which also moves
    the running statistics `MOMENTUM` of the way to the batch's mean and unbiased variance, in place
    and outside autograd; the running statistics otherwise. One `_ConditionalNormRelu` pass (the
    same values and gradients as batch norm, scale, shift and ReLU one after the other)."""
    gamma = _dense(params, f"{name}.gamma", codes)
    beta = _dense(params, f"{name}.beta", codes)
    return _ConditionalNormRelu.apply(x, gamma, beta, params[f"{name}.running_mean"],
                                      params[f"{name}.running_var"], training, relu)


def batch_statistics(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each channel's mean and biased variance [F] over the rows of flat [M, F], in float32 (float64 for
    float64 input) whatever flat's dtype: one pass of torch's batch-norm statistics kernel (a
    Welford-type update, so the variance stays exact whatever the mean) instead of a sum, the squares
    about the mean and their sum. Input below float32 is widened first: the kernel returns statistics
    in its input's dtype."""
    wide = torch.promote_types(flat.dtype, torch.float32)
    return torch.batch_norm_update_stats(flat.to(wide), None, None, 0.0)


class _ConditionalNormRelu(torch.autograd.Function):
    """y = act(x · s_b + t_b) for x [B, N, F] with per-shape scale s = gamma rstd and shift
    t = beta - mean s ([B, F]), rstd = 1 / sqrt(var + eps), act ReLU or the identity.

    Batch norm, the code's scale and shift and the ReLU as separate operations read and write the
    [B, N, F] activations about a dozen times forward and backward; here forward reads x for the
    statistics (`batch_statistics`) and once for y, and backward needs, besides the ReLU's mask, only the
    per-shape sums S_b = Σ_n g and P_b = Σ_n g x (g the gradient at the pre-activation): with
    xhat = (x - mean) rstd and M = B · N,
        dL/dbeta_b = S_b,   dL/dgamma_b = Σ_n g xhat = rstd (P_b - mean S_b),
        dL/dx = rstd (gamma_b g - Σ_b' gamma_b' S_b' / M - xhat Σ_b' gamma_b' dL/dgamma_b' / M)
    (the usual batch-norm gradient, its two sums over all points taken from the per-shape ones), which
    is g A_b + x C + D for [B, F] and [F] coefficients: two passes. Statistics and coefficients in
    float32 (float64 for float64 input); the activations keep x's dtype (bfloat16 under autocast).
    Running statistics (when training) are updated in place, outside autograd."""

    @staticmethod
    def forward(ctx, x, gamma, beta, running_mean, running_var, training: bool, relu: bool):
        flat = x.reshape(-1, x.shape[-1])
        count = flat.shape[0]
        wide = torch.promote_types(x.dtype, torch.float32)
        if training:
            if count < 2:  # as torch's batch norm: one value has no spread to normalise by
                raise ValueError(f"batch norm when training needs more than one value per channel, got {count}")
            mean, var = batch_statistics(flat)
            with torch.no_grad():
                running_mean.mul_(1.0 - MOMENTUM).add_(mean.to(running_mean.dtype), alpha=MOMENTUM)
                unbiased = var * (count / max(count - 1, 1))
                running_var.mul_(1.0 - MOMENTUM).add_(unbiased.to(running_var.dtype), alpha=MOMENTUM)
        else:
            mean, var = running_mean.to(wide), running_var.to(wide)
        rstd = (var + EPS).rsqrt()
        scale = gamma.to(wide) * rstd  # [B, F]
        offset = beta.to(wide) - mean * scale
        y = torch.addcmul(offset[:, None, :].to(x.dtype), x, scale[:, None, :].to(x.dtype))
        if relu:
            y.clamp_(min=0)
        ctx.save_for_backward(x, y if relu else None, gamma, mean, rstd)
        ctx.training, ctx.relu = training, relu
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y, gamma, mean, rstd = ctx.saved_tensors
        grad_y = grad_y.to(x.dtype)
        g = torch.ops.aten.threshold_backward(grad_y, y, 0) if ctx.relu else grad_y
        wide = rstd.dtype
        sums = g.sum(1).to(wide)  # [B, F]
        grad_gamma = rstd * ((g * x).sum(1).to(wide) - mean * sums)
        gamma_wide = gamma.to(wide)
        a = (gamma_wide * rstd)[:, None, :].to(x.dtype)
        if ctx.training:
            count = x.shape[0] * x.shape[1]
            c = -rstd.square() * (gamma_wide * grad_gamma).sum(0) / count
            d = -rstd * (gamma_wide * sums).sum(0) / count - mean * c
            grad_x = torch.addcmul(d.to(x.dtype), x, c.to(x.dtype)).addcmul_(g, a)
        else:
            grad_x = g * a
        return grad_x, grad_gamma.to(gamma.dtype), sums.to(gamma.dtype), None, None, None, None


def occupancy_logits(params, config: OccNetConfig, codes: torch.Tensor, queries: torch.Tensor,
                     training: bool = False, local: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Logits [B, N] of occupancy at queries [B, N, 3] of the shapes with codes [B, C]; with
    `config.neighbours`, also of the queries' local features [B, N, `local_width`] (required then:
    `local_features` or `pooled_local_features` as `config.local_encoder` says). `training`
    normalises with the batch's statistics and updates the running ones (see
    `conditional_batch_norm`); otherwise the running statistics are used and nothing changes."""
    if queries.ndim != 3 or queries.shape[-1] != 3 or codes.ndim != 2 or codes.shape[0] != queries.shape[0]:
        raise ValueError(f"expected codes [B, C] and queries [B, N, 3], got {list(codes.shape)} and "
                         f"{list(queries.shape)}")
    x = _dense(params, "dec.fc_p", queries)
    if config.neighbours:
        width = local_width(config)
        if local is None or local.shape != (*queries.shape[:2], width):
            raise ValueError(f"this network reads {config.neighbours} neighbours' local features: expected "
                             f"[B, N, {width}], got {None if local is None else list(local.shape)}")
        x = x + _dense(params, "dec.fc_local", local)
    for i in range(config.blocks):
        inner = _dense(params, f"dec.block{i}.fc0",
                       conditional_batch_norm(params, f"dec.block{i}.cbn0", x, codes, training, relu=True))
        x = x + _dense(params, f"dec.block{i}.fc1",
                       conditional_batch_norm(params, f"dec.block{i}.cbn1", inner, codes, training, relu=True))
    out = _dense(params, "dec.fc_out", conditional_batch_norm(params, "dec.cbn", x, codes, training, relu=True))
    return out[..., 0]


def cloud_logits(params, config: OccNetConfig, clouds: torch.Tensor, codes: torch.Tensor, features: torch.Tensor,
                 queries: torch.Tensor, training: bool = False) -> torch.Tensor:
    """`occupancy_logits` [B, N] at queries [B, N, 3] of the clouds [B, T, 3] that `encode_points` gave
    codes [B, C] and point features [B, T, h]; the queries' local features read when
    `config.neighbours` asks for them (`local_features` or `pooled_local_features`)."""
    local = None
    if config.neighbours and config.local_encoder == "pool":
        local = pooled_local_features(params, clouds, features, queries, config.neighbours)
    elif config.neighbours:
        local = local_features(clouds, features, queries, config.neighbours)
    return occupancy_logits(params, config, codes, queries, training=training, local=local)


def occnet_level(threshold: float) -> float:
    """The level of `occupancy_field`'s values (-logits) below which the occupancy probability
    exceeds `threshold`: -log(t / (1 - t)); 0.2 gives log 4 ≈ 1.386."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    return -math.log(threshold / (1.0 - threshold))


def _points_tensor(points, what: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(points) if not isinstance(points, torch.Tensor) else points)
    if tensor.ndim != 2 or tensor.shape[1] != 3:
        raise ValueError(f"{what} must be [N, 3], got {list(tensor.shape)}")
    return tensor.to(torch.float32)


def occupancy_field(params, config: OccNetConfig, cloud, device: torch.device,
                    chunk: int = 65536) -> Callable[[torch.Tensor], torch.Tensor]:
    """The shape completed from cloud [T, 3] as a field: points [N, 3] -> -logits [N] (negative
    inside, like a signed distance), on the points' device; evaluated in chunks of `chunk` points
    on `device` with running statistics and no gradients (chunks of chunk / k points when the
    decoder pools k neighbours, whose pairs it holds at once). With `config.mirror_views`, the
    occupancy probability averaged over the cloud and its mirror images across those of the planes
    it is symmetric about (`occnet_views.averaged_views`); with `config.refine_steps`, each view's code
    refined first (`occnet_refine.refined_code`). Compare with `occnet_level`."""
    # own copies: fresh (aligned) storage gives the same floating-point results for equal weights
    weights = {k: v.detach().to(device, torch.float32, copy=True) for k, v in params.items()}
    cloud = _points_tensor(cloud, "cloud")
    if len(cloud) == 0:
        raise ValueError("cloud has no points")
    step = max(1, chunk // config.neighbours) if config.neighbours and config.local_encoder == "pool" else chunk

    def logits_field(view: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """points [N, 3] on `device` -> logits [N] of the shape completed from the cloud view [T, 3]."""
        with torch.no_grad():
            code, features = encode_points(weights, config, view[None])
        code = refined_code(code, lambda c: cloud_logits(weights, config, view[None], c, features, view[None]),
                            config.refine_steps, config.refine_lr, config.refine_weight)

        def logits(points: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                parts = [cloud_logits(weights, config, view[None], code, features, part[None])[0]
                         for part in points.split(step)]
            return torch.cat(parts) if parts else torch.zeros(0, device=device)

        return logits

    views = averaged_views(logits_field, cloud.to(device), config.mirror_views)

    def evaluate(points: torch.Tensor) -> torch.Tensor:
        points = _points_tensor(points, "query points")
        return -views(points.to(device)).to(points.device)

    return evaluate


def occnet_mesh(params, config: OccNetConfig, cloud, device: torch.device, start: int = 32, levels: int = 2,
                bound: float = 1.0):
    """The surface where the occupancy probability is `config.threshold`, by MISE
    (`inrcore.queries.mise.mise_mesh`) from start³ cells refined `levels` times over [-bound, bound]^3:
    (trimesh.Trimesh, MISE's statistics)."""
    from inrcore.queries.mise import mise_mesh

    evaluate = occupancy_field(params, config, cloud, device)
    return mise_mesh(evaluate, start=start, levels=levels, bound=bound, level=occnet_level(config.threshold),
                     device=device)


def occupancy_iou(params, config: OccNetConfig, cloud, points, inside, device: torch.device) -> float:
    """Intersection over union of the predicted occupancy (probability > `config.threshold`) at
    points [M, 3] and the labels inside [M]; 1.0 when both are empty."""
    predicted = (occupancy_field(params, config, cloud, device)(_points_tensor(points, "points"))
                 < occnet_level(config.threshold)).cpu()
    labels = torch.as_tensor(np.asarray(inside, dtype=bool))
    if labels.shape != predicted.shape:
        raise ValueError(f"inside must be [{len(predicted)}], got {list(labels.shape)}")
    return iou_of(predicted, labels)


def iou_of(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = int((predicted | labels).sum())
    return 1.0 if union == 0 else int((predicted & labels).sum()) / union


def save_occnet(path, params: dict[str, torch.Tensor], config: OccNetConfig,
                metadata: Optional[dict[str, Any]] = None) -> Path:
    """Write the network to `path` (.safetensors) atomically: its tensors, and the config and
    `metadata` as JSON in the header."""
    header = {_CONFIG_KEY: json.dumps(config_to_dict(config)), _META_KEY: json.dumps(metadata or {})}
    return write_safetensors(path, params, header)


def load_occnet(path) -> tuple[dict[str, torch.Tensor], OccNetConfig, dict[str, Any]]:
    """Read a network written by `save_occnet`: (params on the CPU, config, metadata). ShapeError
    naming the file when it is missing, unreadable, not an occupancy network, or its tensors do not
    match its config."""
    path = Path(path)
    params, header = read_safetensors(path, "occupancy network file")
    if _CONFIG_KEY not in header:
        raise ShapeError(path, "safetensors file holds no occupancy network settings")
    try:
        config = config_from_dict(OccNetConfig, json.loads(header[_CONFIG_KEY]), where=f"{path}: {_CONFIG_KEY}")
        metadata = json.loads(header.get(_META_KEY, "{}"))
    except ValueError as exc:
        raise ShapeError(path, f"bad occupancy network settings: {exc}") from exc
    expected = occnet_param_shapes(config)
    wrong = sorted(set(expected) ^ set(params)) or [k for k in expected if tuple(params[k].shape) != expected[k]]
    if wrong:
        raise ShapeError(path, f"tensors do not match the stored settings: {', '.join(wrong[:5])}")
    return params, config, metadata
