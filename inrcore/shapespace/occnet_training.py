"""Training the Occupancy Network (`inrcore.shapespace.occnet`): each shape's training data, the
noisy input clouds, the loop (Adam, optional cosine-annealed rate, bfloat16 forward passes, stretched
and bent shapes), the batch-norm statistics recomputed after it and the choice of the occupancy threshold
on training shapes.

Each step draws shapes with replacement and, for each, a fresh noisy cloud of its surface points and
labelled query points, all on the training device (`_ShapeDraws`); the loss is read back to the
host only once per log interval.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from inrcore.device import multiplies_bfloat16
from inrcore.errors import ShapeError
from inrcore.shapespace.occnet import (
    MOMENTUM,
    cloud_logits,
    encode_points,
    init_occnet,
    iou_of,
    is_statistic,
    occnet_level,
    occupancy_field,
)
from inrcore.shapespace.settings import OccNetConfig


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

    def __init__(self, shapes: Sequence[OccupancyShape], device: torch.device, near: bool = False,
                 jitter: float = 0.0, warp: float = 0.0):
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
        self.jitter, self.warp, self.count = jitter, warp, len(shapes)
        # each shape's half-sides about the origin (the normalised frame centres the bounding box there)
        self.half = tensor([np.abs(np.asarray(s.surface)).max(axis=0)[None] for s in shapes], np.float32)
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
        the others from the uniform ones; with `jitter`, each shape's points stretched by
        `stretch_factors` of uniform random numbers, then with `warp` bent by `warp_axes`."""
        device = self.surface.device
        rows = self._rows(shapes, self.surface_at, self.surface_n, n_cloud, generator)
        surface = self.surface[rows]
        noise = noise * torch.randn((len(shapes), n_cloud, 3), generator=generator, device=device)
        rows = self._rows(shapes, self.points_at, self.points_n, n_query - n_near, generator)
        queries, labels = self.points[rows], self.inside[rows]
        if n_near:
            near = self._rows(shapes, self.near_at, self.near_n, n_near, generator)
            queries = torch.cat([queries, self.near[near]], dim=1)
            labels = torch.cat([labels, self.near_inside[near]], dim=1)
        half = self.half[shapes]
        if self.jitter > 0:
            u = torch.rand(half.shape, generator=generator, device=device)
            factors = stretch_factors(half, u, self.jitter)
            surface, queries, half = surface * factors[:, None, :], queries * factors[:, None, :], half * factors
        if self.warp > 0:
            u = torch.rand((*half.shape, WARP_SEGMENTS), generator=generator, device=device)
            surface, queries = warp_axes(surface, half, u, self.warp), warp_axes(queries, half, u, self.warp)
        return surface + noise, queries, labels

    def batch(self, config: OccNetConfig,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`draw` for `config.batch` shapes drawn with replacement, `near_queries(config)` of each one's
        queries near the surface: a training step's batch."""
        chosen = torch.randint(self.count, (config.batch,), generator=generator, device=self.surface.device)
        return self.draw(chosen, config.n_points, config.n_query, config.noise, generator, near_queries(config))

    @staticmethod
    def _rows(shapes, starts, counts, k: int, generator) -> torch.Tensor:
        u = torch.rand((len(shapes), k), generator=generator, device=starts.device)
        n = counts[shapes, None]
        return starts[shapes, None] + torch.minimum((u * n).long(), n - 1)


def near_queries(config: OccNetConfig) -> int:
    """How many of a shape's `config.n_query` queries a step draws near the surface."""
    return int(round(config.n_query * config.near_fraction))


def stretch_factors(half: torch.Tensor, u: torch.Tensor, jitter: float) -> torch.Tensor:
    """Scale factors [B, 3] for shapes of half-sides half [B, 3] from u [B, 3] in [0, 1]: 1 + jitter (2u - 1)
    per axis, then all three multiplied by one number so that the stretched shape's longest half-side
    is its longest half-side before (the normalised frame's extent stays)."""
    factors = 1.0 + jitter * (2.0 * u - 1.0)
    return factors * (half.amax(dim=1) / (half * factors).amax(dim=1))[:, None]


WARP_SEGMENTS = 4  # equal pieces of each axis that `warp_axes` lengthens or shortens


def warp_axes(points: torch.Tensor, half: torch.Tensor, u: torch.Tensor, jitter: float) -> torch.Tensor:
    """points [B, N, 3] of shapes with half-sides half [B, 3] (about the origin), bent along each axis
    by a monotone piecewise-linear map: [-h, h] cut into S equal pieces, piece s scaled by
    1 + jitter (2 u[b, axis, s] - 1) (u [B, 3, S] in [0, 1]) and the scales divided by their mean, so
    that -h and h stay put; beyond them the end pieces' slopes go on. A one-to-one map of space, so
    inside stays inside: a table's top thickens while its legs shorten, a chair's seat moves up."""
    pieces = u.shape[-1]
    width = (2.0 * half / pieces)[:, None, :, None]  # [B, 1, 3, 1]
    slopes = 1.0 + jitter * (2.0 * u - 1.0)
    slopes = (slopes / slopes.mean(dim=-1, keepdim=True))[:, None]  # [B, 1, 3, S]
    knots = -half[:, None, :, None] + width * torch.arange(pieces, device=points.device, dtype=points.dtype)
    along = points[..., None] - knots  # [B, N, 3, S]: each point's distance past each piece's start
    inner = (slopes * torch.minimum(along.clamp(min=0.0), width)).sum(dim=-1)
    below = slopes[..., 0] * along[..., 0].clamp(max=0.0)
    above = slopes[..., -1] * (along[..., -1] - width[..., 0]).clamp(min=0.0)
    return -half[:, None, :] + inner + below + above


@dataclass(eq=False)
class OccNetResult:
    """A trained network: params (CPU, float32, running statistics included), one history entry per
    log step ({"step", "loss", "seconds"}), steps and seconds taken (training alone); config, the
    settings to save and use it with (the chosen threshold in them), and with `choose_threshold` the
    median IoU on the training shapes at each candidate threshold ({threshold: IoU}); with
    `statistics_batches`, the seconds `recomputed_statistics` took after training; with `average_decay`,
    params hold the averaged weights and last_params the last ones (their statistics as training left
    them), to set beside them; bfloat16, whether the forward passes ran in bfloat16 (`bfloat16_passes`)."""

    params: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    config: Optional[OccNetConfig] = None
    thresholds: dict[float, float] = field(default_factory=dict)
    statistics_seconds: float = 0.0
    last_params: Optional[dict[str, torch.Tensor]] = None
    bfloat16: bool = False


def train_occnet(shapes: Sequence[OccupancyShape], config: OccNetConfig, device: torch.device,
                 on_log: Optional[Callable[[dict], None]] = None, seconds: Optional[float] = None) -> OccNetResult:
    """Train encoder and decoder on the shapes with Adam at `config.lr`.

    Each step draws `config.batch` shapes with replacement, a fresh noisy cloud of each
    (`config.n_points` surface points, noise `config.noise`) and `config.n_query` of its labelled
    points (`config.near_fraction` of them near the surface, the rest uniform in the box); the loss is
    the mean binary cross-entropy of the logits (forward passes in bfloat16 as `bfloat16_passes` says,
    the loss in float32; with `config.neighbours` the decoder also reads each query's `local_features`);
    with `config.lr_final` the rate follows
    `annealed_rate` over the fraction of the steps or of the seconds gone. Stops after `config.steps`
    steps or, from the second step on, once `seconds` (default `config.seconds`) have passed. The
    loss is read back only every `config.log_every` steps and at the end (the mean since the last
    read, passed to `on_log`); FloatingPointError when it is not finite. With `config.scale_jitter`
    the shapes are stretched by `stretch_factors`, with `config.warp_jitter` bent by `warp_axes`; with
    with `config.average_decay` the weights it ends with are their `moved_average` over the steps;
    `config.statistics_batches` the batch-norm statistics are then `recomputed_statistics`; with
    `config.choose_threshold` the result's config holds the threshold `threshold_ious` rates best on the
    training shapes.
    """
    if not shapes:
        raise ValueError("no shapes to train the occupancy network on")
    budget = config.seconds if seconds is None else seconds
    initial = init_occnet(config, torch.Generator().manual_seed(config.seed))
    params = {k: v.to(device) if is_statistic(k) else torch.nn.Parameter(v.to(device)) for k, v in initial.items()}
    data = _ShapeDraws(shapes, device, near=near_queries(config) > 0, jitter=config.scale_jitter,
                       warp=config.warp_jitter)
    draws = torch.Generator(device=device).manual_seed(config.seed + 1)
    optimiser = torch.optim.Adam([v for k, v in params.items() if not is_statistic(k)], lr=config.lr)
    average = ({k: v.detach().clone() for k, v in params.items() if not is_statistic(k)}
               if config.average_decay else None)
    low = bfloat16_passes(config.bfloat16, device)
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
        cloud, queries, labels = data.batch(config, draws)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=low):
            codes, features = encode_points(params, config, cloud)
            logits = cloud_logits(params, config, cloud, codes, features, queries, training=True)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if average is not None:
            moved_average(average, params, config.average_decay, step)
        total, count, step = total + loss.detach(), count + 1, step + 1
        if step % config.log_every == 0:
            history.append(_log_entry(total, count, step, start, on_log))
            total, count = torch.zeros((), device=device), 0
    if count:
        history.append(_log_entry(total, count, step, start, on_log))
    plain = {k: v.detach().to("cpu", torch.float32).clone() for k, v in params.items()}
    result = OccNetResult(plain, history, step, time.perf_counter() - start, config, bfloat16=low)
    if average is not None:
        result.last_params, plain = plain, {**plain, **{k: v.to("cpu", torch.float32) for k, v in average.items()}}
        result.params = plain
    if config.statistics_batches:
        clock = time.perf_counter()
        result.params = recomputed_statistics(plain, config, shapes, device, config.statistics_batches)
        result.statistics_seconds = time.perf_counter() - clock
    if config.choose_threshold:
        result.config, result.thresholds = choose_threshold(result.params, config, shapes, device)
    return result


