"""Event clips for sources without compressed packets (webcams, the browser's camera): frames encoded.

The same call order as :class:`streamer.events.clips.Clips`, with
:meth:`FrameClipEncoder.frame` (every decoded frame, on the source's thread)
in place of ``packet``; frames are kept small (at most ``max_width`` wide)
for the pre-capture and encoded (H.264 where this FFmpeg has libx264, else
MPEG-4) on a worker thread while a clip is open.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamer.errors import ConfigError
from streamer.events.clips import ClipBook, ClipConfig, OnDone, safe_name, temp_path

__all__ = ["FrameClipEncoder", "shrink", "video_codec"]

log = logging.getLogger(__name__)


def video_codec() -> str:
    """The encoder for frame clips: ``libx264`` when this FFmpeg has it, else ``mpeg4``."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def shrink(image: np.ndarray, max_width: int) -> np.ndarray:
    """A copy of an RGB ``image`` at most ``max_width`` wide, both sides even (yuv420p needs it)."""
    height, width = image.shape[:2]
    scale = min(1.0, max_width / width)
    size = (max(2, int(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2))
    if size == (width, height):
        return image.copy()
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class _Encoding:
    """One clip being encoded; used on the worker thread only. ``None`` container: no frame yet."""

    def __init__(self, event_id: str, path: Path, codec: str) -> None:
        self.event_id = event_id
        self.path = path
        self.temp = temp_path(path)
        self.codec = codec
        self.container: av.container.OutputContainer | None = None
        self.stream: av.VideoStream | None = None
        self.first_ms = 0.0
        self.last_pts = -1
        self.frames = 0

    def add(self, image: np.ndarray, pts_ms: float) -> None:
        if self.container is None:
            self.first_ms = pts_ms
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.temp), "w", format="mp4")
            stream = self.container.add_stream(self.codec, rate=30)
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"{self.codec} is not a video codec; use libx264 or mpeg4")
            stream.height, stream.width = image.shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = Fraction(1, 1000)
            if self.codec == "libx264":
                stream.options = {"preset": "veryfast"}
            self.stream = stream
        assert self.stream is not None
        pts = round(pts_ms - self.first_ms)
        if pts <= self.last_pts:
            return  # timestamps must increase
        if image.shape[:2] != (self.stream.height, self.stream.width):  # the source changed resolution
            image = cv2.resize(image, (self.stream.width, self.stream.height), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        self.container.mux(self.stream.encode(frame))
        self.last_pts = pts
        self.frames += 1

    def finish(self) -> bool:
        """Flush and move the file in place; ``False`` if it had no frame."""
        if self.container is None or self.stream is None:
            return False
        self.container.mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.temp, self.path)
        return True

    def abort(self) -> None:
        try:
            if self.container is not None:
                self.container.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass
        self.container = None
        self.temp.unlink(missing_ok=True)


@dataclass(eq=False)
class _FrameClip:
    event_id: str
    stream: str
    start_ms: float
    encoding: _Encoding
    end_ms: float | None = None
    broken: bool = False  # set on the worker thread after an error: later frames are skipped


