"""Reading a video file for annotation: every frame, in order, with its audio packets.

Call order::

    reader = VideoReader(Path("clip.mp4"))        # opens it; clear errors for bad files
    for item in reader.items(start=10.0, end=20.0):
        ...                                       # VideoItem, or an audio av.Packet, in demux order
    reader.stopped                                # None, or where and why decoding stopped early
    reader.close()

Unlike :class:`~streamer.sources.pyav.PyAVSource` (a live-capable source on
its own thread), this is a plain iterator that keeps each frame's exact
``pts`` in the stream's time base and hands over the audio packets, so an
annotated copy can have the same timestamps and the same sound.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import av.logging
import numpy as np
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from streamer.errors import InputNotFoundError, SourceError
from streamer.sources.pyav import declared_end, matroska_clock, short_read
from streamer.vision.preprocess import upright

__all__ = ["VideoItem", "VideoReader", "codec_name"]


@dataclass(frozen=True, slots=True)
class VideoItem:
    """One decoded frame: its position in this read, ``pts`` in the stream's time base, seconds, RGB image."""

    index: int
    pts: int
    seconds: float
    image: np.ndarray
    decode_ms: float


def codec_name(container: av.container.InputContainer, stream: VideoStream) -> str:
    """The codec of ``stream`` as FFmpeg names it, even when this build has no decoder for it."""
    if stream.codec_context is not None:
        return str(stream.codec_context.name)
    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)  # the stream dump is only written at INFO
    try:
        dump = container.dumps_format()
    finally:
        av.logging.set_level(level)
    found = re.search(rf"Stream #\d+:{stream.index}\b.*?: Video: ([\w-]+)", dump)
    return found.group(1) if found else "unknown"


def _first_rotation(path: Path) -> float:
    """The display rotation of ``path``'s first video frame (0 if there is none), from a second, brief read."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                return float(frame.rotation)
    except av.error.FFmpegError:
        pass  # the main read reports what is wrong with the file
    return 0.0


class VideoReader:
    """Decode the first video stream of ``path``; see the module docstring."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise InputNotFoundError(f"video file {path} does not exist")
        try:
            self.container = av.open(str(path))
        except av.error.EOFError:
            raise SourceError(f"{path} ends before its first video frame: no video frames to annotate") from None
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot open {path}: {exc.strerror or exc}; is it a complete video file?") from None
        try:
            if not self.container.streams.video:
                raise SourceError(f"{path} has no video stream")
            self.video: VideoStream = self.container.streams.video[0]
            if self.video.codec_context is None:
                raise SourceError(
                    f"{path}: its video codec {codec_name(self.container, self.video)} cannot be decoded by the "
                    f"FFmpeg in PyAV {av.__version__}; convert it first, e.g. "
                    f"ffmpeg -i {path.name} -c:v libx264 -c:a copy {path.stem}.mp4"
                )
            self.video.thread_type = "AUTO"  # frame and slice threads: decoding keeps up with the rest
            audio = self.container.streams.audio
            self.audio: AudioStream | None = audio[0] if audio and audio[0].codec_context is not None else None
        except BaseException:
            self.container.close()
            raise
        #: the display rotation (degrees counter-clockwise) of the first frame; frames are turned upright
        self.rotation = _first_rotation(path)
        #: ``None`` after a complete read; else where decoding stopped and why
        self.stopped: str | None = None
        self.decoded = 0

    @property
    def time_base(self) -> Fraction:
        return self.video.time_base or Fraction(1, 90000)

    @property
    def rate(self) -> Fraction:
        return self.video.average_rate or self.video.guessed_rate or Fraction(30)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames :meth:`items` gives: upright, as a player shows them."""
        width, height = self.video.codec_context.width, self.video.codec_context.height
        return (height, width) if round(self.rotation / 90) % 2 else (width, height)

    def duration(self) -> float | None:
        """Seconds of video the file declares, if it does.

        The video track's own length (an MP4 or MPEG-TS stream's duration, a
        Matroska ``DURATION`` tag); the whole file's only when the video is its
        one stream, since an audio track that runs longer would otherwise make
        a complete video look cut short.
        """
        tagged = matroska_clock(self.video.metadata.get("DURATION", ""))
        if tagged is not None:
            return tagged
        if self.video.duration:
            return float(self.video.duration * self.time_base)
        if self.container.duration and len(self.container.streams) == 1:
            return self.container.duration / 1_000_000
        return None

    def expected_frames(self, start: float | None = None, end: float | None = None) -> int | None:
        """How many frames a complete read of [start, end) gives, from the header; ``None`` if unknown."""
        declared = self.video.frames or None
        duration = self.duration()
        if declared is not None and start is None and end is None:
            return declared
        if duration is None:
            return None
        span = min(end if end is not None else duration, duration) - (start or 0.0)
        return max(0, round(span * float(self.rate)))

    def items(self, start: float | None = None, end: float | None = None) -> Iterator[VideoItem | av.Packet[Any]]:
        """Frames with ``start <= seconds < end`` and the audio packets among them, in demux order.

        Decoding stops early at a corrupt or truncated part; :attr:`stopped`
        then says where. Audio packets keep their own ``pts``.
        """
        streams: list[Any] = [self.video] if self.audio is None else [self.video, self.audio]
        if start:
            self.container.seek(int(start / self.time_base), stream=self.video, backward=True)
        index = 0
        seconds = start or 0.0
        tick = 1 / self.rate  # for frames without a pts (raw elementary streams)
        try:
            for packet in self.container.demux(streams):
                if packet.stream is not self.video:
                    if packet.size and packet.pts is not None and packet.time_base is not None:
                        at = float(packet.pts * packet.time_base)
                        if (start is None or at >= start) and (end is None or at < end):
                            yield packet
                    continue
                clock = time.perf_counter()
                for frame in packet.decode():
                    assert isinstance(frame, av.VideoFrame)  # a video stream's packet
                    pts = frame.pts if frame.pts is not None else round(self.decoded * tick / self.time_base)
                    seconds = float(pts * self.time_base)
                    if start is not None and seconds < start - 1e-6:
                        continue
                    if end is not None and seconds >= end:
                        return
                    image = upright(frame.to_ndarray(format="rgb24"), self.rotation)
                    self.decoded += 1
                    yield VideoItem(index, pts, seconds, image, (time.perf_counter() - clock) * 1000.0)
                    index += 1
                    clock = time.perf_counter()
        except av.error.FFmpegError as exc:
            self.stopped = f"decoding stopped after frame {index} ({seconds:.3f} s): {exc.strerror or exc}"
            return
        self.stopped = self._short(index, seconds, whole=start is None and end is None)

    def _short(self, frames: int, last: float, *, whole: bool) -> str | None:
        """Why a read that ended without an error is still incomplete (the header promised more), if it is."""
        return short_read(self.container, self.video, frames, last, whole=whole)

    def end_time(self) -> float | None:
        """When the video ends by its header (seconds, on the frames' clock), if it says."""
        return declared_end(self.container, self.video)

    def close(self) -> None:
        self.container.close()
