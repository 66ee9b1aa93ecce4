"""A task's own running time: the union of its pieces' intervals, its waits for workers left out."""

import pytest

from tasks import timing
from tasks.timing import TaskClock, busy_seconds, timed


def test_busy_seconds_is_the_length_of_the_union_within_the_window():
    # [2, 4] and [3, 5] overlap into [2, 5] (3 s), [7, 8] adds 1 s
    assert busy_seconds([(2.0, 4.0), (3.0, 5.0), (7.0, 8.0)], 0.0, 10.0) == 4.0
    # clipped to the window [3, 7.5]: [3, 5] and [7, 7.5]
    assert busy_seconds([(2.0, 4.0), (3.0, 5.0), (7.0, 8.0)], 3.0, 7.5) == 2.5
    # nested and unordered intervals, and one entirely outside
    assert busy_seconds([(5.0, 6.0), (1.0, 9.0), (20.0, 30.0)], 0.0, 10.0) == 8.0
    assert busy_seconds([], 0.0, 10.0) == 0.0


class FakeClock:
    def __init__(self, *readings):
        self.readings = list(readings)

    def time(self):
        return self.readings.pop(0)


def test_task_clock_leaves_out_the_wait_for_free_workers(monkeypatch):
    # started at 100; pieces farmed out at 101 ran in [102, 104], [103, 105] and [107, 108] and
    # were all back at 110: 9 s out, 4 s of them busy, so 5 s waited; at 112 the task has run 12 - 5 = 7 s.
    fake = FakeClock(100.0, 101.0, 110.0, 112.0, 112.0)
    monkeypatch.setattr(timing, "time", fake)
    clock = TaskClock()
    since = clock.now()
    clock.pieces_done(since, [(102.0, 104.0), (103.0, 105.0), (107.0, 108.0)])
    assert clock.waited == 5.0
    assert clock.running() == 7.0
    assert clock.result() == {"seconds": 7.0, "waiting_seconds": 5.0}


def test_timed_returns_the_result_and_its_interval(monkeypatch):
    monkeypatch.setattr(timing, "time", FakeClock(3.0, 4.5))
    assert timed(lambda a, b: a + b, 2, 3) == (5, (3.0, 4.5))


def test_pieces_that_ran_all_the_time_leave_no_wait(monkeypatch):
    monkeypatch.setattr(timing, "time", FakeClock(0.0, 1.0, 3.0))
    clock = TaskClock()
    clock.pieces_done(clock.now(), [(0.5, 2.0), (1.5, 3.5)])  # busy over the whole [1, 3]
    assert clock.waited == pytest.approx(0.0)