class FrameClipEncoder(ClipBook):
    """Event clips encoded from decoded frames, for sources without packets (webcams, the browser camera).

    Same call order as :class:`Clips`, with :meth:`frame` in place of
    ``packet``. Frames are stored at most ``max_width`` wide; a stream's ring
    holds ``pre_capture_s`` of them, at most ``max_frames`` and ``max_ring_bytes``.
    Encoding runs on the worker thread; when ``max_pending`` frames wait for
    it, new frames are dropped (counted in :attr:`dropped`).
    """

    def __init__(
        self,
        clips_dir: Path,
        config: ClipConfig | None = None,
        *,
        on_done: OnDone | None = None,
        max_width: int = 640,
        max_frames: int = 300,
        max_pending: int = 64,
        codec: str | None = None,
    ) -> None:
        if max_width < 16 or max_frames < 1 or max_pending < 1:
            raise ConfigError(
                f"FrameClipEncoder: max_width = {max_width}, max_frames = {max_frames}, max_pending = "
                f"{max_pending}; give max_width >= 16 and the others >= 1"
            )
        super().__init__(clips_dir, config, on_done, "frame-clips")
        self.max_width, self.max_frames, self.max_pending = max_width, max_frames, max_pending
        self.codec = codec or video_codec()
        self.dropped = 0
        self._rings: dict[str, deque[tuple[np.ndarray, float]]] = {}

    def frame(self, stream: str, image: np.ndarray, pts_ms: float) -> None:
        """Keep a small copy of an RGB uint8 ``image`` of ``stream`` (source thread; never raises)."""
        try:
            small = shrink(image, self.max_width)
            with self._lock:
                self._keep(stream, small, pts_ms)
                for clip in [c for c in self._open.values() if c.stream == stream]:
                    self._feed(clip, small, pts_ms)
        except Exception:
            log.exception("frame clips: cannot keep a frame of stream %s", stream)

    def _keep(self, stream: str, small: np.ndarray, pts_ms: float) -> None:
        ring = self._rings.setdefault(stream, deque())
        if ring and pts_ms < ring[-1][1]:  # the clock jumped back: a new timeline
            ring.clear()
        ring.append((small, pts_ms))
        total = sum(image.nbytes for image, _ in ring)
        oldest = pts_ms - self.config.pre_capture_s * 1000.0
        while ring and (len(ring) > self.max_frames or total > self.config.max_ring_bytes or ring[0][1] < oldest):
            total -= ring.popleft()[0].nbytes

    def _feed(self, clip: _FrameClip, small: np.ndarray, pts_ms: float, *, replay: bool = False) -> None:
        """Send one frame to ``clip``'s encoding or close it (lock held)."""
        ended = clip.end_ms is not None and pts_ms > clip.end_ms
        if ended or pts_ms - clip.start_ms >= self.config.max_clip_s * 1000.0:
            self._finish(clip)
            return
        if not self._worker.submit(
            lambda: self._encode(clip, small, pts_ms), limit=None if replay else self.max_pending
        ):
            self.dropped += 1

    def start(self, event_id: str, stream: str, pts_ms: float) -> None:
        """Begin the clip of ``event_id``: the ring's frames from ``pts_ms - pre_capture_s``, then new ones."""
        if not safe_name(event_id):
            log.error("frame clips: event id %r cannot name a file; no clip", event_id)
            return
        with self._lock:
            if event_id in self._open:
                return
            path = self.clips_dir / f"{event_id}.mp4"
            start_ms = pts_ms - self.config.pre_capture_s * 1000.0
            held = [(image, ms) for image, ms in self._rings.get(stream, ()) if ms >= start_ms]
            clip = _FrameClip(event_id, stream, held[0][1] if held else pts_ms, _Encoding(event_id, path, self.codec))
            self._open[event_id] = clip
            for image, ms in held:
                if event_id in self._open:
                    self._feed(clip, image, ms, replay=True)

    def _finish(self, clip: _FrameClip) -> None:
        self._open.pop(clip.event_id, None)
        self._worker.submit(lambda: self._close(clip))

    def _encode(self, clip: _FrameClip, image: np.ndarray, pts_ms: float) -> None:
        if clip.broken:
            return
        try:
            clip.encoding.add(image, pts_ms)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            clip.broken = True
            clip.encoding.abort()
            self.failed += 1
            log.error("frame clips: cannot encode %s: %s", clip.encoding.path, exc)

    def _close(self, clip: _FrameClip) -> None:
        if clip.broken:
            return
        try:
            done = clip.encoding.finish()
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            clip.encoding.abort()
            self.failed += 1
            log.error("frame clips: cannot write %s: %s", clip.encoding.path, exc)
            return
        if not done:
            log.info("frame clips: event %s on %s had no frame; no clip", clip.event_id, clip.stream)
            return
        self._done(clip.event_id, clip.encoding.path)