def bfloat16_passes(choice: bool | str, device: torch.device) -> bool:
    """Whether training on `device` runs its forward passes in bfloat16 for `OccNetConfig.bfloat16` `choice`:
    True and False as they are (True, where the device does not multiply bfloat16, with a RuntimeWarning that
    it will be slow), "auto" where `multiplies_bfloat16(device)`."""
    fast = multiplies_bfloat16(device)
    if choice == "auto":
        return fast
    if choice and not fast:
        warnings.warn(f"occnet.bfloat16 is true but this {device.type} does not multiply bfloat16 (no AMX or AVX-512 "
                      "BF16; see /proc/cpuinfo): its forward passes will run several times slower than in float32; "
                      "bfloat16=auto uses it only where it is fast", RuntimeWarning, stacklevel=3)
    return bool(choice)


def moved_average(average: dict[str, torch.Tensor], params, decay: float, updates: int) -> None:
    """Move each of `average`'s tensors in place toward params' tensor of its name (a weight after
    its update number `updates` + 1): a <- d a + (1 - d) p with d = min(`decay`, (1 + u) / (10 + u)),
    u = `updates`: TensorFlow's ExponentialMovingAverage with num_updates. The warm-up rule keeps the
    first steps' weights from lingering: after n updates those of update k weigh about 9 k^8 / n^9, so
    the average's weights are on average a tenth of the steps taken old, until `decay` caps d (0.999
    from update 8,990 on) and then 1 / (1 - `decay`) - 1 steps."""
    d = min(decay, (1.0 + updates) / (10.0 + updates))
    with torch.no_grad():
        for k, a in average.items():
            a.lerp_(params[k].detach(), 1.0 - d)


