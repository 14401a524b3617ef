"""The inference loop with a stand-in model (a function over frames): batching, fairness, age, caps."""

from __future__ import annotations

import threading
import time

import numpy as np

from streamer.pipeline.loop import InferenceLoop
from streamer.results import FrameResult
from streamer.sources.base import Frame


def _frame(stream: str, index: int, *, at: float | None = None) -> Frame:
    return Frame(stream, index, index * 10.0, np.zeros((4, 4, 3), np.uint8), time.monotonic() if at is None else at)


class Recorder:
    """A stand-in ``process`` that records batch sizes and takes ``delay`` seconds per batch."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[int] = []
        self.results: list[tuple[FrameResult, Frame]] = []
        self.lock = threading.Lock()

    def process(self, images: list[np.ndarray]) -> list[FrameResult]:
        self.batches.append(len(images))
        time.sleep(self.delay)
        return [FrameResult(4, 4, timings_ms={"inference": self.delay * 1000}) for _ in images]

    def deliver(self, result: FrameResult, frame: Frame) -> None:
        with self.lock:
            self.results.append((result, frame))


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_results_are_stamped_with_stream_frame_pts_and_timings() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec.process, rec.deliver)
    buffer = loop.add("cam", live=False, capacity=8)
    loop.start()
    for i in range(5):
        buffer.put(_frame("cam", i))
    buffer.close()
    _wait_for(lambda: len(rec.results) == 5)
    loop.stop()
    assert [r.frame for r, _ in rec.results] == [0, 1, 2, 3, 4], "lossless streams keep order"
    result = rec.results[-1][0]
    assert (result.stream, result.pts_ms) == ("cam", 40.0)
    assert set(result.timings_ms) == {"decode", "queue", "inference", "age"}
    assert result.timings_ms["age"] >= result.timings_ms["queue"] >= 0
    assert loop.stream_ids == [], "a drained stream leaves by itself"


def test_batches_across_streams_up_to_max_batch() -> None:
    rec = Recorder(delay=0.02)
    loop = InferenceLoop(rec.process, rec.deliver, max_batch=3)
    buffers = [loop.add(f"s{i}", capacity=1) for i in range(5)]
    for i, buffer in enumerate(buffers):
        buffer.put(_frame(f"s{i}", 0))
    loop.start()
    _wait_for(lambda: len(rec.results) == 5)
    loop.stop()
    assert rec.batches[:2] == [3, 2]


def test_frames_older_than_max_age_are_dropped_before_inference() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec.process, rec.deliver, max_frame_age_ms=100)
    buffer = loop.add("cam")
    buffer.put(_frame("cam", 0, at=time.monotonic() - 1.0))  # a second old
    loop.start()
    _wait_for(lambda: loop.counters()["cam"].too_old == 1)
    buffer.put(_frame("cam", 1))
    _wait_for(lambda: len(rec.results) == 1)
    loop.stop()
    assert [r.frame for r, _ in rec.results] == [1]
    assert buffer.dropped == 1


def test_a_failing_batch_is_logged_and_the_loop_goes_on() -> None:
    calls = {"n": 0}
    rec = Recorder()

    def flaky(images: list[np.ndarray]) -> list[FrameResult]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("model crashed")
        return rec.process(images)

    loop = InferenceLoop(flaky, rec.deliver)
    buffer = loop.add("cam", live=False)
    loop.start()
    buffer.put(_frame("cam", 0))
    _wait_for(lambda: loop.errors == 1)
    buffer.put(_frame("cam", 1))
    _wait_for(lambda: len(rec.results) == 1)
    loop.stop()
    assert rec.results[0][0].frame == 1
