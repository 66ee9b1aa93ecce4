"""Parts of the SDF step loop (`inrcore.sdf.training.run_steps`, used by `fit_sdf` and
`fit_sdf_batch`): the time-budget check, the learning-rate schedule and the shapes' loss histories.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from inrcore.sdf.settings import TrainConfig


# One step's losses: a (scalar loss, {term: 0-d tensor or number}) pair per shape trained together.
StepLosses = list[tuple[torch.Tensor, dict]]


def time_is_up(step: int, elapsed: float, config: TrainConfig) -> bool:
    """Whether a time budget stops the loop before `step` (the first step always runs)."""
    return step > 0 and config.seconds is not None and elapsed >= config.seconds


def learning_rate_at(progress: float, lr: float, lr_final: float) -> float:
    """Cosine decay from lr (progress 0) to lr_final (progress 1)."""
    progress = min(max(progress, 0.0), 1.0)
    return lr_final + 0.5 * (lr - lr_final) * (1.0 + math.cos(math.pi * progress))


def history_entry(step: int, seconds: float, loss: torch.Tensor, lr: float, terms: dict) -> dict:
    """One history entry: {"step", "seconds", "loss", "lr", **terms}, tensors read back as floats: the
    loop's only reads from the device, made at log steps."""
    plain = {name: float(value) if isinstance(value, torch.Tensor) else value for name, value in terms.items()}
    return {"step": step, "seconds": seconds, "loss": float(loss.detach()), "lr": lr, **plain}


class LossHistories:
    """One loss history per shape trained together: lists of `history_entry` dicts.

    Args:
        on_log: called with (shape index, entry) for every entry kept.
        name_shapes: FloatingPointError messages name the shape ("shape 2's loss is nan").
    """

    def __init__(self, on_log: Optional[Callable[[int, dict], None]] = None, name_shapes: bool = False):
        self.histories: list[list[dict]] = []
        self.on_log = on_log
        self.name_shapes = name_shapes

    def log(self, step: int, seconds: float, losses: StepLosses, lr: float) -> None:
        """Keep every shape's entry for `step`, once all their losses are known to be finite
        (else FloatingPointError, keeping none)."""
        entries = [history_entry(step, seconds, loss, lr, terms) for loss, terms in losses]
        for index, entry in enumerate(entries):
            if not math.isfinite(entry["loss"]):
                shape = f"shape {index}'s " if self.name_shapes else ""
                raise FloatingPointError(f"training diverged at step {step}: {shape}loss is {entry['loss']}")
        self._keep(entries)

    def close(self, step: int, seconds: float, losses: StepLosses, lr: float) -> None:
        """Keep the final `step`'s entries (unchecked) unless the last log was of that step: a time
        budget may stop the loop between logs."""
        if not self.histories or self.histories[0][-1]["step"] != step:
            self._keep([history_entry(step, seconds, loss, lr, terms) for loss, terms in losses])

    def _keep(self, entries: list[dict]) -> None:
        self.histories.extend([] for _ in range(len(entries) - len(self.histories)))
        for index, entry in enumerate(entries):
            self.histories[index].append(entry)
            if self.on_log is not None:
                self.on_log(index, entry)
