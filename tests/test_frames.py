"""FrameBuffer on plain items, with real threads."""

from __future__ import annotations

import threading
import time

import pytest

from streamer.frames import FrameBuffer


def test_live_drops_the_oldest_and_never_blocks() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(3)
    for i in range(10):
        assert buffer.put(i)  # a full live buffer takes it at once: the oldest goes
    assert (len(buffer), buffer.dropped, buffer.put_count) == (3, 7, 10)
    assert [buffer.get(), buffer.get(), buffer.get(), buffer.get()] == [7, 8, 9, None]


def test_take_newest_counts_the_skipped() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(5)
    for i in range(4):
        buffer.put(i)
    assert buffer.take_newest() == 3
    assert buffer.dropped == 3 and len(buffer) == 0
    assert buffer.take_newest() is None


def test_lossless_applies_back_pressure_and_keeps_every_item() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(2, lossless=True)
    received: list[int] = []

    def consume() -> None:
        while (item := buffer.get(timeout=None)) is not None:
            received.append(item)
            time.sleep(0.002)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(100):
        assert buffer.put(i, timeout=5)
        assert len(buffer) <= 2
    buffer.close()
    consumer.join(10)
    assert received == list(range(100)) and buffer.dropped == 0


def test_lossless_put_times_out_when_nobody_reads() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(1, lossless=True)
    assert buffer.put(1)
    assert not buffer.put(2, timeout=0.1)
    assert len(buffer) == 1 and buffer.get() == 1, "nothing was replaced"


def test_close_wakes_everyone_and_refuses_more() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(1, lossless=True)
    buffer.put(1)
    results: list[object] = []
    blocked = threading.Thread(target=lambda: results.append(buffer.put(2, timeout=None)))
    blocked.start()
    time.sleep(0.05)
    buffer.close()
    blocked.join(2)
    assert results == [False] and not blocked.is_alive()
    assert not buffer.drained, "the buffered item is still there"
    assert buffer.get() == 1 and buffer.drained
    assert buffer.get(timeout=None) is None, "a closed, empty buffer does not block"


def test_wakeup_event_is_set_by_put_and_close() -> None:
    wakeup = threading.Event()
    buffer: FrameBuffer[int] = FrameBuffer(2, wakeup=wakeup)
    buffer.put(1)
    assert wakeup.is_set()
    wakeup.clear()
    buffer.close()
    assert wakeup.is_set()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        FrameBuffer(0)


def test_peek_shows_what_get_and_take_newest_would_give_without_taking_it() -> None:
    buffer: FrameBuffer[int] = FrameBuffer(3)
    assert buffer.peek(newest=True) is None and buffer.peek(newest=False) is None
    for item in (1, 2, 3):
        buffer.put(item)
    assert (buffer.peek(newest=True), buffer.peek(newest=False), len(buffer)) == (3, 1, 3)
    assert buffer.take_newest() == 3 and buffer.dropped == 2
