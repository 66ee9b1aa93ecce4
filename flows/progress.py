"""Progress of a long command on the terminal: one line redrawn in place with a bar, the step
and the current loss or metric; plain lines when standard error is not a terminal (a log file,
a pipe, a test), so nothing is lost where carriage returns would garble it."""

from __future__ import annotations

import sys
from typing import Optional, TextIO


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
