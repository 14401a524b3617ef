"""The inference loop: the one thread that owns the models.

Each round it takes one frame from every ready stream (the newest of a live
stream, the next of a lossless one), starting with a different stream each
round so none is starved, up to ``max_batch`` frames; drops live frames older
than ``max_frame_age_ms`` before inference (the decisions are
:func:`streamer.inference.scheduler.plan_batch`'s, a pure function); runs the batch in one call of
``process``; stamps each result with its stream, frame index, ``pts_ms`` and
timings (decode, queue, preprocess, inference, age); and hands it to
``deliver(result, frame)``. ``inference_fps`` caps how often one stream is
inferred. Streams come and go while it runs; a drained stream (closed and
empty) leaves by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from streamer.inference.scheduler import StreamState, plan_batch
from streamer.pipeline.framebuffer import FrameBuffer
from streamer.results import FrameResult
from streamer.sources.base import Frame

__all__ = ["InferenceLoop", "StreamCounters"]

log = logging.getLogger(__name__)

Process = Callable[[list[np.ndarray]], list[FrameResult]]
Deliver = Callable[[FrameResult, Frame], None]


@dataclass
class StreamCounters:
    """Per stream, as seen by the loop."""

    inferred: int = 0
    too_old: int = 0
    last_age_ms: float = 0.0


@dataclass
class _Stream:
    buffer: FrameBuffer[Frame]
    interval: float  # seconds between inferences, 0: no cap
    counters: StreamCounters
    next_due: float = 0.0


class InferenceLoop:
    """Batch frames from many streams through ``process``; see the module docstring."""

    def __init__(
        self,
        process: Process,
        deliver: Deliver,
        *,
        max_batch: int = 4,
        max_frame_age_ms: float | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._process = process
        self._deliver = deliver
        self.max_batch = max_batch
        self.max_frame_age_ms = max_frame_age_ms
        self.wakeup = threading.Event()
        self._streams: dict[str, _Stream] = {}
        self._counters: dict[str, StreamCounters] = {}
        self._lock = threading.Lock()
        self._turn = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0

    def add(
        self, stream_id: str, *, live: bool = True, capacity: int = 2, inference_fps: float | None = None
    ) -> FrameBuffer[Frame]:
        """Register a stream; returns the buffer its source must fill."""
        buffer: FrameBuffer[Frame] = FrameBuffer(capacity, lossless=not live, wakeup=self.wakeup)
        interval = 1.0 / inference_fps if inference_fps else 0.0
        with self._lock:
            if stream_id in self._streams:
                raise ValueError(f"stream {stream_id!r} is already running; pick another id")
            counters = self._counters[stream_id] = StreamCounters()
            self._streams[stream_id] = _Stream(buffer, interval, counters)
        return buffer

    def remove(self, stream_id: str) -> None:
        """Forget a stream (its buffer is closed); unknown ids are ignored."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
            self._counters.pop(stream_id, None)
        if stream is not None:
            stream.buffer.close()

    def counters(self) -> dict[str, StreamCounters]:
        """Per stream ever added and not removed, finished ones included."""
        with self._lock:
            return {k: replace(c) for k, c in self._counters.items()}

    @property
    def stream_ids(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the batch in flight; waits at most ``timeout`` seconds."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _collect(self) -> list[tuple[_Stream, Frame]]:
        """One frame from each ready stream, as :func:`plan_batch` decides; too-old live frames dropped."""
        now = time.monotonic()
        with self._lock:
            ids = list(self._streams)
            streams = [self._streams[k] for k in ids]
            gone = [k for k, s in zip(ids, streams, strict=True) if s.buffer.drained]
            for key in gone:
                del self._streams[key]
            live = [(k, s) for k, s in zip(ids, streams, strict=True) if k not in gone]
        states = []
        for key, stream in live:
            waiting = stream.buffer.peek(newest=not stream.buffer.lossless)
            decoded_at = None if waiting is None else waiting.decoded_at
            states.append(StreamState(key, decoded_at, stream.buffer.lossless, stream.interval, stream.next_due))
        plan = plan_batch(
            states, now, turn=self._turn, max_batch=self.max_batch, max_frame_age_ms=self.max_frame_age_ms
        )
        self._turn = plan.turn
        by_id = dict(live)
        for key in plan.too_old:
            stream = by_id[key]
            frame = stream.buffer.take_newest()
            if frame is None:
                continue
            if self.max_frame_age_ms is not None and (now - frame.decoded_at) * 1000.0 <= self.max_frame_age_ms:
                stream.buffer.put(frame)  # a fresh frame came since the plan: keep it for the next round
                continue
            stream.buffer.count_dropped()
            stream.counters.too_old += 1
        batch: list[tuple[_Stream, Frame]] = []
        for key in plan.infer:
            stream = by_id[key]
            frame = stream.buffer.get() if stream.buffer.lossless else stream.buffer.take_newest()
            if frame is None:  # removed meanwhile
                continue
            stream.next_due = plan.due[key]
            batch.append((stream, frame))
        return batch

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.wakeup.clear()
            batch = self._collect()
            if not batch:
                self.wakeup.wait(0.05)
                continue
            started = time.monotonic()
            try:
                results = self._process([frame.image for _, frame in batch])
            except Exception:
                self.errors += 1
                log.exception("inference failed on a batch of %d frames; going on", len(batch))
                continue
            for (stream, frame), result in zip(batch, results, strict=True):
                delivered = time.monotonic()
                timings = {
                    "decode": frame.decode_ms,
                    "queue": (started - frame.decoded_at) * 1000.0,
                    **result.timings_ms,
                    "age": (delivered - frame.decoded_at) * 1000.0,
                }
                stream.counters.inferred += 1
                stream.counters.last_age_ms = timings["age"]
                stamped = replace(
                    result, stream=frame.stream_id, frame=frame.index, pts_ms=frame.pts_ms, timings_ms=timings
                )
                try:
                    self._deliver(stamped, frame)
                except Exception:
                    self.errors += 1
                    log.exception("delivering a result of stream %s failed", frame.stream_id)
