"""Progress of a long command on the terminal: one line redrawn in place with a bar, the step
and the current loss or metric; plain lines when standard error is not a terminal (a log file,
a pipe, a test), so nothing is lost where carriage returns would garble it."""

from __future__ import annotations

import sys
from typing import Optional, Sequence, TextIO


def progress_bar(fraction: float, width: int = 24) -> str:
    """`[#####...]  NN%` for a fraction in [0, 1] (clipped), `width` cells between brackets."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    filled = int(round(fraction * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {int(fraction * 100):3d}%"


class ProgressLine:
    """Shows `text` with a bar for `fraction`: redrawn in place on a terminal, else as a line.

    Call `close` at the end (or before printing anything else) to end the redrawn line.
    """

    def __init__(self, stream: Optional[TextIO] = None, width: int = 24) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.in_place = bool(getattr(self.stream, "isatty", lambda: False)())
        self._shown = 0  # characters of the line drawn last, to blank what a shorter one leaves

    def update(self, fraction: float, text: str) -> None:
        if not self.in_place:
            self.stream.write(text + "\n")
        else:
            line = f"{progress_bar(fraction, self.width)} {text}"
            self.stream.write("\r" + line + " " * max(0, self._shown - len(line)))
            self._shown = len(line)
        self.stream.flush()

    def close(self) -> None:
        if self.in_place and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = 0


class StageLine:
    """A command's named stages on a `ProgressLine`, for work with no finer progress to show:
    `show(stage, text)` draws the bar at the share of `stages` before `stage`, `done(text)` at
    100 % and ends the line. With `quiet` nothing is shown.
    """

    def __init__(self, command: str, stages: Sequence[str], stream: Optional[TextIO] = None,
                 quiet: bool = False) -> None:
        self.command = command
        self.stages = tuple(stages)
        self.line = None if quiet else ProgressLine(stream)
        self._last = None  # (stage, tenth) last written as a plain line

    def show(self, stage: str, text: str, within: float = 0.0) -> None:
        """Draw `text` with the bar at `stage`, `within` (0 to 1) of the way through it."""
        if self.line is None:
            return
        fraction = (self.stages.index(stage) + min(max(within, 0.0), 1.0)) / len(self.stages)
        if not self.line.in_place:  # plain lines: a stage's start, then at most one per tenth of the way
            mark = (stage, int(10 * fraction))
            if within > 0 and mark == self._last:
                return
            self._last = mark
        self.line.update(fraction, f"{self.command}: {text}")

    def done(self, text: str) -> None:
        if self.line is not None:
            self.line.update(1.0, f"{self.command}: {text}")
        self.close()

    def close(self) -> None:
        """End the line (before printing anything else); again or after `done`, nothing."""
        if self.line is not None:
            self.line.close()
