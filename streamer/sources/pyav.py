"""PyAV (FFmpeg) sources: video files, RTSP cameras, HTTP(S) and HLS streams.

Live URLs (any scheme but ``file``) reconnect forever with capped exponential
backoff; a changed resolution after a reconnect simply gives frames of the
new size. Files end (state ENDED), or loop with ``loop=True``; they play as
fast as the consumer takes them (lossless: no frame skipped), or at their
native speed with ``realtime=True`` to stand in for a live camera (then the
buffer drops like a camera's). Frames are turned upright by the video's
display rotation (phones record sideways). A password in the URL never
reaches logs, errors or stats.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import av
import av.error

from streamer.errors import InputNotFoundError
from streamer.sources.base import Source, SourceState
from streamer.vision.preprocess import upright

__all__ = ["PyAVSource", "is_live_url"]

_UNAUTHORIZED = ("401", "Unauthorized", "authorization failed")


def is_live_url(url: str) -> bool:
    """Whether ``url`` names a network stream (anything but a plain path or ``file:``)."""
    scheme = urlsplit(url).scheme.lower()
    return len(scheme) > 1 and scheme != "file"  # "c:" is a Windows drive, not a scheme


class PyAVSource(Source):
    """Decode ``url`` (a path or a URL) with PyAV on a worker thread.

    ``rtsp_transport`` is ``tcp`` (default, robust) or ``udp``. ``open_timeout``
    and ``read_timeout`` (seconds) bound connecting and each read; a stalled
    stream then reconnects. ``backoff`` is (first, cap) seconds between
    reconnects. ``live`` ``None`` means live for a URL and not for a path;
    ``live=False`` reads a URL once, like a file (an HTTP video, an HLS VOD).
    """

    def __init__(
        self,
        stream_id: str,
        url: str,
        *,
        live: bool | None = None,
        realtime: bool = False,
        loop: bool = False,
        rtsp_transport: str = "tcp",
        open_timeout: float = 10.0,
        read_timeout: float = 5.0,
        backoff: tuple[float, float] = (0.5, 10.0),
        buffer_size: int = 2,
    ) -> None:
        network = is_live_url(url)
        live = network if live is None else live
        if not network and not Path(url).is_file():
            raise InputNotFoundError(f"video file {url} does not exist")
        if rtsp_transport not in ("tcp", "udp"):
            raise ValueError(f"rtsp_transport = {rtsp_transport!r}; use 'tcp' or 'udp'")
        super().__init__(stream_id, url, live=live or realtime, buffer_size=buffer_size)
        self.reconnect = live  # a live stream that ends or breaks is reopened, forever
        self.network = network
        self.realtime = realtime
        self.loop = loop
        self.options = {"rtsp_transport": rtsp_transport} if url.lower().startswith("rtsp") else {}
        self.timeouts = (open_timeout, read_timeout)
        self.backoff = backoff

    def _frames(self, container: av.container.InputContainer) -> Iterator[tuple[av.VideoFrame, float]]:
        """Decoded frames with the seconds spent decoding each."""
        decoder = container.decode(container.streams.video[0])
        while True:
            start = time.perf_counter()
            frame = next(decoder, None)
            if frame is None:
                return
            yield frame, time.perf_counter() - start

    def _play(self, container: av.container.InputContainer, offset_ms: float) -> float | None:
        """Decode to the end; returns the last pts (ms), ``None`` if stopped or the consumer left."""
        if not container.streams.video:
            raise av.error.InvalidDataError(0, f"no video stream in {self.url}")
        clock: tuple[float, float] | None = None  # (wall, pts) of the first frame, for realtime pacing
        last = offset_ms
        fallback_fps = float(container.streams.video[0].average_rate or 30)
        for frame, seconds in self._frames(container):
            if self.stopping.is_set():
                return None
            start = time.perf_counter()
            image = upright(frame.to_ndarray(format="rgb24"), frame.rotation)  # phones record sideways
            decode_ms = (seconds + time.perf_counter() - start) * 1000.0  # before any pacing sleep
            pts_ms = offset_ms + (
                frame.time * 1000.0 if frame.time is not None else self._decoded * 1000 / fallback_fps
            )
            if self.realtime:
                clock = clock or (time.monotonic(), pts_ms)
                delay = clock[0] + (pts_ms - clock[1]) / 1000.0 - time.monotonic()
                if delay > 0 and self.stopping.wait(delay):
                    return None
            self._set_state(SourceState.LIVE)
            if not self._emit(image, pts_ms, decode_ms):
                return None
            last = pts_ms
        return last

    def _run(self) -> None:
        offset_ms = 0.0  # added to a looping file's pts so they keep increasing
        failures = 0  # consecutive failed connections, for the backoff
        while not self.stopping.is_set():
            try:
                # Timeouts only for network streams: for files the interrupt callback costs GIL round trips.
                timeout = self.timeouts if self.network else None
                with av.open(self.url, options=self.options, timeout=timeout) as container:
                    failures = 0
                    while (last := self._play(container, offset_ms)) is not None:
                        if self.reconnect or not self.loop:
                            break
                        offset_ms = last + 1000.0 / float(container.streams.video[0].average_rate or 30)
                        container.seek(0)
                    else:
                        return  # stopped, or the consumer is gone
                if not self.reconnect:
                    self._set_state(SourceState.ENDED)
                    return
                self._error("the stream ended")
            except (av.error.FFmpegError, OSError) as exc:
                message = str(exc)
                if any(word in message for word in _UNAUTHORIZED):
                    self._fail(f"{message}: check the user name and password in the URL")
                    return
                if not self.reconnect:
                    self._fail(f"cannot decode {self.url}: {message}")
                    return
                self._error(message)
                failures += 1
            if not self._backoff(failures, *self.backoff):
                return
