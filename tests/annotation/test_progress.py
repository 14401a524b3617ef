"""The progress line: a bar with ETA on a terminal, log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from streamer.annotation.progress import Progress, clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_clock() -> None:
    assert [clock(s) for s in (0, 7.4, 754, 3723)] == ["0:00", "0:07", "12:34", "1:02:03"]


def test_a_terminal_gets_a_bar_redrawn_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Terminal()
    progress = Progress("clip.mp4", 100, stream=screen)
    monkeypatch.setattr(progress, "rate", lambda: 10.0)
    progress.done = 25
    line = progress.line(80)
    assert line.startswith("clip.mp4 [") and "25/100 frames  10.0 fps  ETA 0:08" in line
    bar = line[line.index("[") + 1 : line.index("]")]
    assert 10 <= len(bar) <= 40 and bar.count("#") == round(len(bar) / 4), "a quarter of the bar filled"
    progress.finish()
    assert screen.getvalue().startswith("\r") and screen.getvalue().endswith("\n")


def test_elsewhere_plain_lines_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("clip.mp4", 50, stream=io.StringIO(), every=0.0)
    with caplog.at_level(logging.INFO, logger="streamer"):
        for done in (10, 20, 50):
            progress.update(done)
        progress.finish()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("clip.mp4: 10/50 frames") and lines[0].endswith("(20%)")
    assert lines[-1].startswith("clip.mp4: 50/50 frames") and "ETA 0:00 (100%)" in lines[-1]
    assert not any("\r" in line or "#" in line for line in lines)


def test_unknown_length_has_no_bar() -> None:
    progress = Progress("cam", None, stream=Terminal())
    progress.done = 3
    assert progress.line().startswith("cam 3 frames") and "ETA" not in progress.line()
