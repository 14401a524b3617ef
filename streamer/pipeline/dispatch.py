"""Dispatcher: runs result callbacks on their own thread, so they never slow inference.

Items wait in a bounded :class:`FrameBuffer`. A live dispatcher drops its
oldest item when full (counted in ``dropped``); a lossless one makes the
producer wait. An exception in a callback is logged and the next item is
delivered as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from streamer.frames import FrameBuffer

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher(Generic[T]):
    """Call ``callback(item)`` for each :meth:`put` item, in order, on one daemon thread."""

    def __init__(
        self, callback: Callable[[T], None], *, capacity: int = 256, lossless: bool = False, name: str = "dispatch"
    ) -> None:
        self._callback = callback
        self._queue: FrameBuffer[T] = FrameBuffer(capacity, lossless=lossless)
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        return self._queue.dropped

    def put(self, item: T) -> None:
        """Queue ``item``; a lossless dispatcher waits for room, a live one drops its oldest."""
        while not self._queue.put(item, timeout=0.5):
            if self._queue.closed:
                return

    def _run(self) -> None:
        while (item := self._queue.get(timeout=None)) is not None:
            try:
                self._callback(item)
            except Exception:
                self.errors += 1
                log.exception("a result callback raised; delivery goes on")

    def close(self, timeout: float | None = 10.0) -> None:
        """Deliver what is queued, then stop the thread (waiting at most ``timeout`` seconds)."""
        self._queue.close()
        self._thread.join(timeout)
