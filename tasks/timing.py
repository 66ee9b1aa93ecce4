"""A task's own running time, apart from the time it waits for workers.

A task that farms work out to the Dask cluster (a grid evaluated chunk by chunk, leaf blocks
sampled in parts) waits while its pieces queue behind other shapes' training. `TaskClock`
counts that wait out: each piece reports the wall-clock interval it ran in (`timed`), and the
time the task spent waiting for its pieces is the part of that stretch when none of them ran
(`busy_seconds`). The flow measures the rest of the waiting (before the task itself started)
from submission to completion, so every stage's time is its own.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence


def busy_seconds(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """How long at least one of `intervals` [(begin, finish)] ran within [start, end]: the length
    of their union clipped to that window (intervals may overlap: pieces run side by side)."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if min(b, end) > max(a, start))
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def timed(function: Callable[..., Any], *args) -> tuple[Any, tuple[float, float]]:
    """function(*args) and the wall-clock interval (time.time() before, after) it ran in."""
    begin = time.time()
    result = function(*args)
    return result, (begin, time.time())


class TaskClock:
    """Wall time since the task started, less the time it waited for its farmed-out pieces."""

    def __init__(self) -> None:
        self.started = time.time()
        self.waited = 0.0

    def now(self) -> float:
        return time.time()

    def pieces_done(self, since: float, intervals: Sequence[tuple[float, float]]) -> None:
        """Count as waiting the part of [since, now] in which none of the pieces' `intervals` ran."""
        end = time.time()
        self.waited += max(0.0, (end - since) - busy_seconds(intervals, since, end))

    def running(self) -> float:
        """Seconds the task has run, its waits for pieces left out."""
        return max(0.0, time.time() - self.started - self.waited)

    def result(self) -> dict:
        """{"seconds": running, "waiting_seconds": waited}, for a task's result."""
        return {"seconds": self.running(), "waiting_seconds": self.waited}
