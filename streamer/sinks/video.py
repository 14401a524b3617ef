"""The annotated video writer: frames in, an encoded file out, audio copied through.

Call order::

    writer = VideoWriter(tmp_path, like=reader.video, audio=reader.audio, codec="h264")
    writer.write(image, pts)          # RGB frames, pts in the input's video time base
    writer.write_audio(packet)        # the input's audio packets, in demux order
    writer.close()                    # flushes the encoder and finishes the file

Video keeps the input's time base, frame rate and timestamps, so a player
shows every frame when the original did. Audio packets are copied unchanged
when the output container can hold their codec, and re-encoded to the
container's default audio codec otherwise.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import av.error
import cv2
import numpy as np
from av.audio.stream import AudioStream
from av.codec import Codec
from av.video.stream import VideoStream

from streamer.errors import ConfigError, SourceError

__all__ = ["VideoWriter", "encoder_for"]

log = logging.getLogger(__name__)

# Fast enough to keep up with inference, sharp enough to read the labels.
_ENCODER_OPTIONS = {
    "libx264": {"preset": "veryfast", "crf": "23"},
    "libx265": {"preset": "veryfast", "crf": "24"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"},
    "libsvtav1": {"preset": "10", "crf": "35"},
}
# Formats whose muxers take raw PCM audio whatever its channel layout (MP4's ipcm needs one spelled out).
_PCM_FORMATS = ("matroska", "mov", "avi", "nut", "wav")
_WELL_KNOWN = ("h264", "hevc", "vp9", "av1", "mpeg4", "mjpeg", "ffv1")


def encoder_for(codec: str | None, container: av.container.OutputContainer, output: Path) -> Codec:
    """The video encoder for ``codec`` (``None``: H.264 when ``output``'s format takes it, else its default)."""
    supported = container.supported_codecs
    if codec is None:
        codec = "h264" if "h264" in supported else container.default_video_codec
    try:
        encoder = Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        available = [name for name in _WELL_KNOWN if _has_encoder(name)]
        raise ConfigError(
            f"no video encoder named {codec!r} in this FFmpeg (PyAV {av.__version__}); "
            f"use one of: {', '.join(available)}"
        ) from None
    if encoder.type != "video":
        raise ConfigError(f"{codec!r} is not a video codec (it is {encoder.type}); --codec takes one such as h264")
    if encoder.name not in supported and encoder.canonical_name not in supported:
        raise ConfigError(
            f"{output.name}: the {container.format.name} format cannot hold {encoder.canonical_name} video; "
            f"pick another --codec (its default is {container.default_video_codec}) or another file suffix"
        )
    return encoder


def _has_encoder(name: str) -> bool:
    try:
        Codec(name, "w")
    except (av.error.FFmpegError, ValueError):
        return False
    return True


class VideoWriter:
    """Encode RGB frames shaped like ``like`` into ``path``; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        like: VideoStream,
        audio: AudioStream | None = None,
        codec: str | None = None,
        format: str | None = None,
        output_name: Path | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        """``format`` names the container (default: from ``output_name`` or ``path``'s suffix).

        ``output_name`` is the name to report in errors when ``path`` is a
        temporary file standing in for it. ``size`` (width, height) is the
        frames' when not ``like``'s (frames turned upright). The file's header is written here,
        so a combination the format refuses fails now, not after encoding.
        """
        self.named = output_name or path
        self._transcode = False
        size = size or (like.codec_context.width, like.codec_context.height)
        try:
            self._open(path, like, size, audio, codec, format, copy_audio=True)
        except _Refused:
            log.info("audio: %s takes no %s as it is; re-encoding it", self.named, _codec_of(audio))
            self._open(path, like, size, audio, codec, format, copy_audio=False)

    def _open(
        self,
        path: Path,
        like: VideoStream,
        size: tuple[int, int],
        audio: AudioStream | None,
        codec: str | None,
        format: str | None,
        *,
        copy_audio: bool,
    ) -> None:
        try:
            self.container = av.open(str(path), "w", format=format or _format_for(self.named))
        except (av.error.FFmpegError, ValueError) as exc:
            raise ConfigError(f"cannot write {self.named}: {exc}; use a .mp4, .mkv, .mov or .webm name") from None
        try:
            encoder = encoder_for(codec, self.container, self.named)
            rate: Fraction = like.average_rate or like.guessed_rate or Fraction(30)
            self.video = cast(VideoStream, self.container.add_stream(encoder.name, rate=rate))
            width, height = size
            self.video.width, self.video.height = width, height
            formats = {f.name for f in encoder.video_formats or ()}
            odd = width % 2 or height % 2  # 4:2:0 needs even sides
            self.video.pix_fmt = next(
                (f for f in (("yuv444p", "yuv420p") if odd else ("yuv420p", "yuv444p")) if f in formats),
                encoder.video_formats[0].name if encoder.video_formats else "yuv420p",
            )
            self.video.time_base = self.video.codec_context.time_base = like.time_base or 1 / rate
            self.video.options = dict(_ENCODER_OPTIONS.get(encoder.name, {}))
            self.audio: AudioStream | None = None
            if audio is not None:
                self._add_audio(audio, copy=copy_audio)
            try:
                self.container.start_encoding()
            except av.error.FFmpegError as exc:
                if self.audio is not None and not self._transcode:
                    raise _Refused from None
                raise ConfigError(
                    f"cannot write {self.named}: the {self.container.format.name} format refuses these streams "
                    f"({exc.strerror or exc}); try another --codec or a .mkv name"
                ) from None
        except BaseException:
            self.container.close()
            raise

    def _add_audio(self, audio: AudioStream, *, copy: bool) -> None:
        name = _codec_of(audio)
        pcm_refused = name.startswith("pcm_") and self.container.format.name not in _PCM_FORMATS
        if copy and name in self.container.supported_codecs and not pcm_refused:
            self.audio = self.container.add_stream_from_template(audio)
            return
        target = self.container.default_audio_codec
        if target in (None, "none"):
            log.warning("%s: dropping the audio track (%s cannot be re-encoded for it)", self.named, name)
            return
        log.info("audio: %s cannot go into %s; re-encoding it as %s", name, self.named, target)
        self.audio = cast(AudioStream, self.container.add_stream(target, rate=audio.codec_context.sample_rate))
        self._transcode = True

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one RGB ``uint8`` frame at ``pts`` (in the input video's time base)."""
        if self.video.pix_fmt == "yuv420p":  # BT.601 limited range like FFmpeg's; ~9x faster at 720p
            planes = cast("np.ndarray[Any, np.dtype[np.uint8]]", cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420))
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = pts
        frame.time_base = self.video.codec_context.time_base
        self.container.mux(self.video.encode(frame))

    def write_audio(self, packet: av.Packet[Any], shift: int = 0) -> None:
        """Copy (or re-encode) one of the input's audio packets, ``shift`` earlier (its time base)."""
        if self.audio is None:
            return
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        if self._transcode:
            for frame in packet.decode():
                assert isinstance(frame, av.AudioFrame)  # an audio stream's packet
                frame.pts = None  # the encoder numbers samples itself
                self.container.mux(self.audio.encode(frame))
        else:
            packet.stream = self.audio
            self.container.mux(packet)

    def abort(self) -> None:
        """Close the file without flushing the encoders (after an error; the file is then discarded)."""
        self.container.close()

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        try:
            self.container.mux(self.video.encode(None))
            if self.audio is not None and self._transcode:
                self.container.mux(self.audio.encode(None))
        except av.error.FFmpegError as exc:
            self.container.close()
            raise SourceError(f"cannot finish {self.named}: {exc.strerror or exc}") from None
        try:
            self.container.close()
        except av.error.FFmpegError as exc:
            raise SourceError(f"cannot finish {self.named}: {exc.strerror or exc}") from None


class _Refused(Exception):
    """The container refused a copied audio stream at its header."""


def _codec_of(audio: AudioStream | None) -> str:
    return str(audio.codec_context.name) if audio is not None and audio.codec_context is not None else "none"


def _format_for(path: Path) -> str | None:
    """The container format for a file name; ``None`` lets FFmpeg guess from the suffix."""
    return {".mkv": "matroska", ".webm": "webm", ".mov": "mov", ".mp4": "mp4", ".m4v": "mp4"}.get(path.suffix.lower())
