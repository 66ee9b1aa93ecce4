"""StageChain's records: each stage's own running time, and the time it waited, apart."""

from types import SimpleNamespace

from flows import stages
from flows.stages import StageChain, new_record, waiting_seconds
from tasks.results import StageResult


class FakeClock:
    """perf_counter() reads `now`, which the fake futures move on."""

    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


class FinishedFuture:
    """A task that finishes `elapsed` seconds after it was submitted, with `outcome`."""

    def __init__(self, clock: FakeClock, outcome: dict, elapsed: float):
        self.clock, self.outcome, self.elapsed = clock, outcome, elapsed
        self.state = SimpleNamespace(is_completed=lambda: True)

    def add_done_callback(self, callback):
        self.clock.now += self.elapsed
        callback(self)

    def result(self, raise_on_failure=True):
        return self.outcome


def test_waiting_is_the_elapsed_time_less_the_tasks_own():
    assert waiting_seconds(StageResult(seconds=13.0), 272.6) == 259.6
    assert waiting_seconds(StageResult(seconds=2.5, batch_seconds=10.0), 12.0) == 2.0  # a batch ran 10 s for all
    assert waiting_seconds(StageResult(seconds=5.0), 4.9) == 0.0  # clocks a little apart: no negative waits


def test_a_chain_records_running_and_waiting_per_stage(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(stages, "time", clock)
    # "evaluate" waited 259.6 s for a worker and ran 13 s; "extract" started at once and reused its record
    plan = {"evaluate": (StageResult(seconds=13.0), 272.6), "extract": (StageResult(seconds=0.5, reused=True), 0.5)}
    records = {"bunny": new_record("bunny", "bunny.obj")}
    lines, completed = [], []
    chain = StageChain(("evaluate", "extract"), lambda sid, stage: FinishedFuture(clock, *plan[stage]), records,
                       lines.append, on_complete=completed.append)
    assert chain.run(["bunny"]) == 273.1
    record = records["bunny"]
    assert record["seconds"] == {"evaluate": 13.0, "extract": 0.5}
    assert record["waiting"] == {"evaluate": 259.6, "extract": 0.0}
    assert record["reused"] == {"evaluate": False, "extract": True}
    assert completed == ["bunny"]
    assert lines[0].endswith("evaluate done    13.0s (after 259.6s waiting)")
    assert lines[1].endswith("extract  reused  0.5s")
