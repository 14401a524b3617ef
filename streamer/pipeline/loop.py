"""The inference loop: the one thread that feeds the backend.

Each round it takes one frame from every ready stream (the newest of a live
stream, the next of a lossless one), starting with a different stream each
round so none is starved, up to ``max_batch`` frames; drops live frames older
than ``max_frame_age_ms`` before inference (the decisions are
:func:`streamer.inference.scheduler.plan_batch`'s, a pure function); submits
the batch to the :class:`~streamer.inference.backend.InferenceBackend`,
keeping up to ``in_flight`` batches there at once (``None``: as many as the
backend says are worth it); stamps each result with its
stream, frame index, ``pts_ms`` and timings (decode, queue, preprocess,
inference, age); and hands it, in submission order, to
``deliver(result, frame)``. ``inference_fps`` caps how often one stream is
inferred. Streams come and go while it runs; a drained stream (closed and
empty) leaves by itself.

One-off images (:meth:`InferenceLoop.classify`, the server's REST and
WebSocket classify requests) wait in a queue that the scheduler sees as one
more lossless stream, so they share batches with the streams instead of
racing them for the models; when its turn comes, the oldest request goes in
with as many waiting ones as fit in ``max_batch``, so concurrent requests
share a batch too.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from streamer.frames import Frame, FrameBuffer
from streamer.inference.backend import InferenceBackend, Request
from streamer.inference.scheduler import StreamState, plan_batch
from streamer.results import FrameResult

__all__ = ["InferenceLoop", "StreamCounters"]

log = logging.getLogger(__name__)

Deliver = Callable[[FrameResult, Frame], None]
Future = concurrent.futures.Future

#: the scheduler's name for the queue of one-off images; not a valid stream id (it starts with NUL).
JOBS = "\0classify"


@dataclass
class StreamCounters:
    """Per stream, as seen by the loop."""

    inferred: int = 0
    too_old: int = 0
    last_age_ms: float = 0.0
    paused: bool = False  # inference paused (``detect OFF``): its frames pass by uninferred


@dataclass
class _Stream:
    buffer: FrameBuffer[Frame]
    interval: float  # seconds between inferences, 0: no cap
    counters: StreamCounters
    next_due: float = 0.0
    removed: bool = False  # by remove(): its results still in flight are not delivered


@dataclass
class _Job:
    """One-off images waiting for the models; ``future`` gets their results."""

    requests: list[Request]
    queued_at: float
    future: Future[list[FrameResult]] = field(default_factory=Future)


@dataclass
class _Batch:
    """What was submitted in one round: the streams' frames, then the jobs' images."""

    frames: list[tuple[_Stream, Frame]]
    jobs: list[_Job]
    started: float
    future: Future[list[FrameResult]]
    ended: list[str] = field(default_factory=list)  # streams whose last results are in this batch or before


class InferenceLoop:
    """Batch frames from many streams through ``backend``; see the module docstring."""

    def __init__(
        self,
        backend: InferenceBackend,
        deliver: Deliver,
        *,
        max_batch: int = 4,
        max_frame_age_ms: float | None = None,
        in_flight: int | None = None,
        ended: Callable[[str], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        in_flight = backend.in_flight if in_flight is None else in_flight
        if in_flight < 1:
            raise ValueError(f"in_flight must be >= 1, got {in_flight}")
        self._backend = backend
        self._deliver = deliver
        self._ended = ended
        self._gone: list[str] = []  # finished streams not yet announced
        self.max_batch = max_batch
        self.max_frame_age_ms = max_frame_age_ms
        self.in_flight = in_flight
        self._jobs: deque[_Job] = deque()
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
        """Forget a stream (its buffer is closed, its results in flight are not delivered); unknown ids are
        ignored."""
        with self._lock:
            stream = self._streams.pop(stream_id, None)
            self._counters.pop(stream_id, None)
        if stream is not None:
            stream.removed = True
            stream.buffer.close()
            self._backend.forget(stream_id)

    def classify(self, requests: Sequence[Request]) -> Future[list[FrameResult]]:
        """Queue one-off images for the next batches; the future gives one result per request.

        Before :meth:`start` or after :meth:`stop` they wait until the loop runs.
        """
        job = _Job(list(requests), time.monotonic())
        if not job.requests:
            job.future.set_result([])
            return job.future
        with self._lock:
            self._jobs.append(job)
        self.wakeup.set()
        return job.future

    def pause(self, stream_id: str, paused: bool = True) -> bool:
        """Stop (or resume) inferring a stream: a live stream's frames pass by uninferred, a file waits.
        ``False`` if there is no such stream."""
        with self._lock:
            counters = self._counters.get(stream_id)
            if counters is None:
                return False
            counters.paused = paused
        self.wakeup.set()
        return True

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
        """Stop after the batches in flight are delivered; waits at most ``timeout`` seconds.
        One-off images still queued get a :class:`RuntimeError`."""
        self._stopping.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            jobs, self._jobs = list(self._jobs), deque()
        for job in jobs:
            job.future.set_exception(RuntimeError("the inference loop stopped before these images were run"))

    def _collect(self) -> tuple[list[tuple[_Stream, Frame]], list[_Job]]:
        """One frame from each ready stream and maybe jobs, as :func:`plan_batch` decides;
        too-old live frames dropped."""
        now = time.monotonic()
        with self._lock:
            ids = list(self._streams)
            streams = [self._streams[k] for k in ids]
            gone = [k for k, s in zip(ids, streams, strict=True) if s.buffer.drained]
            for key in gone:
                del self._streams[key]
            self._gone += gone
            live = [(k, s) for k, s in zip(ids, streams, strict=True) if k not in gone]
            paused = [s for _, s in live if s.counters.paused]
            live = [(k, s) for k, s in live if not s.counters.paused]
            first_job = self._jobs[0].queued_at if self._jobs else None
        for stream in paused:  # a live one keeps decoding (its video still plays); a file waits
            if not stream.buffer.lossless:
                while stream.buffer.take_newest() is not None:
                    pass
        states = [StreamState(JOBS, first_job, lossless=True)]
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
        take_jobs = False
        for key in plan.infer:
            if key == JOBS:
                take_jobs = True
                continue
            stream = by_id[key]
            frame = stream.buffer.get() if stream.buffer.lossless else stream.buffer.take_newest()
            if frame is None:  # removed meanwhile
                continue
            stream.next_due = plan.due[key]
            batch.append((stream, frame))
        return batch, self._take_jobs(self.max_batch - len(batch)) if take_jobs else []

    def _take_jobs(self, room: int) -> list[_Job]:
        """The oldest job, and more while their images fit in ``room`` (concurrent requests share a batch)."""
        jobs: list[_Job] = []
        with self._lock:
            while self._jobs and (not jobs or len(self._jobs[0].requests) <= room):
                job = self._jobs.popleft()
                room -= len(job.requests)
                jobs.append(job)
        return jobs

    def _submit(self) -> _Batch | None:
        frames, jobs = self._collect()
        if not frames and not jobs:
            return None
        requests = [Request(frame.stream_id, frame.image, pts_ms=frame.pts_ms) for _, frame in frames]
        for job in jobs:
            requests += job.requests
        started = time.monotonic()
        try:
            future = self._backend.submit(requests)
        except Exception as exc:  # the backend is closed or broken: fail this batch, keep the loop
            future = Future()
            future.set_exception(exc)
        return _Batch(frames, jobs, started, future)

    def _run(self) -> None:
        pending: deque[_Batch] = deque()
        while not self._stopping.is_set() or pending:
            self.wakeup.clear()
            batch = None if self._stopping.is_set() or len(pending) >= self.in_flight else self._submit()
            if batch is not None:
                pending.append(batch)
            if self._gone:  # a finished stream is announced after the batches that hold its last frames
                gone, self._gone = self._gone, []
                if pending:
                    pending[-1].ended += gone
                else:
                    self._end(gone)
            if batch is not None:
                continue
            if pending:
                self._finish(pending.popleft())
                continue
            self.wakeup.wait(0.05)

    def _end(self, streams: list[str]) -> None:
        """Finished streams: their hooks forgotten (in order with the batches), then announced."""
        for stream_id in streams:
            self._backend.forget(stream_id)
            if self._ended is not None:
                try:
                    self._ended(stream_id)
                except Exception:
                    self.errors += 1
                    log.exception("announcing the end of stream %s failed", stream_id)

    def _finish(self, batch: _Batch) -> None:
        """Wait for a batch's results and deliver them: the streams' frames, then each job's future, then the
        streams that ended."""
        try:
            self._deliver_batch(batch)
        finally:
            self._end(batch.ended)

    def _deliver_batch(self, batch: _Batch) -> None:
        try:
            results = batch.future.result()
        except Exception as exc:
            self.errors += 1
            log.error(
                "inference failed on a batch of %d frames%s; going on: %s",
                len(batch.frames),
                f" and {len(batch.jobs)} classify request(s)" if batch.jobs else "",
                exc,
                exc_info=exc,
            )
            for job in batch.jobs:
                job.future.set_exception(exc)
            return
        count = len(batch.frames)
        start = count
        for job in batch.jobs:
            job.future.set_result(results[start : start + len(job.requests)])
            start += len(job.requests)
        started = batch.started
        for (stream, frame), result in zip(batch.frames, results[:count], strict=True):
            if stream.removed:
                continue
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
