"""The Occupancy Network (Mescheder et al. 2019) for shape completion from a noisy point cloud.

An encoder turns the cloud into a code; a decoder conditioned on the code gives the logit of the
probability that a query point is inside the shape. Both are kept as data, as the project keeps
its fields: one flat dict of named tensors (the batch-norm running statistics among them, named
by `STAT_SUFFIXES`) and plain functions of (params, config, tensors).

encoder: a PointNet with residual blocks. fc_pos lifts each point from 3 to 2h features; each of
`ENCODER_BLOCKS` residual blocks maps 2h -> h per point, and between blocks each point's features
are joined by their maximum over the cloud (h + h = 2h again); after the last block the maximum
over the cloud goes through ReLU and fc_c to the code.

decoder: fc_p lifts each query point to dh features; `config.blocks` residual blocks each compute
x + fc1(relu(cbn1(fc0(relu(cbn0(x)))))); the logit is fc_out(relu(cbn(x))). A conditional batch
norm (cbn) normalises each channel over every query point of the batch (all shapes together) and
scales and shifts it by gamma(code) and beta(code), two linear maps of the code that start at
gamma = 1, beta = 0. The second dense layer of every residual block starts at zero, so each block
starts as its shortcut.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from inrcore.errors import ShapeError
from inrcore.files import read_safetensors, write_safetensors
from inrcore.settings import config_from_dict, config_to_dict
from inrcore.shapespace.settings import OccNetConfig


ENCODER_BLOCKS = 5  # the authors' ResNet-PointNet
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
    if clouds.ndim != 3 or clouds.shape[-1] != 3 or clouds.shape[1] == 0:
        raise ValueError(f"clouds must be [B, T, 3] with T > 0, got {list(clouds.shape)}")
    x = _dense(params, "enc.fc_pos", clouds)
    for i in range(ENCODER_BLOCKS):
        if i > 0:
            pooled = x.max(dim=1, keepdim=True).values
            x = torch.cat([x, pooled.expand_as(x)], dim=-1)
        inner = _dense(params, f"enc.block{i}.fc0", torch.relu(x))
        x = _dense(params, f"enc.block{i}.shortcut", x) + _dense(params, f"enc.block{i}.fc1", torch.relu(inner))
    return _dense(params, "enc.fc_c", torch.relu(x.max(dim=1).values))


def conditional_batch_norm(params, name: str, x: torch.Tensor, codes: torch.Tensor, training: bool) -> torch.Tensor:
    """gamma(code) · (x - mean) / sqrt(var + eps) + beta(code) for features x [B, N, F], codes [B, C].

    Mean and (biased) variance per channel over all B · N points when training, which also moves
    the running statistics `MOMENTUM` of the way to the batch's mean and unbiased variance, in place
    and outside autograd; the running statistics otherwise."""
    flat = x.reshape(-1, x.shape[-1])
    normed = F.batch_norm(flat, params[f"{name}.running_mean"], params[f"{name}.running_var"],
                          training=training, momentum=MOMENTUM, eps=EPS).reshape(x.shape)
    gamma = _dense(params, f"{name}.gamma", codes)[:, None, :]
    beta = _dense(params, f"{name}.beta", codes)[:, None, :]
    return gamma * normed + beta


def occupancy_logits(params, config: OccNetConfig, codes: torch.Tensor, queries: torch.Tensor,
                     training: bool = False) -> torch.Tensor:
    """Logits [B, N] of occupancy at queries [B, N, 3] of the shapes with codes [B, C]. `training`
    normalises with the batch's statistics and updates the running ones (see
    `conditional_batch_norm`); otherwise the running statistics are used and nothing changes."""
    if queries.ndim != 3 or queries.shape[-1] != 3 or codes.ndim != 2 or codes.shape[0] != queries.shape[0]:
        raise ValueError(f"expected codes [B, C] and queries [B, N, 3], got {list(codes.shape)} and "
                         f"{list(queries.shape)}")
    x = _dense(params, "dec.fc_p", queries)
    for i in range(config.blocks):
        inner = _dense(params, f"dec.block{i}.fc0",
                       torch.relu(conditional_batch_norm(params, f"dec.block{i}.cbn0", x, codes, training)))
        x = x + _dense(params, f"dec.block{i}.fc1",
                       torch.relu(conditional_batch_norm(params, f"dec.block{i}.cbn1", inner, codes, training)))
    out = _dense(params, "dec.fc_out", torch.relu(conditional_batch_norm(params, "dec.cbn", x, codes, training)))
    return out[..., 0]


@dataclass(frozen=True, eq=False)
class OccupancyShape:
    """One training shape in the normalised frame: surface [S, 3] points (the input clouds are
    drawn from them), points [M, 3] uniform in the padded box and inside [M] bool; optionally
    near [P, 3] points close to the surface and near_inside [P] bool (drawn from when
    `OccNetConfig.near_fraction` > 0). float32 points."""

    surface: np.ndarray
    points: np.ndarray
    inside: np.ndarray
    near: Optional[np.ndarray] = None
    near_inside: Optional[np.ndarray] = None


def check_occupancy_shape(shape: OccupancyShape, source) -> None:
    """Raise ShapeError naming `source` when the arrays have the wrong shapes or are empty."""
    surface, points, inside = (np.asarray(a) for a in (shape.surface, shape.points, shape.inside))
    if surface.ndim != 2 or surface.shape[1] != 3 or len(surface) == 0:
        raise ShapeError(source, f"surface points must be [S, 3] with S > 0, got {list(surface.shape)}")
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ShapeError(source, f"occupancy points must be [M, 3] with M > 0, got {list(points.shape)}")
    if inside.shape != (len(points),):
        raise ShapeError(source, f"inside labels must be [{len(points)}], got {list(inside.shape)}")
    if (shape.near is None) != (shape.near_inside is None):
        raise ShapeError(source, "near points and their inside labels come together")
    if shape.near is not None:
        near, near_inside = np.asarray(shape.near), np.asarray(shape.near_inside)
        if near.ndim != 2 or near.shape[1] != 3 or near_inside.shape != (len(near),):
            raise ShapeError(source, f"near points must be [P, 3] with P labels, got {list(near.shape)} and "
                                     f"{list(near_inside.shape)}")


def noisy_cloud(surface: np.ndarray, n_points: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The network's input as the authors make it: n_points of surface [S, 3] drawn uniformly with
    replacement, each moved by Gaussian noise of standard deviation `noise`. [n_points, 3] float32."""
    surface = np.asarray(surface, dtype=np.float32)
    if surface.ndim != 2 or surface.shape[1] != 3 or len(surface) == 0:
        raise ValueError(f"surface must be [S, 3] with S > 0, got {list(surface.shape)}")
    picked = surface[rng.integers(0, len(surface), size=n_points)]
    return (picked + noise * rng.standard_normal((n_points, 3))).astype(np.float32)


