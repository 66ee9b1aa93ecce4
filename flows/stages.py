"""Moving every shape of a collection through a chain of stages, as soon as each stage finishes.

`StageChain` is the event loop the collection flows share: each submitted task (a Prefect
future on the flow's task runner) reports itself on one queue when it finishes; a shape whose
stage succeeded goes on to its next stage at once, a shape whose stage failed stops there with
its error recorded, and the other shapes go on. Flows supply how a stage is submitted, and may
hold some stage back to submit it themselves for several shapes together (batched training).
"""

from __future__ import annotations

import queue
import sys
import time
from typing import Any, Callable, Optional

from inrcore.errors import InrflowError
from tasks.results import StageResult


def progress_printer(quiet: bool) -> Callable[[str], None]:
    """Where a flow's progress lines go: the flow run's logger (so a Prefect server's UI shows
    them, whether or not `quiet`) and standard error (unless `quiet`).

    The lines are logged at INFO: the command line's offline defaults let the flow-run logger
    pass INFO to the API while the console handler shows warnings only (`--verbose`: all), so
    the terminal gets each line once, from here.
    """
    def say(text: str) -> None:
        logger = run_logger()
        if logger is not None:
            logger.info(text)
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    return say


def run_logger():
    """Prefect's logger of the current flow or task run, or None outside a run."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return None


def new_record(shape_id: str, source: str, **fields) -> dict:
    """A shape's record while it runs: status "running", no error, and per stage its own running
    seconds, the seconds it waited (for a worker, or its pieces for workers) and whether it reused
    a finished result."""
    return {"shape_id": shape_id, "source": source, "status": "running", "error": None, **fields,
            "seconds": {}, "waiting": {}, "reused": {}}


def waiting_seconds(outcome: StageResult, elapsed: float) -> float:
    """How long of a stage's `elapsed` seconds (submission to completion, measured by the flow) it
    waited rather than ran: `elapsed` less the task's own running time (for a batch task, the
    whole batch's), never below zero."""
    return max(0.0, elapsed - outcome.running_seconds)


def error_message(outcome) -> str:
    """The error as users should read it: bad input as its own message, anything else with its type."""
    if isinstance(outcome, InrflowError):
        return str(outcome)
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}: {outcome} (unexpected; the traceback is in the Prefect task run log)"
    return str(outcome)


def per_shape(outcome, count: int, batched: bool, failed: bool) -> list:
    """A finished task's outcome for each of its `count` shapes: a batch task's result is a list
    of one result per shape; a failure is each shape's failure."""
    if batched and not failed:
        return list(outcome)
    return [outcome] * count


class StageChain:
    """Runs shapes through `stages` in order, one submitted task per shape and stage.

    Args:
        stages: the stage names, in order.
        submit: (shape_id, stage) -> a future whose result is a `tasks.results.StageResult`.
        records: shape id -> its record (`new_record`), updated in place: "seconds" (the task's
            own running time), "waiting" (`waiting_seconds`) and "reused" per stage, and on failure
            status "failed" with "error" "<stage>: <message>".
        say: where progress lines go.
        on_complete: (shape_id) -> None, called when a shape's last stage has finished.
        hold: (shape_id, stage) -> True to not submit that stage now: the flow keeps the shape
            and later submits it with `watch` (e.g. several shapes in one batch task).
        after_event: () -> None, called after every finished task (to submit held work).
    After `run`, `results[shape_id][stage]` holds each finished stage's result.
    """

    def __init__(self, stages: tuple[str, ...], submit: Callable[[str, str], Any], records: dict[str, dict],
                 say: Callable[[str], None], on_complete: Callable[[str], None],
                 hold: Optional[Callable[[str, str], bool]] = None,
                 after_event: Optional[Callable[[], None]] = None):
        self.stages, self.submit, self.records, self.say = stages, submit, records, say
        self.on_complete, self.hold, self.after_event = on_complete, hold, after_event
        self.results: dict[str, dict] = {shape_id: {} for shape_id in records}
        self.pending: dict = {}
        self._finished: queue.Queue = queue.Queue()
        self._start = time.perf_counter()
        self._width = max(len(stage) for stage in stages)

    def watch(self, future, shape_ids: tuple[str, ...], stage: str, batched: bool = False) -> None:
        """Follow a submitted task of `stage` for these shapes; a batched task returns one result per shape."""
        self.pending[future] = (shape_ids, stage, batched, time.perf_counter())
        future.add_done_callback(lambda done: self._finished.put((done, time.perf_counter())))

    def launch(self, shape_id: str, stage: str) -> None:
        if self.hold is not None and self.hold(shape_id, stage):
            return
        self.watch(self.submit(shape_id, stage), (shape_id,), stage)

    def running(self, stage: str) -> bool:
        """Whether a task of `stage` is still pending."""
        return any(entry[1] == stage for entry in self.pending.values())

    def run(self, shape_ids: list[str]) -> float:
        """Start every shape at the first stage and wait until no task is pending; returns seconds taken."""
        for shape_id in shape_ids:
            self.launch(shape_id, self.stages[0])
        while self.pending:
            future, finished = self._finished.get()
            shape_ids_done, stage, batched, submitted = self.pending.pop(future)
            outcome = future.result(raise_on_failure=False)
            failed = isinstance(outcome, BaseException) or not future.state.is_completed()
            for shape_id, shape_outcome in zip(shape_ids_done, per_shape(outcome, len(shape_ids_done), batched, failed)):
                self._finish(shape_id, stage, shape_outcome, failed, finished - submitted)
            if self.after_event is not None:
                self.after_event()
        return time.perf_counter() - self._start

    def _finish(self, shape_id: str, stage: str, outcome, failed: bool, elapsed: float) -> None:
        record = self.records[shape_id]
        clock = f"[{time.perf_counter() - self._start:6.1f}s]"
        if failed:
            record.update(status="failed", error=f"{stage}: {error_message(outcome)}")
            self.say(f"{clock} {shape_id:<16} {stage:<{self._width}} FAILED  {error_message(outcome)}")
            return
        self.results[shape_id][stage] = outcome
        waited = waiting_seconds(outcome, elapsed)
        record["seconds"][stage] = round(outcome.seconds, 3)
        record["waiting"][stage] = round(waited, 3)
        record["reused"][stage] = outcome.reused
        self.say(f"{clock} {shape_id:<16} {stage:<{self._width}} {'reused' if outcome.reused else 'done':<7} "
                 f"{outcome.seconds:.1f}s" + (f" (after {waited:.1f}s waiting)" if waited >= 0.05 else ""))
        following = self.stages.index(stage) + 1
        if following < len(self.stages):
            self.launch(shape_id, self.stages[following])
        else:
            self.on_complete(shape_id)
