"""The progress line: a bar with ETA on a terminal, log lines elsewhere."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.annotation.progress import Progress, clock
from tests.media import make_clip


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


@pytest.mark.parametrize("width", [60, 80, 200])
def test_a_long_label_is_cut_from_the_left_to_fit(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    progress = Progress("/very/long/folder/" * 8 + "clip.mp4", 100, stream=Terminal())
    monkeypatch.setattr(progress, "rate", lambda: 10.0)
    progress.done = 50
    line = progress.line(width)
    bar = line[line.index(" [") + 2 : line.index("]")]
    assert len(line) < width and "50/100 frames" in line and len(bar) >= 10 and bar.count("#") == len(bar) // 2
    assert line.split(" [")[0].endswith("clip.mp4"), "the file name stays"


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


def test_the_command_draws_a_bar_on_a_real_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: the bar is redrawn in place with carriage returns."""
    clip = make_clip(tmp_path / "clip.mp4", frames=40, fps=20)
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "streamer.cli", "annotate", str(clip), "-o", str(tmp_path / "out.mp4")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            timeout=120,
            check=False,
        )
        os.close(follower)
        screen = b""
        while select.select([leader], [], [], 0.5)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is gone once its last writer is
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0
    text = screen.decode()
    assert "\r" in text and "[" in text and "40/40 frames" in text and "ETA 0:00" in text
    assert text.rstrip().splitlines()[-1].count("#") >= 10, "the last redraw shows a full bar"