class _ShapeDraws:
    """Every training shape's surface and occupancy points concatenated on one device, for drawing
    each step's clouds and queries there."""

    def __init__(self, shapes: Sequence[OccupancyShape], device: torch.device, near: bool = False):
        for i, shape in enumerate(shapes):
            check_occupancy_shape(shape, f"occupancy shape {i}")
            if near and (shape.near is None or len(shape.near) == 0):
                raise ShapeError(f"occupancy shape {i}", "near_fraction > 0 needs near points for every shape")
        tensor = lambda arrays, dtype: torch.from_numpy(  # noqa: E731
            np.ascontiguousarray(np.concatenate(arrays), dtype=dtype)).to(device)
        self.surface = tensor([s.surface for s in shapes], np.float32)
        self.points = tensor([s.points for s in shapes], np.float32)
        self.inside = tensor([s.inside for s in shapes], np.float32)
        self.surface_at, self.surface_n = self._offsets([len(s.surface) for s in shapes], device)
        self.points_at, self.points_n = self._offsets([len(s.points) for s in shapes], device)
        if near:
            self.near = tensor([s.near for s in shapes], np.float32)
            self.near_inside = tensor([s.near_inside for s in shapes], np.float32)
            self.near_at, self.near_n = self._offsets([len(s.near) for s in shapes], device)

    @staticmethod
    def _offsets(counts: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
        n = torch.tensor(counts, device=device)
        return torch.cumsum(n, 0) - n, n

    def draw(self, shapes: torch.Tensor, n_cloud: int, n_query: int, noise: float,
             generator: torch.Generator, n_near: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For shapes [B]: clouds [B, n_cloud, 3] with noise, queries [B, n_query, 3], labels [B, n_query]
        (1.0 inside), all points drawn with replacement: the last n_near queries from the near points,
        the others from the uniform ones."""
        device = self.surface.device
        rows = self._rows(shapes, self.surface_at, self.surface_n, n_cloud, generator)
        cloud = self.surface[rows] + noise * torch.randn((len(shapes), n_cloud, 3), generator=generator,
                                                         device=device)
        rows = self._rows(shapes, self.points_at, self.points_n, n_query - n_near, generator)
        if n_near == 0:
            return cloud, self.points[rows], self.inside[rows]
        near = self._rows(shapes, self.near_at, self.near_n, n_near, generator)
        return (cloud, torch.cat([self.points[rows], self.near[near]], dim=1),
                torch.cat([self.inside[rows], self.near_inside[near]], dim=1))

    @staticmethod
    def _rows(shapes, starts, counts, k: int, generator) -> torch.Tensor:
        u = torch.rand((len(shapes), k), generator=generator, device=starts.device)
        n = counts[shapes, None]
        return starts[shapes, None] + torch.minimum((u * n).long(), n - 1)


@dataclass(eq=False)
class OccNetResult:
    """A trained network: params (CPU, float32, running statistics included), one history entry per
    log step ({"step", "loss", "seconds"}), steps and seconds taken."""

    params: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0


def train_occnet(shapes: Sequence[OccupancyShape], config: OccNetConfig, device: torch.device,
                 on_log: Optional[Callable[[dict], None]] = None, seconds: Optional[float] = None) -> OccNetResult:
    """Train encoder and decoder on the shapes with Adam at `config.lr`.

    Each step draws `config.batch` shapes with replacement, a fresh noisy cloud of each
    (`config.n_points` surface points, noise `config.noise`) and `config.n_query` of its labelled
    points (`config.near_fraction` of them near the surface, the rest uniform in the box); the loss is
    the mean binary cross-entropy of the logits (forward passes in bfloat16 with `config.bfloat16`,
    the loss in float32); with `config.lr_final` the rate follows
    `annealed_rate` over the fraction of the steps or of the seconds gone. Stops after `config.steps`
    steps or, from the second step on, once `seconds` (default `config.seconds`) have passed. The
    loss is read back only every `config.log_every` steps and at the end (the mean since the last
    read, passed to `on_log`); FloatingPointError when it is not finite.
    """
    if not shapes:
        raise ValueError("no shapes to train the occupancy network on")
    budget = config.seconds if seconds is None else seconds
    initial = init_occnet(config, torch.Generator().manual_seed(config.seed))
    params = {k: v.to(device) if is_statistic(k) else torch.nn.Parameter(v.to(device)) for k, v in initial.items()}
    n_near = int(round(config.n_query * config.near_fraction))
    data = _ShapeDraws(shapes, device, near=n_near > 0)
    draws = torch.Generator(device=device).manual_seed(config.seed + 1)
    optimiser = torch.optim.Adam([v for k, v in params.items() if not is_statistic(k)], lr=config.lr)
    history: list[dict] = []
    start, step, count = time.perf_counter(), 0, 0
    total = torch.zeros((), device=device)
    while step < config.steps:
        elapsed = time.perf_counter() - start
        if step > 0 and budget is not None and elapsed >= budget:
            break
        if config.lr_final is not None:
            progress = max(step / config.steps, elapsed / budget if budget else 0.0)
            for group in optimiser.param_groups:
                group["lr"] = annealed_rate(config.lr, config.lr_final, progress)
        chosen = torch.randint(len(shapes), (config.batch,), generator=draws, device=device)
        cloud, queries, labels = data.draw(chosen, config.n_points, config.n_query, config.noise, draws, n_near)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bfloat16):
            logits = occupancy_logits(params, config, encode(params, config, cloud), queries, training=True)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total, count, step = total + loss.detach(), count + 1, step + 1
        if step % config.log_every == 0:
            history.append(_log_entry(total, count, step, start, on_log))
            total, count = torch.zeros((), device=device), 0
    if count:
        history.append(_log_entry(total, count, step, start, on_log))
    plain = {k: v.detach().to("cpu", torch.float32).clone() for k, v in params.items()}
    return OccNetResult(plain, history, step, time.perf_counter() - start)


def annealed_rate(start: float, end: float, progress: float) -> float:
    """The learning rate `progress` (0 to 1, clipped) of the way along a cosine from `start` to `end`."""
    progress = min(max(progress, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * progress))


def _log_entry(total: torch.Tensor, count: int, step: int, start: float,
               on_log: Optional[Callable[[dict], None]]) -> dict:
    loss = float(total) / count  # the only read-back to the host: once per log interval
    if not math.isfinite(loss):
        raise FloatingPointError(f"occupancy network loss became {loss} by step {step}")
    entry = {"step": step, "loss": loss, "seconds": time.perf_counter() - start}
    if on_log is not None:
        on_log(entry)
    return entry


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
    on `device` with running statistics and no gradients. Compare with `occnet_level`."""
    # own copies: fresh (aligned) storage gives the same floating-point results for equal weights
    weights = {k: v.detach().to(device, torch.float32, copy=True) for k, v in params.items()}
    cloud = _points_tensor(cloud, "cloud")
    if len(cloud) == 0:
        raise ValueError("cloud has no points")
    with torch.no_grad():
        code = encode(weights, config, cloud.to(device)[None])

    def evaluate(points: torch.Tensor) -> torch.Tensor:
        points = _points_tensor(points, "query points")
        with torch.no_grad():
            parts = [-occupancy_logits(weights, config, code, part.to(device)[None])[0]
                     for part in points.split(chunk)]
        return torch.cat(parts).to(points.device) if parts else torch.zeros(0, device=points.device)

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