def recomputed_statistics(params, config: OccNetConfig, shapes: Sequence[OccupancyShape], device: torch.device,
                          batches: int) -> dict[str, torch.Tensor]:
    """A copy of params (CPU, float32) whose batch-norm running statistics are each one's mean over
    `batches` batches of the shapes as they are, neither stretched nor bent (the shapes met at
    evaluation), drawn as training draws them (seed `config.seed` + 3), each passed forward in float32
    as in training (every layer normalised by the batch's own statistics), all batches weighted equally.

    Training leaves statistics that follow the last twenty or so batches (`MOMENTUM`) of stretched and
    bent shapes, with weights that were still moving; these describe the final weights on the shapes
    themselves. Each pass starts from zeroed statistics, which it leaves at `MOMENTUM` times the batch's."""
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    if not shapes:
        raise ValueError("no shapes to recompute the batch-norm statistics on")
    work = {k: v.detach().to(device, torch.float32, copy=True) for k, v in params.items()}
    names = [k for k in work if is_statistic(k)]
    sums = {k: torch.zeros_like(work[k]) for k in names}
    data = _ShapeDraws(shapes, device, near=near_queries(config) > 0)
    draws = torch.Generator(device=device).manual_seed(config.seed + 3)
    with torch.no_grad():
        for _ in range(batches):
            for k in names:
                work[k].zero_()
            cloud, queries, _ = data.batch(config, draws)
            codes, features = encode_points(work, config, cloud)
            cloud_logits(work, config, cloud, codes, features, queries, training=True)
            for k in names:
                sums[k] += work[k]
    for k in names:
        work[k] = sums[k] / (batches * MOMENTUM)
    return {k: v.to("cpu") for k, v in work.items()}


