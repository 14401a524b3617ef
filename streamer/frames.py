"""Frames and the FrameBuffer: what sources hand to the inference core, below both.

A :class:`Frame` is one decoded image with its stream, index and the
source's own presentation time. Its picture stays as the decoder made it
(a :class:`Picture`, e.g. YUV) until someone asks for :attr:`Frame.image`:
under overload most frames are dropped unseen, and those never pay for the
conversion to RGB. A :class:`FrameBuffer` is a bounded per-stream queue of
frames that never blocks a live decoder.

Two policies:

- **live** (default): ``put`` never waits. When the buffer is full the oldest
  frame is dropped and counted, so latency stays bounded whatever the
  consumer's speed. ``take_newest`` hands the consumer the newest frame and
  drops (and counts) the older ones.
- **lossless** (``lossless=True``, files annotated in VIDEO mode): ``put``
  waits for room instead (back-pressure), so no frame is ever skipped, and the
  consumer takes frames in order with ``get``.

``close()`` ends the stream: ``put`` refuses further frames, and once the
buffered ones are taken ``get``/``take_newest`` return ``None``. A shared
``wakeup`` event, if given, is set on every ``put`` and on ``close`` so one
consumer can wait on many buffers.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

__all__ = ["Frame", "FrameBuffer", "Picture"]

T = TypeVar("T")


class Picture:
    """A decoded picture that becomes RGB ``uint8`` ``[H, W, 3]`` on first use, once, from any thread.

    ``convert`` makes the RGB array (e.g. PyAV's ``to_ndarray``); it is called
    at most once and then released with whatever it holds (the decoder's
    frame). ``width`` and ``height`` are the RGB array's, known before it is made.
    """

    __slots__ = ("_convert", "_lock", "_rgb", "height", "width")

    def __init__(self, width: int, height: int, convert: Callable[[], np.ndarray]) -> None:
        self.width = width
        self.height = height
        self._convert: Callable[[], np.ndarray] | None = convert
        self._rgb: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def converted(self) -> bool:
        """Whether the RGB array has been made."""
        return self._rgb is not None

    def rgb(self) -> np.ndarray:
        """The RGB array, made on the first call (the other callers wait for it)."""
        with self._lock:
            if self._rgb is None:
                assert self._convert is not None
                self._rgb = self._convert()
                self._convert = None
            return self._rgb


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One decoded frame; ``pts_ms`` is the source's own time.

    ``picture`` is the RGB ``uint8`` ``[H, W, 3]`` array, or a :class:`Picture`
    that becomes one when :attr:`image` is first read. ``decoded_at`` is
    ``time.monotonic()`` when decoding finished and ``decode_ms`` how long
    decoding took (without the conversion to RGB).
    """

    stream_id: str
    index: int
    pts_ms: float
    picture: np.ndarray | Picture
    decoded_at: float
    decode_ms: float = 0.0

    @property
    def image(self) -> np.ndarray:
        """The frame as RGB ``uint8`` ``[H, W, 3]`` (converted now if it was not yet)."""
        picture = self.picture
        return picture if isinstance(picture, np.ndarray) else picture.rgb()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), without converting anything."""
        picture = self.picture
        if isinstance(picture, np.ndarray):
            return int(picture.shape[1]), int(picture.shape[0])
        return picture.width, picture.height


class FrameBuffer(Generic[T]):
    """Thread-safe bounded FIFO with a live (drop oldest) or lossless (block) policy."""

    def __init__(self, capacity: int = 2, *, lossless: bool = False, wakeup: threading.Event | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"FrameBuffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.lossless = lossless
        self._items: deque[T] = deque()
        self._lock = threading.Condition()
        self._wakeup = wakeup
        self._closed = False
        self.dropped = 0  # frames that never reached the consumer
        self.put_count = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``. Live: never waits, drops the oldest when full. Lossless: waits for room
        (up to ``timeout`` seconds, ``None`` forever). ``False`` if closed or timed out."""
        with self._lock:
            has_room = lambda: self._closed or len(self._items) < self.capacity  # noqa: E731
            if self.lossless and not self._lock.wait_for(has_room, timeout):  # live never waits
                return False
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.put_count += 1
            self._lock.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()
        return True

    def get(self, timeout: float | None = 0.0) -> T | None:
        """The oldest item, waiting up to ``timeout`` seconds (``None``: until one comes or the buffer closes)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            item = self._items.popleft()
            self._lock.notify_all()
            return item

    def take_newest(self) -> T | None:
        """The newest item, dropping and counting the older ones; ``None`` if empty. Never waits."""
        with self._lock:
            if not self._items:
                return None
            item = self._items.pop()
            self.dropped += len(self._items)
            self._items.clear()
            self._lock.notify_all()
            return item

    def peek(self, *, newest: bool) -> T | None:
        """The newest (else the oldest) item without taking it; ``None`` if empty. Never waits."""
        with self._lock:
            if not self._items:
                return None
            return self._items[-1] if newest else self._items[0]

    def count_dropped(self, count: int = 1) -> None:
        """Count frames the consumer discarded after taking them (e.g. too old to be worth inferring)."""
        with self._lock:
            self.dropped += count

    def close(self) -> None:
        """No more items will come; waiting producers and consumers wake up."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def drained(self) -> bool:
        """Closed and empty: the stream is over for the consumer."""
        with self._lock:
            return self._closed and not self._items
