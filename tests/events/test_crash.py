"""A writer process killed with SIGKILL mid-stream loses no committed event and leaves a sound database."""

from __future__ import annotations

import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from streamer.events.store import EventStore

WRITER = Path(__file__).with_name("crash_writer.py")
READ_LIMIT_S = 120.0  # a hung writer fails the test instead of hanging it


def run_and_kill(directory: Path, first: int, kill_after: int) -> list[tuple[str, str]]:
    """Start a writer, read ``kill_after`` commit lines, SIGKILL it; the commits it reported."""
    process = subprocess.Popen(
        [sys.executable, str(WRITER), str(directory), str(first), "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    committed: list[tuple[str, str]] = []
    deadline = time.monotonic() + READ_LIMIT_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while len(committed) < kill_after and time.monotonic() < deadline:
            if not selector.select(timeout=1.0):
                continue
            line = process.stdout.readline()
            if not line:
                break
            word, event_id, kind = line.split()
            assert word == "committed"
            committed.append((event_id, kind))
    process.send_signal(signal.SIGKILL)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL, errors
    assert len(committed) == kill_after, f"the writer reported {len(committed)} commits: {errors}"
    # whatever it printed after our last read was committed too
    return committed


def test_killed_writer_keeps_every_commit(tmp_path: Path) -> None:
    reported: list[tuple[str, str]] = []
    for run, kill_after in enumerate((4, 17, 41)):
        reported += run_and_kill(tmp_path, run * 1000, kill_after)
        with sqlite3.connect(tmp_path / "events.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            rows = {
                event_id: (end_time, has_snapshot)
                for event_id, end_time, has_snapshot in db.execute("SELECT id, end_time, has_snapshot FROM events")
            }
        for event_id, kind in reported:
            assert event_id in rows, f"committed event {event_id} ({kind}) is missing after SIGKILL"
            if kind == "end":
                assert rows[event_id][0] is not None
        store = EventStore(tmp_path)  # reopens after the crash, as the next run would
        try:
            with_snapshot = [event_id for event_id, (_, has) in rows.items() if has]
            assert len(with_snapshot) >= len({event_id for event_id, _ in reported})
            for event_id in with_snapshot:
                data = store.snapshot(event_id)
                assert data is not None, f"{event_id} has_snapshot but no readable file"
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                assert image is not None and image.shape == (512, 512, 3)
        finally:
            store.close()
