"""Annotating one video file: decode, inference and encode overlapped on three threads.

::

    decode thread ──queue──> inference thread ──queue──> encode thread
    VideoReader.items()      batches of frames            draw_result, VideoWriter,
    (frames + audio          through backend.submit       JSONL/CSV sinks, progress
     packets, in order)      (audio passes through)

Each stage runs while the others do (PyAV and ONNX Runtime release the GIL),
so the whole goes about as fast as the slowest stage rather than the sum of
them; decoding and encoding run at a lower CPU priority, in the gaps
inference leaves (:func:`yield_to_inference`). Queues are bounded, so memory stays flat however long the file.
A backend built with the tracker's hooks (as ``streamer annotate`` builds
it when it detects) tracks the objects: ``stream_id`` is the file's stream.
Nothing is dropped: every frame reaches the encoder in order. With
``every=N`` only every N-th frame is classified; the frames between show the
last result. Call order::

    reader = VideoReader(path)
    outcome = annotate(backend, reader, stream_id="clip.mp4", writer=writer, sinks=[jsonl])
    writer.close()
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import av

from streamer.annotation.progress import Progress
from streamer.annotation.reader import VideoItem, VideoReader
from streamer.frames import Frame
from streamer.inference.backend import InferenceBackend, Request
from streamer.results import FrameResult
from streamer.sinks.video import VideoWriter
from streamer.vision.draw import draw_result

__all__ = ["Outcome", "ResultSink", "annotate"]

_END = object()  # closes a queue
_POLL = 0.1  # seconds between looks at the stop flag while a queue is full or empty


#: the nice value of the decoding and encoding threads (and the encoder's own threads, which inherit it)
BACKGROUND_NICE = 10


def yield_to_inference() -> None:
    """Lower the calling thread's CPU priority to :data:`BACKGROUND_NICE`, never raise it (Linux; elsewhere
    nothing).

    The models' sessions split each operation over every core and wait for the
    slowest part: a decoder or encoder thread that takes a core in the middle
    stalls the whole operation. At a lower priority they run in the gaps
    inference leaves, and a file has no clock to fall behind. On 2 cores,
    ``bench_annotate``'s job went from 0.75 to 0.83 of its slowest stage.
    """
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):
            thread = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, thread, max(os.getpriority(os.PRIO_PROCESS, thread), BACKGROUND_NICE))


class ResultSink(Protocol):
    def write(self, result: FrameResult) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What one annotation run did. ``stopped`` is ``None`` when the whole span was read."""

    stream_id: str
    frames: int
    inferred: int
    audio_packets: int
    expected: int | None
    stopped: str | None
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def _put(box: queue.Queue[Any], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            box.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(box: queue.Queue[Any], stop: threading.Event) -> Any:
    while not stop.is_set():
        try:
            return box.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _END


def annotate(
    backend: InferenceBackend,
    reader: VideoReader,
    *,
    stream_id: str,
    writer: VideoWriter | None = None,
    sinks: Sequence[ResultSink] = (),
    every: int = 1,
    start: float | None = None,
    end: float | None = None,
    batch: int = 4,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    watchers: Sequence[Callable[[FrameResult, Frame], None]] = (),
) -> Outcome:
    """Classify the frames of ``reader`` in [start, end) and write them; see the module docstring.

    Results go to each of ``sinks`` (frame order), frames with their boxes to
    ``writer`` (``None``: results only). With ``start`` the written video
    begins at 0; results keep the source's ``pts_ms``. Setting ``stop`` (or a
    ``KeyboardInterrupt`` here) ends the run early; the caller then discards
    the output. An exception in any stage stops the others and is raised here.
    ``watchers`` see each result with its frame, as a runtime's subscribers
    do (the event recorder), on the encoding thread, in frame order.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    stop = stop or threading.Event()
    decoded: queue.Queue[Any] = queue.Queue(maxsize=2 * batch + 4)
    inferred: queue.Queue[Any] = queue.Queue(maxsize=2 * batch + 4)
    counts = {"frames": 0, "inferred": 0, "audio": 0}
    errors: list[BaseException] = []
    began = time.monotonic()

    def decode() -> None:
        for item in reader.items(start, end):
            if not _put(decoded, item, stop):
                return
        _put(decoded, _END, stop)

    def infer() -> None:
        pending: list[VideoItem | av.Packet[Any]] = []
        chosen: list[VideoItem] = []
        while True:
            item = _get(decoded, stop)
            if item is not _END:
                pending.append(item)
                if isinstance(item, VideoItem) and item.index % every == 0:
                    chosen.append(item)
            if item is _END or len(chosen) >= batch or len(pending) >= 8 * batch:
                requests = [Request(stream_id, c.image, pts_ms=c.seconds * 1000.0) for c in chosen]
                results = backend.submit(requests).result() if chosen else []
                stamped = {
                    c.index: replace(
                        r,
                        stream=stream_id,
                        frame=c.index,
                        pts_ms=round(c.seconds * 1000.0, 3),
                        timings_ms={"decode": c.decode_ms, **r.timings_ms},
                    )
                    for c, r in zip(chosen, results, strict=True)
                }
                for entry in pending:
                    result = stamped.get(entry.index) if isinstance(entry, VideoItem) else None
                    if not _put(inferred, (entry, result), stop):
                        return
                counts["inferred"] += len(chosen)
                pending, chosen = [], []
            if item is _END:
                _put(inferred, _END, stop)
                return

    def encode() -> None:
        last: FrameResult | None = None
        video_shift = round(start / reader.time_base) if start else 0
        while (entry := _get(inferred, stop)) is not _END:
            item, result = entry
            if not isinstance(item, VideoItem):
                if writer is not None:
                    shift = round(start / item.time_base) if start and item.time_base else 0
                    writer.write_audio(item, shift)
                counts["audio"] += 1
                continue
            if result is not None:
                last = result
                for sink in sinks:
                    sink.write(result)
                if watchers:
                    frame = Frame(stream_id, item.index, result.pts_ms, item.image, time.monotonic())
                    for watch in watchers:
                        watch(result, frame)
            if writer is not None:
                writer.write(item.image if last is None else draw_result(item.image, last), item.pts - video_shift)
            counts["frames"] += 1
            if progress is not None:
                progress.update(counts["frames"])

    def guarded(stage: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            if stage is not infer:
                yield_to_inference()
            try:
                stage()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    threads = [
        threading.Thread(target=guarded(stage), name=f"annotate-{stage.__name__}", daemon=True)
        for stage in (decode, infer, encode)
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(_POLL)
    except BaseException:
        stop.set()
        for thread in threads:
            thread.join(5.0)
        raise
    if errors:
        raise errors[0]
    if progress is not None:
        progress.finish()
    return Outcome(
        stream_id=stream_id,
        frames=counts["frames"],
        inferred=counts["inferred"],
        audio_packets=counts["audio"],
        expected=reader.expected_frames(start, end),
        stopped=reader.stopped,
        seconds=time.monotonic() - began,
    )
