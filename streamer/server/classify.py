"""One-off images to classify, from ``classify`` messages on /ws and ``POST /api/classify``.

Both front doors use one :class:`ClassifyService`; the runtime's inference
loop schedules the images beside the streams. Call order (on the server's
event loop)::

    service = ClassifyService(runtime, max_pending=4, limits=limits)
    with service.admit():                     # Busy when max_pending requests already run or wait
        answers = [await service.classify(data, f"record {i}") for i, data in enumerate(images)]
    service.close()

A request's records are answered one after another, each decoded (on a
worker thread, its size checked from the header before any pixel is
decoded) and then classified; a record that fails gets its own error and
the others are still answered. At most :data:`DECODED_AT_ONCE` decoded
images are alive at any time, whatever the number of requests, which bounds
the memory classify requests can take.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamer.errors import ImageError, StreamerError
from streamer.results import FrameResult
from streamer.sources.images import ImageLimits, decode_image

if TYPE_CHECKING:
    from streamer.cluster.front import ClusterRuntime
    from streamer.runtime import Runtime

__all__ = ["DECODED_AT_ONCE", "Answer", "Busy", "ClassifyService"]

log = logging.getLogger(__name__)

#: Decoded images alive at once across every classify request (one being decoded, one being classified).
DECODED_AT_ONCE = 2


class Busy(StreamerError):
    """``max_pending`` classify requests already run or wait; the message says so."""


@dataclass(frozen=True)
class Answer:
    """One image's outcome: its result, or ``status`` (4xx: the image, 5xx: the server) and ``error``."""

    result: FrameResult | None
    status: int = 200
    error: str | None = None
    seconds: float = 0.0


class ClassifyService:
    """Admits classify requests (at most ``max_pending`` at once) and answers their images through ``runtime``."""

    def __init__(self, runtime: Runtime | ClusterRuntime, *, max_pending: int, limits: ImageLimits) -> None:
        self.runtime = runtime
        self.max_pending = max_pending
        self.limits = limits
        self.pending = 0  # requests admitted and not yet answered; touched on the event loop only
        self._decoded = asyncio.Semaphore(DECODED_AT_ONCE)
        self._pool = concurrent.futures.ThreadPoolExecutor(DECODED_AT_ONCE, thread_name_prefix="decode")

    def admit(self) -> contextlib.AbstractContextManager[None]:
        """A block during which one more request counts; :class:`Busy` now if ``max_pending`` already do.

        Enter it at once (no ``await`` in between), as ``with service.admit():``.
        """
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} classify requests are already waiting; send this one again later")
        return self._counted()

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    async def classify(self, data: bytes, name: str, *, detect: bool = True) -> Answer:
        """Decode ``data`` (an image file's bytes) and classify it; a failure is an :class:`Answer` with its error.
        ``detect`` False: the classifier labels the whole image, even on a server that detects."""
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        async with self._decoded:
            try:
                image = await loop.run_in_executor(
                    self._pool, functools.partial(decode_image, data, name, limits=self.limits)
                )
            except ImageError as exc:
                return Answer(None, 400, str(exc))
            try:
                results = await asyncio.wrap_future(self.runtime.classify([image], detect=detect))
            except StreamerError as exc:
                return Answer(None, 500, f"{name}: {exc}")
            except Exception:
                log.warning("classifying %s failed", name, exc_info=True)
                return Answer(None, 500, f"{name}: classification failed")
            finally:
                del image  # the decoded pixels go now, not when the next record comes
        return Answer(results[0], seconds=time.perf_counter() - start)

    def close(self) -> None:
        """Stop the decoding threads; images already submitted to the runtime are answered or dropped there."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def ws_record(answer: Answer, *, top_k: int, detects: bool) -> dict[str, Any]:
    """An answer as a record of the ``classified`` message on /ws (see :mod:`streamer.server.wire`)."""
    if answer.result is None:
        return {"error": answer.error or "classification failed"}
    classes = answer.result.classes
    best = classes[0] if classes else None
    record: dict[str, Any] = {
        "best_label": None
        if best is None
        else {"class_id": best.class_id, "name": best.name, "confidence": round(best.confidence, 6)},
        "labels": [c.to_dict() for c in classes[:top_k]],
    }
    if detects:
        record["objects"] = answer.result.objects.to_dicts()
    record["processing_ms"] = round(answer.seconds * 1e3, 3)
    return record
