"""The inference loop with a stand-in backend (no models): batching, order, age, one-off images, failures.

The scheduler's decisions are tested on a fake clock in tests/inference; real
models run through the loop in tests/pipeline/test_pipeline.py.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from streamer.frames import Frame
from streamer.inference.backend import ModelInfo, Request
from streamer.inference.cascade import CascadeConfig
from streamer.pipeline.loop import InferenceLoop
from streamer.results import FrameResult


def _frame(stream: str, index: int, *, at: float | None = None) -> Frame:
    return Frame(stream, index, index * 10.0, np.zeros((4, 4, 3), np.uint8), time.monotonic() if at is None else at)


class Recorder:
    """A stand-in backend that records each batch's requests and answers on its own thread;
    ``fail`` decides, per batch number, whether that batch raises."""

    def __init__(self, fail: Callable[[int], bool] = lambda n: False) -> None:
        self.fail = fail
        self.batches: list[list[Request]] = []
        self.results: list[tuple[FrameResult, Frame]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()  # cleared: batches wait (to hold several in flight)
        self.gate.set()
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.provider = "stand-in"
        self.in_flight = 2

    def _run(self, number: int, requests: Sequence[Request]) -> list[FrameResult]:
        self.gate.wait(5)
        if self.fail(number):
            raise RuntimeError("model crashed")
        return [FrameResult(4, 4, timings_ms={"inference": 1.0}, stream="raw") for _ in requests]

    def submit(self, requests: Sequence[Request]) -> concurrent.futures.Future[list[FrameResult]]:
        with self.lock:
            self.batches.append(list(requests))
            number = len(self.batches)
        return self.pool.submit(self._run, number, requests)

    def run(self, requests: Sequence[Request]) -> list[FrameResult]:
        return self.submit(requests).result()

    def models(self) -> list[ModelInfo]:
        return []

    def reload(self, config: CascadeConfig) -> list[ModelInfo]:
        return []

    def forget(self, stream_id: str) -> None:
        pass

    def close(self) -> None:
        self.pool.shutdown()

    def deliver(self, result: FrameResult, frame: Frame) -> None:
        with self.lock:
            self.results.append((result, frame))


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_results_are_stamped_with_stream_frame_pts_and_timings() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec, rec.deliver)
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
    rec = Recorder()
    loop = InferenceLoop(rec, rec.deliver, max_batch=3)
    buffers = [loop.add(f"s{i}", capacity=1) for i in range(5)]
    for i, buffer in enumerate(buffers):
        buffer.put(_frame(f"s{i}", 0))
    loop.start()
    _wait_for(lambda: len(rec.results) == 5)
    loop.stop()
    assert [len(b) for b in rec.batches[:2]] == [3, 2]


def test_frames_older_than_max_age_are_dropped_before_inference() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec, rec.deliver, max_frame_age_ms=100)
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
    rec = Recorder(fail=lambda n: n == 1)
    loop = InferenceLoop(rec, rec.deliver)
    buffer = loop.add("cam", live=False)
    loop.start()
    buffer.put(_frame("cam", 0))
    _wait_for(lambda: loop.errors == 1)
    buffer.put(_frame("cam", 1))
    _wait_for(lambda: len(rec.results) == 1)
    loop.stop()
    assert rec.results[0][0].frame == 1


def test_several_batches_in_flight_deliver_in_submission_order() -> None:
    rec = Recorder()
    rec.gate.clear()  # the backend holds every batch until released
    loop = InferenceLoop(rec, rec.deliver, max_batch=1, in_flight=3)
    buffer = loop.add("file", live=False, capacity=8)
    for i in range(6):
        buffer.put(_frame("file", i))
    buffer.close()
    loop.start()
    _wait_for(lambda: len(rec.batches) == 3)
    assert len(rec.batches) == 3 and not rec.results, "three batches submitted before any result came back"
    rec.gate.set()
    _wait_for(lambda: len(rec.results) == 6)
    loop.stop()
    assert [r.frame for r, _ in rec.results] == [0, 1, 2, 3, 4, 5]


def test_the_backend_says_how_many_batches_to_keep_in_flight() -> None:
    rec = Recorder()
    rec.gate.clear()
    rec.in_flight = 1  # as LocalBackend on the CPU, where two batches would share the cores
    loop = InferenceLoop(rec, rec.deliver, max_batch=1)
    buffer = loop.add("file", live=False, capacity=8)
    for i in range(4):
        buffer.put(_frame("file", i))
    buffer.close()
    loop.start()
    _wait_for(lambda: len(rec.batches) == 1)
    time.sleep(0.2)  # room for a second submission, which must not come
    assert len(rec.batches) == 1 and loop.in_flight == 1
    rec.gate.set()
    _wait_for(lambda: len(rec.results) == 4)
    loop.stop()
    assert [r.frame for r, _ in rec.results] == [0, 1, 2, 3]


def test_one_off_images_share_batches_with_the_streams() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec, rec.deliver, max_batch=4)
    buffers = [loop.add(f"cam{i}", live=False, capacity=4) for i in range(2)]
    for i, buffer in enumerate(buffers):
        buffer.put(_frame(f"cam{i}", 0))
    image = np.zeros((8, 8, 3), np.uint8)
    job = loop.classify([Request("", image), Request("", image)])
    loop.start()
    results = job.result(timeout=5)
    _wait_for(lambda: len(rec.results) == 2)
    loop.stop()
    assert len(results) == 2
    first = rec.batches[0]
    assert [r.stream_id for r in first] == ["cam0", "cam1", "", ""], "one batch: the streams' frames, then the job"
    assert sorted(r.stream for r, _ in rec.results) == ["cam0", "cam1"]


def test_concurrent_one_off_requests_share_a_batch() -> None:
    rec = Recorder()
    loop = InferenceLoop(rec, rec.deliver, max_batch=4)
    image = np.zeros((8, 8, 3), np.uint8)
    jobs = [loop.classify([Request("", image)] * size) for size in (1, 2, 1, 3)]
    loop.start()
    answers = [job.result(timeout=5) for job in jobs]
    loop.stop()
    assert [len(a) for a in answers] == [1, 2, 1, 3]
    assert [len(b) for b in rec.batches] == [4, 3], "the first three requests fill a batch; the fourth, too big, waits"


def test_one_off_images_get_the_error_of_their_batch_and_queued_ones_are_failed_on_stop() -> None:
    rec = Recorder(fail=lambda n: True)
    loop = InferenceLoop(rec, rec.deliver)
    job = loop.classify([Request("", np.zeros((8, 8, 3), np.uint8))])
    loop.start()
    with pytest.raises(RuntimeError, match="model crashed"):
        job.result(timeout=5)
    loop.stop()
    late = loop.classify([Request("", np.zeros((8, 8, 3), np.uint8))])
    loop.stop()
    with pytest.raises(RuntimeError, match="stopped before these images were run"):
        late.result(timeout=5)
    assert loop.classify([]).result(timeout=1) == []
