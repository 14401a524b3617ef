"""OpenCV sources: local webcams by index or ``/dev/videoN``, with resolution and fps options."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import cv2

from streamer.errors import SourceError
from streamer.frames import Picture
from streamer.sources.base import Source, SourceState

__all__ = ["OpenCVSource"]


class OpenCVSource(Source):
    """Capture from a local camera. ``device`` is an index (``0``) or a path (``/dev/video0``).

    ``width``, ``height`` and ``fps`` are requested from the driver (``None``:
    its default); the camera may pick the nearest mode it has. A camera that
    cannot be opened fails at :meth:`open` with a :class:`SourceError` naming
    it. A camera that stops delivering is reopened with backoff.
    """

    def __init__(
        self,
        stream_id: str,
        device: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        buffer_size: int = 2,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        super().__init__(stream_id, str(device), live=True, buffer_size=buffer_size)
        self.device = device
        self.request = (width, height, fps)
        self.backoff = backoff
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        """Open the camera now; a :class:`SourceError` says which device is missing or busy."""
        if isinstance(self.device, str) and self.device.startswith("/dev/") and not Path(self.device).exists():
            raise SourceError(f"no camera at {self.device}; list cameras with: ls /dev/video*")
        capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open camera {self.device!r}: missing, busy, or not a capture device")
        width, height, fps = self.request
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, width),
            (cv2.CAP_PROP_FRAME_HEIGHT, height),
            (cv2.CAP_PROP_FPS, fps),
        ):
            if value:
                capture.set(prop, value)
        self._capture = capture

    def _run(self) -> None:
        failures = 0
        start = time.monotonic()
        while not self.stopping.is_set():
            try:
                if self._capture is None:
                    self.open()
            except SourceError as exc:
                failures += 1
                if not self._retry(str(exc), failures, *self.backoff):
                    return
                continue
            assert self._capture is not None
            began = time.perf_counter()
            ok, bgr = self._capture.read()
            if not ok:
                self._capture.release()
                self._capture = None
                failures += 1
                if not self._retry(f"camera {self.device!r} delivered no frame", failures, *self.backoff):
                    return
                continue
            failures = 0
            self._set_state(SourceState.LIVE)
            picture = Picture(bgr.shape[1], bgr.shape[0], functools.partial(cv2.cvtColor, bgr, cv2.COLOR_BGR2RGB))
            pts_ms = (time.monotonic() - start) * 1000.0
            if not self._emit(picture, pts_ms, (time.perf_counter() - began) * 1000.0):
                break
        if self._capture is not None:
            self._capture.release()
