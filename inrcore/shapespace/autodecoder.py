"""The DeepSDF auto-decoder (Park et al. 2019): one decoder and one latent code per shape, trained
together; held-out shapes reconstructed (or completed from partial scans) by fitting a code alone.

Losses (`clamped_l1`, `code_norm_penalty`, `code_square_penalty`) follow the paper and the authors'
released training and reconstruction settings (../shared/REFERENCES.md). The loops keep every
sample on the device, draw each step's indices there, and read losses back only at log steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from inrcore.fields.networks import NetworkSpec, Params
from inrcore.shapespace.decoder import decoder_spec, decoder_values, effective_params, init_decoder_params
from inrcore.shapespace.settings import AutoDecoderConfig, CodeFitConfig


def clamped_l1(prediction: torch.Tensor, target: torch.Tensor, clamp: float) -> torch.Tensor:
    """mean |clamp(prediction, ±clamp) - clamp(target, ±clamp)| over all elements: a scalar.

    Beyond ±clamp only the sign matters, so capacity goes to the surface's neighbourhood."""
    return (prediction.clamp(-clamp, clamp) - target.clamp(-clamp, clamp)).abs().mean()


def code_norm_penalty(codes: torch.Tensor, weight: float, epoch: int, ramp: int) -> torch.Tensor:
    """Training's code regulariser: weight · min(1, epoch / ramp) · mean over codes [B, L] of ‖z‖."""
    return weight * min(1.0, epoch / ramp) * codes.norm(dim=-1).mean()


def code_square_penalty(codes: torch.Tensor, weight: float) -> torch.Tensor:
    """Code fitting's regulariser: weight · mean(z²) over all elements of codes [..., L]."""
    return weight * codes.pow(2).mean()


@dataclass(frozen=True, eq=False)
class SignedSamples:
    """Every shape's samples split by sign and padded, on one device, for drawing batches there.

    positive [S, P, 4] and negative [S, Q, 4] hold (x, y, z, sdf) rows; n_positive / n_negative [S]
    how many rows of each are real (padding repeats a real row; a shape with none of one sign
    borrows rows of the other).
    """

    positive: torch.Tensor
    negative: torch.Tensor
    n_positive: torch.Tensor
    n_negative: torch.Tensor

    @classmethod
    def of(cls, shapes: Sequence[tuple[np.ndarray, np.ndarray]], device: torch.device) -> "SignedSamples":
        """From [(points [M, 3], sdf [M]), ...]."""
        if not shapes:
            raise ValueError("no shapes to train on")
        rows = [np.concatenate([p, s[:, None]], axis=1).astype(np.float32) for p, s in shapes]
        pos = [r[r[:, 3] >= 0] if (r[:, 3] >= 0).any() else r for r in rows]
        neg = [r[r[:, 3] < 0] if (r[:, 3] < 0).any() else r for r in rows]
        return cls(_padded(pos, device), _padded(neg, device),
                   torch.tensor([len(p) for p in pos], device=device),
                   torch.tensor([len(n) for n in neg], device=device))

    def draw(self, shapes: torch.Tensor, per_shape: int, generator: torch.Generator) -> torch.Tensor:
        """Rows [B, per_shape, 4] for the shapes [B]: half positive, half negative, uniform with
        replacement."""
        half = per_shape // 2
        device = self.positive.device
        u = torch.rand((len(shapes), per_shape), generator=generator, device=device)
        pos_index = (u[:, :half] * self.n_positive[shapes, None]).long()
        neg_index = (u[:, half:] * self.n_negative[shapes, None]).long()
        pos = torch.gather(self.positive[shapes], 1, pos_index[..., None].expand(-1, -1, 4))
        neg = torch.gather(self.negative[shapes], 1, neg_index[..., None].expand(-1, -1, 4))
        return torch.cat([pos, neg], dim=1)


