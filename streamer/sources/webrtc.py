"""A live source fed by a remote WebRTC video track: a browser's camera, received by aiortc.

The track lives on the server's asyncio loop; this source's thread waits
while a coroutine on that loop pulls frames (``track.recv()``), converts
them to RGB when used and hands them to the buffer, which keeps only the newest, as
for any camera. The stream ends when the peer stops sending.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from streamer.sources.base import Source, SourceState
from streamer.sources.pyav import decoded_picture

__all__ = ["TrackSource"]


class TrackSource(Source):
    """Frames of ``track`` (a remote video track on ``loop``) as stream ``stream_id``."""

    def __init__(self, stream_id: str, track: MediaStreamTrack, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(stream_id, f"webrtc:{stream_id}", live=True, buffer_size=1)
        self._track = track
        self._loop = loop
        self._pump: concurrent.futures.Future[None] | None = None

    async def _frames(self) -> None:
        first_pts: float | None = None
        while not self.stopping.is_set():
            try:
                frame = await self._track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.VideoFrame):
                continue
            start = time.perf_counter()
            picture = decoded_picture(frame)
            pts_ms = frame.time * 1000.0 if frame.time is not None else 0.0
            first_pts = pts_ms if first_pts is None else first_pts
            self._set_state(SourceState.LIVE)
            if not self._emit(picture, pts_ms - first_pts, (time.perf_counter() - start) * 1000.0):
                return

    def _run(self) -> None:
        self._pump = asyncio.run_coroutine_threadsafe(self._frames(), self._loop)
        try:
            self._pump.result()
        except concurrent.futures.CancelledError:
            return
        self._set_state(SourceState.ENDED)

    def stop(self) -> None:
        super().stop()
        if self._pump is not None:
            self._loop.call_soon_threadsafe(self._pump.cancel)
