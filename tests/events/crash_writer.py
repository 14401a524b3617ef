"""Writes events with snapshots in a loop, printing ``committed <id> <kind>`` after each commit.

Run as a script by ``test_crash.py``, which kills it with SIGKILL: ``crash_writer.py DIR FIRST_TRACK COUNT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from streamer.events.machine import EventMachine
from streamer.events.store import EventStore
from streamer.results import Detection, Detections, FrameResult
from tests.media import photo


def main(directory: Path, first: int, count: int) -> None:
    store = EventStore(directory)
    machine = EventMachine(stale_s=None)
    picture = photo("astronaut")
    for track in range(first, first + count):
        size = 50 + track % 100
        for step, ended in ((0, ()), (1, ()), (2, (track,))):
            box = (10.0, 10.0, 10.0 + size * (1 + step), 10.0 + size * (1 + step))
            detection = Detection(box, 0, "person", 0.9, track_id=track, zones=("door",) if step else ())
            result = FrameResult(512, 512, objects=Detections.of([detection]), stream="cam", ended=ended)
            for event in machine.update(result, float(track * 10 + step)):
                store.record(event, picture if event.snapshot else None)
                print("committed", event.id, event.kind, flush=True)
    store.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