def _padded(rows: list[np.ndarray], device: torch.device) -> torch.Tensor:
    longest = max(len(r) for r in rows)
    out = np.stack([np.concatenate([r, np.repeat(r[:1], longest - len(r), axis=0)]) for r in rows])
    return torch.from_numpy(out).to(device)


@dataclass(eq=False)
class AutoDecoderResult:
    """A trained shape space: the decoder (spec, plain weights on the CPU), codes [S, L] in the order
    of the training shapes, one history entry per log step, epochs, steps and seconds taken."""

    spec: NetworkSpec
    params: dict[str, torch.Tensor]
    codes: torch.Tensor
    history: list[dict] = field(default_factory=list)
    epochs: int = 0
    steps: int = 0
    seconds: float = 0.0


def train_auto_decoder(shapes: Sequence[tuple[np.ndarray, np.ndarray]], config: AutoDecoderConfig,
                       device: torch.device, on_log: Optional[Callable[[dict], None]] = None) -> AutoDecoderResult:
    """Train the decoder and one code per shape on [(points [M, 3], sdf [M]), ...].

    An epoch visits the shapes once in a seeded random order, `shapes_per_batch` at a time. Stops
    after `config.epochs` epochs or, from the second step on, once `config.seconds` have passed.
    Raises FloatingPointError when the loss stops being finite.
    """
    generator = torch.Generator().manual_seed(config.seed)
    spec = decoder_spec(config.decoder)
    params = {k: torch.nn.Parameter(v.to(device)) for k, v in
              init_decoder_params(spec, config.decoder.weight_norm, generator).items()}
    codes = torch.nn.Parameter((torch.randn((len(shapes), config.decoder.latent), generator=generator)
                                * config.code_init_std).to(device))
    samples = SignedSamples.of(shapes, device)
    draws = torch.Generator(device=device).manual_seed(config.seed + 1)
    optimiser = torch.optim.Adam([{"params": list(params.values()), "lr": config.lr_decoder},
                                  {"params": [codes], "lr": config.lr_codes}])
    history: list[dict] = []
    start, step, epoch = time.perf_counter(), 0, 0
    total = torch.zeros((), device=device)
    count = 0
    while epoch < config.epochs:
        if step > 0 and config.seconds is not None and time.perf_counter() - start >= config.seconds:
            break
        factor = config.lr_factor ** (epoch // config.lr_every)
        optimiser.param_groups[0]["lr"] = config.lr_decoder * factor
        optimiser.param_groups[1]["lr"] = config.lr_codes * factor
        order = torch.randperm(len(shapes), generator=generator).to(device)
        for batch in order.split(config.shapes_per_batch):
            rows = samples.draw(batch, config.samples_per_shape, draws)
            batch_codes = codes[batch]
            values = decoder_values(spec, params, batch_codes, rows[..., :3], config.decoder.dropout, training=True)
            loss = clamped_l1(values, rows[..., 3], config.clamp) + code_norm_penalty(
                batch_codes, config.code_reg, epoch, config.code_reg_ramp)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():  # the authors' embedding keeps codes within max_norm
                norms = codes[batch].norm(dim=-1, keepdim=True)
                codes[batch] = codes[batch] * (config.code_max_norm / norms).clamp(max=1.0)
            total = total + loss.detach()
            count += 1
            step += 1
        epoch += 1
        if epoch % config.log_every == 0 or epoch == config.epochs:
            history.append(_log_entry(total, count, epoch, step, start, optimiser, on_log))
            total, count = torch.zeros((), device=device), 0
    if count:
        history.append(_log_entry(total, count, epoch, step, start, optimiser, on_log))
    plain = {k: v.detach().to("cpu", torch.float32) for k, v in effective_params(spec, params).items()}
    return AutoDecoderResult(spec, plain, codes.detach().to("cpu", torch.float32), history, epoch, step,
                             time.perf_counter() - start)


def _log_entry(total: torch.Tensor, count: int, epoch: int, step: int, start: float, optimiser,
               on_log: Optional[Callable[[dict], None]]) -> dict:
    loss = float(total) / max(count, 1)  # the only host read-back: once per log interval
    if not math.isfinite(loss):
        raise FloatingPointError(f"auto-decoder loss became {loss} at epoch {epoch}")
    entry = {"epoch": epoch, "step": step, "loss": loss, "seconds": time.perf_counter() - start,
             "lr_decoder": optimiser.param_groups[0]["lr"], "lr_codes": optimiser.param_groups[1]["lr"]}
    if on_log is not None:
        on_log(entry)
    return entry


@dataclass(frozen=True, eq=False)
class TargetSamples:
    """What a code is fitted to: points [M, 3], sdf [M] and exact [M] (False: only known to be
    outside, e.g. free space seen by a scan; those get the hinge max(0, -prediction))."""

    points: np.ndarray
    sdf: np.ndarray
    exact: Optional[np.ndarray] = None


@dataclass(eq=False)
class CodeFit:
    """Fitted codes [B, L] (CPU), the final loss of each shape [B], steps and seconds."""

    codes: torch.Tensor
    losses: list[float]
    steps: int
    seconds: float
    starts: Optional[list[int]] = None  # with init "nearest": the row of `candidates` each code started at


def fit_codes(spec: NetworkSpec, params: Params, targets: Sequence[TargetSamples], config: CodeFitConfig,
              device: torch.device, candidates: Optional[torch.Tensor] = None) -> CodeFit:
    """Fit one code per target with the decoder frozen (several shapes at once: each code's loss is
    its own, so they are fitted as they would be alone).

    Each code starts at the row of `candidates` [S, L] (the space's training codes) of the lowest
    objective on the target (`nearest_codes`) with config.init "nearest", at N(0, init_std²) with
    "random". Each step draws `config.samples` of each target's points (with replacement); loss per
    shape = clamped L1 on exact points + free_space · mean max(0, -prediction) on outside-only points
    + code_reg · mean z². Adam at `lr`, divided by 1/drop_factor after `drop_at` of the steps.
    """
    if not targets:
        raise ValueError("no targets to fit codes to")
    if config.init == "nearest" and (candidates is None or len(candidates) == 0):
        raise ValueError("code fitting with init 'nearest' needs the space's codes as candidates "
                         "(or init 'random')")
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(config.seed)
    weights = {k: v.to(device) for k, v in effective_params(spec, params).items()}
    latent = spec[0].in_features - 3 if spec[0].kind == "dense" else None
    rows, exact = _stacked_targets(targets, device)
    counts = torch.tensor([len(t.points) for t in targets], device=device)
    starts = None
    if config.init == "nearest":
        initial, starts = nearest_codes(spec, weights, rows, exact, counts, candidates.to(device, torch.float32),
                                        config)
    else:
        initial = (torch.randn((len(targets), latent), generator=generator) * config.init_std).to(device)
    codes = torch.nn.Parameter(initial)
    optimiser = torch.optim.Adam([codes], lr=config.lr)
    draws = torch.Generator(device=device).manual_seed(config.seed + 1)
    step, losses = 0, None
    drop_step = int(config.drop_at * config.steps)
    while step < config.steps:
        if step > 0 and config.seconds is not None and time.perf_counter() - start >= config.seconds:
            break
        optimiser.param_groups[0]["lr"] = config.lr * (config.drop_factor if step >= drop_step else 1.0)
        batch, mask = _drawn(rows, exact, counts, config.samples, draws)
        values = decoder_values(spec, weights, codes, batch[..., :3])
        losses = _fit_losses(values, batch[..., 3], mask, config) + config.code_reg * codes.pow(2).mean(dim=-1)
        optimiser.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimiser.step()
        step += 1
    final = [float(v) for v in losses.detach().cpu()] if losses is not None else []
    if not all(math.isfinite(v) for v in final):
        raise FloatingPointError(f"code fitting diverged: final losses {final}")
    return CodeFit(codes.detach().to("cpu", torch.float32), final, step, time.perf_counter() - start, starts)


def nearest_codes(spec: NetworkSpec, weights: Params, rows: torch.Tensor, exact: torch.Tensor, counts: torch.Tensor,
                  candidates: torch.Tensor, config: CodeFitConfig) -> tuple[torch.Tensor, list[int]]:
    """Per target the candidate code of the lowest fitting objective on `config.samples` of its points:
    S × samples decoder evaluations a target, no gradients (81 codes × 2,000 points: 0.3–0.4 s a target on
    two CPU cores at 8 × 128).

    Args:
        weights: the decoder's plain weights.
        rows: [B, N, 4] points and distances, exact [B, N], counts [B] (as `_stacked_targets`).
        candidates: [S, L].
    Returns:
        codes [B, L] (copies of the chosen rows) and the chosen row of each target.
    """
    batch, mask = _drawn(rows, exact, counts, config.samples,
                         torch.Generator(device=rows.device).manual_seed(config.seed + 2))
    chunk = max(1, (1 << 16) // config.samples)  # candidates per pass: about 2^16 decoder rows (128 MB a layer at 512)
    chosen = []
    with torch.no_grad():
        for b in range(len(rows)):
            objective = []
            for first in range(0, len(candidates), chunk):
                codes = candidates[first:first + chunk]
                n = len(codes)
                values = decoder_values(spec, weights, codes, batch[b:b + 1, :, :3].expand(n, -1, -1))
                objective.append(_fit_losses(values, batch[b:b + 1, :, 3].expand(n, -1), mask[b:b + 1].expand(n, -1),
                                             config) + config.code_reg * codes.pow(2).mean(dim=-1))
            chosen.append(int(torch.cat(objective).argmin()))
    return candidates[chosen].clone(), chosen


def _drawn(rows: torch.Tensor, exact: torch.Tensor, counts: torch.Tensor, n: int,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows [B, n, 4] and their exact mask [B, n] drawn with replacement from each target's first counts[b]."""
    index = (torch.rand((len(rows), n), generator=generator, device=rows.device) * counts[:, None]).long()
    return torch.gather(rows, 1, index[..., None].expand(-1, -1, 4)), torch.gather(exact, 1, index)


def _fit_losses(values: torch.Tensor, target: torch.Tensor, exact: torch.Tensor, config: CodeFitConfig) -> torch.Tensor:
    """Per-shape loss [B] from values, targets and the exact mask [B, N]."""
    c = config.clamp
    l1 = (values.clamp(-c, c) - target.clamp(-c, c)).abs()
    n_exact = exact.sum(dim=1).clamp(min=1)
    n_free = (~exact).sum(dim=1).clamp(min=1)
    fitted = (l1 * exact).sum(dim=1) / n_exact
    free = (torch.relu(-values) * ~exact).sum(dim=1) / n_free
    return fitted + config.free_space * free


def _stacked_targets(targets: Sequence[TargetSamples], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    rows, masks = [], []
    for t in targets:
        if len(t.points) == 0:
            raise ValueError("a target has no samples")
        rows.append(np.concatenate([t.points, t.sdf[:, None]], axis=1).astype(np.float32))
        masks.append(np.ones(len(t.points), dtype=bool) if t.exact is None else np.asarray(t.exact, dtype=bool))
    longest = max(len(r) for r in rows)
    pad = lambda a: np.concatenate([a, np.repeat(a[:1], longest - len(a), axis=0)])  # noqa: E731
    return (torch.from_numpy(np.stack([pad(r) for r in rows])).to(device),
            torch.from_numpy(np.stack([pad(m) for m in masks])).to(device))


def interpolated_codes(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Codes [steps, L] from a to b (both [L]) in equal steps, ends included."""
    t = torch.linspace(0.0, 1.0, steps, dtype=a.dtype)[:, None]
    return (1 - t) * a[None] + t * b[None]