def choose_threshold(params, config: OccNetConfig, shapes: Sequence[OccupancyShape],
                     device: torch.device) -> tuple[OccNetConfig, dict[float, float]]:
    """(config with the threshold `threshold_ious` rates best, nearest `config.threshold` among equals;
    the rates)."""
    rates = threshold_ious(params, config, shapes, device)
    best = max(rates, key=lambda t: (rates[t], -abs(t - config.threshold)))
    return dataclasses.replace(config, threshold=best), rates


THRESHOLD_CANDIDATES = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05, 0.1, ..., 0.95
THRESHOLD_POINTS = 20_000  # labelled points per shape rating the thresholds (evenly strided)


def threshold_ious(params, config: OccNetConfig, shapes: Sequence[OccupancyShape], device: torch.device,
                   candidates: Sequence[float] = THRESHOLD_CANDIDATES) -> dict[float, float]:
    """{threshold: median IoU} over up to `config.threshold_shapes` of the shapes (evenly spaced in
    their order), each completed from a fresh noisy cloud (seed `config.seed` + 2) and compared at
    up to `THRESHOLD_POINTS` of its uniform labelled points."""
    rng = np.random.default_rng(config.seed + 2)
    ious = []
    for index in evenly_spaced(len(shapes), config.threshold_shapes):
        shape = shapes[index]
        cloud = noisy_cloud(shape.surface, config.n_points, config.noise, rng)
        stride = max(1, len(shape.points) // THRESHOLD_POINTS)
        points, labels = shape.points[::stride], torch.as_tensor(np.asarray(shape.inside[::stride], dtype=bool))
        field = occupancy_field(params, config, cloud, device)(torch.as_tensor(np.asarray(points, np.float32))).cpu()
        ious.append([iou_of(field < occnet_level(t), labels) for t in candidates])
    medians = np.median(np.asarray(ious), axis=0)
    return {float(t): float(m) for t, m in zip(candidates, medians)}


def evenly_spaced(count: int, k: int) -> list[int]:
    """Up to k indices of `count` items, evenly spaced from the first to the last (all when k >= count;
    none when k or count is 0)."""
    if count == 0 or k == 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, count - 1, min(k, count)).round().astype(int))]


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
