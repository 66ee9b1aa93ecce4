"""What a stage task returns: small typed results (ids, URIs, fingerprints, counts, seconds), never tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """What every stage's result says besides its own findings.

    seconds: the task's own running time (for a shape trained in a batch, its share of it);
    waiting_seconds: the part of its run it waited for its farmed-out pieces (`tasks.timing`);
    reused: whether it reused finished work; batch_seconds: for a shape trained in a batch
    task, the whole task's running time (None otherwise).
    """

    seconds: float
    reused: bool = False
    waiting_seconds: float = 0.0
    batch_seconds: Optional[float] = None

    @property
    def running_seconds(self) -> float:
        """The running time of the task that made this result (the whole batch's for a batch task)."""
        return self.seconds if self.batch_seconds is None else self.batch_seconds
