"""Progress of a long job: a bar on a terminal, plain log lines elsewhere.

::

    progress = Progress("clip.mp4", total=900)    # total None: no bar, no ETA
    progress.update(frames_done)                  # cheap; draws at most 5 times a second
    progress.finish()

On a terminal one line is redrawn in place:
``clip.mp4 [#######.............] 312/900 frames  24.8 fps  ETA 0:23``.
Otherwise (a pipe, a log file, CI) a line is logged every ``every`` seconds.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import time
from typing import TextIO

__all__ = ["Progress", "clock"]

log = logging.getLogger("streamer")


def _columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 if it does not say)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError, io.UnsupportedOperation):
        return 80


def clock(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Report ``done`` of ``total`` frames; see the module docstring."""

    def __init__(self, label: str, total: int | None, *, stream: TextIO | None = None, every: float = 5.0) -> None:
        self.label = label
        self.total = total or None
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self.started = time.monotonic()
        self.done = 0
        self._shown = self.started

    def rate(self) -> float:
        """Frames per second so far."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, width: int = 80) -> str:
        """The status line for ``done`` frames (pure but for the clock)."""
        fps = self.rate()
        if self.total is None:
            return f"{self.label} {self.done} frames  {fps:.1f} fps"
        eta = (self.total - self.done) / fps if fps > 0 else 0.0
        tail = f" {self.done}/{self.total} frames  {fps:.1f} fps  ETA {clock(eta)}"
        if not self.tty:
            return f"{self.label}:{tail} ({100 * self.done / self.total:.0f}%)"
        room = width - len(tail) - 4  # for the label and the bar: less a space and the bar's brackets
        label = self.label
        if len(label) > room - 10:  # too long: keep its end (the file name), a third of the room to the bar
            keep = max(0, room - max(10, room // 3) - 1)
            label = "…" + (label[-keep:] if keep else "")
        bar = max(10, min(40, room - len(label)))
        filled = round(bar * min(1.0, self.done / self.total))
        return f"{label} [{'#' * filled}{'.' * (bar - filled)}]{tail}"

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self._shown < self.every:
            return
        self._shown = now
        self._show()

    def _show(self) -> None:
        if self.tty:
            width = _columns(self.stream)
            self.stream.write("\r" + self.line(width)[: width - 1].ljust(width - 1))
            self.stream.flush()
        else:
            log.info("%s", self.line())

    def finish(self) -> None:
        """Show the final count and end the line."""
        self._show()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
