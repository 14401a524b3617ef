"""Pipeline: many sources through one inference backend, results to a callback.

Call order::

    backend = LocalBackend(CascadeConfig(stages="cascade"))
    with contextlib.closing(backend):
        pipeline = Pipeline(backend, on_result=print_it, max_frame_age_ms=500)
        pipeline.add(PyAVSource("cam1", "rtsp://..."))
        pipeline.start()
        pipeline.add(PyAVSource("cam2", "rtsp://..."))   # streams come and go while it runs
        pipeline.remove("cam1")
        pipeline.wait()                                   # until every finite source is done
        pipeline.stop()

:class:`~streamer.runtime.Runtime` builds one from config.
``on_result(result, frame)`` runs on a dispatcher thread, never on the
inference thread, so a slow callback costs results, not inference.
``on_end(stream_id)``, if given, runs on the dispatcher thread after the
last result of a stream whose source ended (or failed for good).
``on_frame(frame)``, if given, sees every decoded frame on its source's
thread, inferred or not (to stream the video itself); it must be quick.
``every_frame_wanted(stream_id)``, if given, says whether someone needs every
frame of a stream now; while it does not, an overloaded live decoder may skip
frames (see :mod:`streamer.sources.skipping`). With a
lossless source (a file played as fast as possible) delivery is lossless too:
every frame's result arrives, in order. One failing source never stops the
others: its state says FAILED and the rest go on.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from streamer.frames import Frame
from streamer.inference.backend import InferenceBackend, Request
from streamer.pipeline.dispatch import Dispatcher
from streamer.pipeline.loop import InferenceLoop
from streamer.results import FrameResult
from streamer.sources.base import Source, SourceState

__all__ = ["Pipeline"]

OnResult = Callable[[FrameResult, Frame], None]


class Pipeline:
    """Sources -> frame buffers -> one inference loop -> a result callback."""

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        on_result: OnResult,
        max_batch: int = 4,
        max_frame_age_ms: float | None = 500.0,
        lossless: bool = False,
        on_frame: Callable[[Frame], None] | None = None,
        on_end: Callable[[str], None] | None = None,
        every_frame_wanted: Callable[[str], bool] | None = None,
    ) -> None:
        def dispatch(item: tuple[FrameResult, Frame] | str) -> None:
            if isinstance(item, str):
                if on_end is not None:
                    on_end(item)
            else:
                on_result(*item)

        self._dispatcher: Dispatcher[tuple[FrameResult, Frame] | str] = Dispatcher(
            dispatch, lossless=lossless, name="pipeline-results"
        )
        self._loop = InferenceLoop(
            backend,
            lambda result, frame: self._dispatcher.put((result, frame)),
            max_batch=max_batch,
            max_frame_age_ms=max_frame_age_ms,
            ended=self._dispatcher.put,
        )
        self._sources: dict[str, Source] = {}
        self._on_frame = on_frame
        self._every_frame_wanted = every_frame_wanted
        self._lock = threading.Lock()
        self._started = False

    def add(self, source: Source, *, inference_fps: float | None = None) -> None:
        """Add a source (before or after :meth:`start`); its id must be new."""
        buffer = self._loop.add(
            source.stream_id, live=source.live, capacity=source.buffer.capacity, inference_fps=inference_fps
        )
        source.attach(buffer)
        source.on_frame = self._on_frame
        if (wanted := self._every_frame_wanted) is not None:
            stream_id = source.stream_id
            source.every_frame_wanted = lambda: wanted(stream_id)
        with self._lock:
            self._sources[source.stream_id] = source
        if self._started:
            source.start()

    def classify(self, requests: Sequence[Request]) -> concurrent.futures.Future[list[FrameResult]]:
        """One-off images, batched beside the streams; see :meth:`InferenceLoop.classify`."""
        return self._loop.classify(requests)

    @property
    def stream_ids(self) -> list[str]:
        """The streams added and not removed, finished ones included."""
        with self._lock:
            return list(self._sources)

    def remove(self, stream_id: str, timeout: float = 5.0) -> None:
        """Stop and forget a source; unknown ids are ignored."""
        with self._lock:
            source = self._sources.pop(stream_id, None)
        if source is not None:
            source.stop()
            self._loop.remove(stream_id)
            source.join(timeout)

    def pause(self, stream_id: str, paused: bool = True) -> bool:
        """Stop (or resume) inferring ``stream_id``; its frames still reach ``on_frame``. ``False``: no such stream."""
        return self._loop.pause(stream_id, paused)

    def start(self) -> None:
        """Start the inference loop and every source added so far."""
        self._started = True
        self._loop.start()
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            source.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every source has ended or failed and its frames are processed.

        Live sources reconnect forever, so with one of them this waits for
        ``timeout`` seconds (``None``: forever). ``True`` if all are done.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            with self._lock:
                sources = list(self._sources.values())
            finished = all(s.state in (SourceState.ENDED, SourceState.FAILED) for s in sources)
            if finished and not self._loop.stream_ids:
                return True
            time.sleep(0.05)
        return False

    def stats(self) -> list[dict[str, Any]]:
        """Per stream: the source's state and counters, plus inferred frames and the last frame age."""
        counters = self._loop.counters()
        with self._lock:
            sources = list(self._sources.values())
        out = []
        for source in sources:
            row = source.stats().to_dict()
            seen = counters.get(source.stream_id)
            row["inferred"] = seen.inferred if seen else 0
            row["last_age_ms"] = round(seen.last_age_ms, 1) if seen else None
            row["detect"] = not seen.paused if seen else True
            out.append(row)
        return out

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every source and the loop, then deliver the results already made."""
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            source.stop()
        for source in sources:
            source.join(timeout)
        self._loop.stop(timeout)
        self._dispatcher.close(timeout)

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
