"""The recorder thread with the real store: commit before publish, bounded queue, draining close, failures."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from streamer.events.machine import Event, EventMachine
from streamer.events.recorder import EventRecorder
from streamer.events.store import EventStore
from streamer.frames import Frame
from streamer.results import Detection, Detections, FrameResult
from tests.media import photo

PICTURE = photo("astronaut")
DAY = 86400.0


class Clock:
    """A fake unix clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = EventStore(tmp_path)
    yield opened
    opened.close()


def result(index: int, *tracks: int, stream: str = "cam", ended: tuple[int, ...] = ()) -> tuple[FrameResult, Frame]:
    objects = [Detection((10.0 * t, 10, 10.0 * t + 100, 110), 0, "person", 0.9, track_id=t) for t in tracks]
    frame_result = FrameResult(512, 512, objects=Detections.of(objects), stream=stream, frame=index, ended=ended)
    return frame_result, Frame(stream, index, index * 40.0, PICTURE, 0.0)


def test_events_are_published_after_commit(store: EventStore) -> None:
    clock = Clock()
    seen: list[tuple[str, str, float | None, bool]] = []
    frames: list[tuple[str, int]] = []

    def publish(event: Event) -> None:
        with sqlite3.connect(store.path) as db:  # another connection, on the recorder's thread
            row = db.execute("SELECT end_time, has_snapshot FROM events WHERE id = ?", (event.id,)).fetchone()
        assert row is not None
        seen.append((event.id, event.kind, row[0], bool(row[1])))

    recorder = EventRecorder(
        store, publish=publish, on_event=lambda e, f: frames.append((e.kind, f.index)), clock=clock
    )
    recorder.start()
    recorder.on_result(*result(0, 1))
    clock.now += 1
    recorder.on_result(*result(1, 1, 2))
    clock.now += 1
    recorder.on_result(*result(2, 2, ended=(1,)))
    recorder.end_stream("cam")
    recorder.close()
    kinds = [(kind, end is not None, snap) for _, kind, end, snap in seen]
    assert kinds == [("new", False, True), ("new", False, True), ("end", True, True), ("end", True, True)]
    assert frames == [("new", 0), ("new", 1), ("end", 2), ("end", 2)]  # ends from end_stream get the last frame
    assert (recorder.recorded, recorder.dropped, recorder.failed) == (4, 0, 0)
    assert len({event_id for event_id, *_ in seen}) == 2
    snapshot = store.snapshot(seen[0][0])
    assert snapshot is not None and snapshot[:2] == b"\xff\xd8"


def test_overflow_drops_the_oldest_and_counts_it(store: EventStore) -> None:
    recorder = EventRecorder(store, queue_size=2, clock=Clock())  # not started: nothing is taken off the queue
    for i in range(5):
        recorder.on_result(*result(i, i))
    assert recorder.dropped == 3 and recorder.pending() == 2
    recorder.close()  # ends the five open events (never dropped) and records everything on this thread
    assert (recorder.recorded, recorder.dropped, recorder.failed) == (7, 3, 0)
    rows = store.query()
    assert len(rows) == 5 and all(r["kind"] == "end" for r in rows)
    assert sorted(r["track_id"] for r in rows if r["has_snapshot"]) == [3, 4]  # the two new events kept


def test_close_drains_and_ends_open_events(store: EventStore) -> None:
    clock = Clock()
    published: list[Event] = []
    recorder = EventRecorder(store, publish=published.append, clock=clock)
    recorder.start()
    for i in range(60):
        clock.now += 0.04
        recorder.on_result(*result(i, *range(i % 7)))
    recorder.close()
    recorder.close()  # twice is fine
    assert recorder.pending() == 0 and recorder.dropped == 0 and recorder.failed == 0
    assert recorder.recorded == len(published) and [e.kind for e in published].count("new") == 6
    rows = store.query()
    assert len(rows) == 6 and all(r["end_time"] is not None for r in rows)
    recorder.on_result(*result(61, 9))  # after close: ignored
    assert recorder.pending() == 0 and len(store.query()) == 6


def test_failures_are_counted_and_the_recorder_goes_on(store: EventStore) -> None:
    def publish(event: Event) -> None:
        if event.after.track_id == 2:
            raise RuntimeError("subscriber went away")

    recorder = EventRecorder(store, publish=publish, clock=Clock())
    recorder.start()
    grey = Frame("cam", 0, 0.0, np.zeros((64, 64), np.uint8), 0.0)  # not RGB: the snapshot write fails
    recorder.on_result(result(0, 1)[0], grey)
    recorder.on_result(*result(1, 1, 2))
    recorder.on_result(*result(2, 3))
    recorder.close()
    assert recorder.failed == 3  # track 1's new event, and publish of track 2's new and end events
    assert sorted(r["track_id"] for r in store.query()) == [1, 2, 3]  # track 1's row came with its end


def test_a_closed_store_fails_writes_without_stopping(tmp_path: Path) -> None:
    store = EventStore(tmp_path)
    recorder = EventRecorder(store, clock=Clock())
    store.close()
    recorder.start()
    recorder.on_result(*result(0, 1))
    recorder.close()
    assert recorder.recorded == 0 and recorder.failed >= 2  # ending leftovers at start, then both events


def test_start_ends_leftovers_and_prune_runs_by_the_clock(tmp_path: Path) -> None:
    clock = Clock(0.0)
    with_leftover = EventStore(tmp_path, retain_days=1.0, max_bytes=None)
    [leftover] = EventMachine().update(result(0, 1)[0], 0.0)
    with_leftover.record(leftover)  # as if the process died with the event open
    with_leftover.close()

    store = EventStore(tmp_path, retain_days=1.0, max_bytes=None)
    recorder = EventRecorder(store, machine=EventMachine(stale_s=None), clock=clock, prune_interval_s=3600.0)
    recorder.start()
    [left] = store.query()
    assert left["kind"] == "end" and left["end_time"] == 0.0
    clock.now = 2 * DAY  # the first event ended two days ago: the next prune removes it
    recorder.on_result(*result(1, 5))
    recorder.close()
    rows = store.query()
    assert [r["track_id"] for r in rows] == [5]
    store.close()


def test_on_result_from_many_threads(store: EventStore) -> None:
    recorder = EventRecorder(store, clock=Clock())
    recorder.start()

    def feed(stream: str) -> None:
        for i in range(30):
            recorder.on_result(*result(i, i % 3, stream=stream))

    threads = [threading.Thread(target=feed, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    recorder.close()
    assert recorder.failed == 0 and recorder.dropped == 0
    assert len(store.query()) == 12 and recorder.recorded == 24
