"""What a camera group keeps for its front until the front has taken it.

Call order (the group's threads put, the front's long poll takes)::

    outbox = Outbox(capacity=2048)
    outbox.put(item)                      # a result or an event; numbered 1, 2, 3, ...
    outbox.frame(stream, frame)           # the newest frame of a watched stream (replaces the last)
    batch = outbox.take(after=0, timeout=0.5)   # items numbered > after, the frames; waits up to timeout
    batch = outbox.take(after=batch.last, ...)  # acknowledges everything up to batch.last

The front acknowledges by asking for what comes after what it has: items
stay until then, so a front that dies between two takes loses nothing (its
successor gets them again: at least once). Memory is bounded: past
``capacity`` items the oldest is dropped and counted, and only each watched
stream's newest frame is kept.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Batch", "Outbox"]


@dataclass(frozen=True)
class Batch:
    """``items``: ``(number, item)`` in order, numbered after the ``after`` asked for; ``last``: the
    number to ask after next time; ``frames``: each watched stream's newest frame; ``dropped``: items
    dropped so far because the front did not take them in time; ``info``: the group's own additions
    (stream stats, track ids)."""

    items: list[tuple[int, Any]]
    last: int
    frames: dict[str, Any] = field(default_factory=dict)
    dropped: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class Outbox:
    """Thread-safe; see the module. ``clock``: monotonic seconds (the long poll's deadline)."""

    def __init__(self, capacity: int = 2048, *, clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError(f"Outbox capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._clock = clock
        self._items: deque[tuple[int, Any]] = deque()
        self._frames: dict[str, Any] = {}
        self._next = 1
        self._cond = threading.Condition()
        self.dropped = 0

    def put(self, item: Any) -> int:
        """Keep ``item`` for the front; returns its number."""
        with self._cond:
            if len(self._items) >= self._capacity:
                self._items.popleft()
                self.dropped += 1
            number = self._next
            self._next += 1
            self._items.append((number, item))
            self._cond.notify_all()
            return number

    def frame(self, stream: str, frame: Any) -> None:
        """Keep ``frame`` as ``stream``'s newest (the one before it, if not taken, is gone)."""
        with self._cond:
            self._frames[stream] = frame
            self._cond.notify_all()

    def forget(self, stream: str) -> None:
        """Drop ``stream``'s frame (it is no longer watched, or removed)."""
        with self._cond:
            self._frames.pop(stream, None)

    def take(self, after: int, timeout: float = 0.0, limit: int = 512) -> Batch:
        """Acknowledge the items numbered ``<= after``; return up to ``limit`` newer ones and the frames,
        waiting up to ``timeout`` seconds for something to come. ``after`` past the last number (a front
        that knew an earlier group of that name) starts over from the oldest."""
        deadline = self._clock() + timeout
        with self._cond:
            if after >= self._next:
                after = 0
            while self._items and self._items[0][0] <= after:
                self._items.popleft()
            while not self._items and not self._frames:
                left = deadline - self._clock()
                if left <= 0:
                    break
                self._cond.wait(left)
            items = [entry for entry in self._items if entry[0] > after][:limit]
            frames, self._frames = self._frames, {}
            last = items[-1][0] if items else after
            return Batch(items=items, last=last, frames=frames, dropped=self.dropped)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
