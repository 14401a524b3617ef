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

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import av
import av.error
from av.codec.hwaccel import HWAccel, hwdevices_available

from streamer.errors import InputNotFoundError, SourceError
from streamer.files import describe
from streamer.frames import Picture
from streamer.nvidia import driver_status
from streamer.sources.base import Source, SourceState, SourceStats
from streamer.sources.skipping import DEFAULT, NONKEY, NONREF, Counts, SkipConfig, SkipPolicy
from streamer.vision.preprocess import upright

__all__ = [
    "DECODERS",
    "PyAVSource",
    "declared_end",
    "decoded_picture",
    "hardware_decoding",
    "is_live_url",
    "matroska_clock",
    "playback_delay",
    "short_read",
]

log = logging.getLogger(__name__)

DECODERS = ("auto", "software", "nvdec")
_SKIPPING = {
    DEFAULT: "the consumer keeps up again; decoding every frame",
    NONREF: "overloaded; frames no other frame refers to are no longer decoded",
    NONKEY: "overloaded, and taking no more frames than there are keyframes; decoding keyframes only",
}


@functools.cache
def _software_here(reason: str) -> None:
    """Say once per process why ``decoder = "auto"`` decodes in software here."""
    log.info("video is decoded in software: %s", reason)


def decoded_picture(frame: av.VideoFrame) -> Picture:
    """``frame`` as a :class:`Picture`: turned upright (phones record sideways) and made RGB when first used."""
    turned = round(frame.rotation / 90) % 2 == 1
    width, height = (frame.height, frame.width) if turned else (frame.width, frame.height)
    return Picture(width, height, lambda: upright(frame.to_ndarray(format="rgb24"), frame.rotation))


def hardware_decoding(decoder: str, devices: tuple[str, ...], driver: str | None) -> tuple[bool, str | None]:
    """Whether to ask FFmpeg for NVDEC, and if not while ``decoder`` wanted it, why not.

    ``decoder`` is one of :data:`DECODERS`; ``devices`` the hardware device
    types this FFmpeg build has (``av.codec.hwaccel.hwdevices_available()``);
    ``driver`` why the NVIDIA driver cannot be used here, ``None`` if it can.
    """
    if decoder not in DECODERS:
        raise ValueError(f"decoder = {decoder!r}; use one of: {', '.join(DECODERS)}")
    if decoder == "software":
        return False, None
    if "cuda" not in devices:
        return False, f"this FFmpeg build has no CUDA hardware decoding (it has: {', '.join(devices) or 'none'})"
    if driver is not None:
        return False, driver
    return True, None


_UNAUTHORIZED = ("401", "Unauthorized", "authorization failed")


def playback_delay(clock: tuple[float, float] | None, pts_ms: float, now: float) -> tuple[tuple[float, float], float]:
    """How long to wait before the frame at ``pts_ms`` so a file plays at its native speed.

    ``clock`` is ``(wall seconds, pts_ms)`` of the first frame played (``None``
    before it: this frame starts the clock); returns the clock to keep and the
    delay in seconds (negative: late, show it at once). ``now`` is on the same
    monotonic clock as the wall seconds.
    """
    clock = clock or (now, pts_ms)
    return clock, clock[0] + (pts_ms - clock[1]) / 1000.0 - now


def is_live_url(url: str) -> bool:
    """Whether ``url`` names a network stream (anything but a plain path or ``file:``)."""
    scheme = urlsplit(url).scheme.lower()
    return len(scheme) > 1 and scheme != "file"  # "c:" is a Windows drive, not a scheme


def matroska_clock(text: str) -> float | None:
    """Seconds in a Matroska ``DURATION`` tag such as ``00:01:02.500000000``; ``None`` if it is not one."""
    found = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", text.strip())
    if found is None:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def declared_end(container: av.container.InputContainer, video: av.VideoStream) -> float | None:
    """When ``video`` ends by the file's header (seconds, on the frames' clock), if it says."""
    tagged = matroska_clock(video.metadata.get("DURATION", ""))  # Matroska, WebM: where the video track ends
    if tagged is not None:
        return tagged
    if video.duration and video.time_base is not None:
        return float(((video.start_time or 0) + video.duration) * video.time_base)
    if container.duration and len(container.streams) == 1:  # else a longer audio track would count
        return (container.start_time or 0) / 1_000_000 + container.duration / 1_000_000
    return None


def short_read(
    container: av.container.InputContainer, video: av.VideoStream, frames: int, last: float, *, whole: bool
) -> str | None:
    """Why a read of ``frames`` frames, the last at ``last`` seconds, that ended without an error is still
    incomplete (the header promised more), if it is; ``whole``: the read was meant to cover the whole file."""
    if whole and video.frames and frames < video.frames:
        return (
            f"the video ends after frame {frames} ({last:.3f} s) but the file declares {video.frames} "
            "frames; it looks truncated"
        )
    declared = declared_end(container, video)
    rate = float(video.average_rate or video.guessed_rate or 30)
    if declared is not None and last + 2 / rate < declared:  # by time: frame rates may vary
        return f"the video ends after frame {frames} ({last:.3f} s) but the file declares {declared:.3f} s"
    return None


class PyAVSource(Source):
    """Decode ``url`` (a path or a URL) with PyAV on a worker thread.

    ``rtsp_transport`` is ``tcp`` (default, robust) or ``udp``. ``open_timeout``
    and ``read_timeout`` (seconds) bound connecting and each read; a stalled
    stream then reconnects. ``backoff`` is (first, cap) seconds between
    reconnects. ``live`` ``None`` means live for a URL and not for a path;
    ``live=False`` reads a URL once, like a file (an HTTP video, an HLS VOD).
    ``on_packet`` (``None``: frames are decoded straight from the container)
    is called on the source's thread with each compressed video packet, before
    it is decoded, and the milliseconds this pass adds to the packet's own
    timestamps (a looping file's offset), so event clips can keep the bytes.
    ``decoder`` is ``auto`` (NVDEC where an NVIDIA GPU and driver are there,
    else software), ``nvdec`` or ``software``; a fall back to software is
    said in one log line with the reason. Frames are handed over as the
    decoder made them and become RGB only when used; under overload a live
    stream's decoder skips frames as :mod:`streamer.sources.skipping` allows
    (``skipping``: its thresholds), unless :attr:`every_frame_wanted` says
    someone needs them all; ``stats().skipped`` counts them.
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
        on_packet: Callable[[av.Packet[av.VideoStream], float], None] | None = None,
        decoder: str = "auto",
        skipping: SkipConfig | None = None,
    ) -> None:
        network = is_live_url(url)
        live = network if live is None else live
        if not network and not Path(url).is_file():
            what = describe(Path(url))
            if what == "missing":
                raise InputNotFoundError(f"video file {url} does not exist")
            hint = "; streamer annotate takes folders" if what == "a directory" else ""
            raise SourceError(f"{url} is {what}, not a video file; give a video file, a URL or a camera{hint}")
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
        self._progress = (0, 0.0)  # frames decoded in the current pass over the file, and the last one's time (s)
        self.on_packet = on_packet
        self._offset_ms = 0.0  # what the current pass adds to the stream's timestamps, for on_packet
        self._skip = SkipPolicy(skipping) if self.live else None
        self._packets = 0  # video packets demuxed, and how many were keyframes
        self._keyframes = 0
        self._skipping = [0, 0]  # packets demuxed and frames decoded while the decoder skipped some
        use, why_not = hardware_decoding(decoder, tuple(hwdevices_available()), driver_status())
        self.hwaccel = HWAccel("cuda", allow_software_fallback=True) if use else None
        if why_not is not None and decoder == "nvdec":
            log.warning("source %s: decoding in software: %s", stream_id, why_not)
        elif why_not is not None:
            _software_here(why_not)

    def _frames(self, container: av.container.InputContainer) -> Iterator[tuple[av.VideoFrame, float]]:
        """Decoded frames with the seconds spent decoding each. Each packet goes to :attr:`on_packet`
        first; a live stream's decoder skips what its :class:`SkipPolicy` allows."""
        video = container.streams.video[0]
        decoder, tap, policy = video.codec_context, self.on_packet, self._skip
        decoder.skip_frame = policy.level if policy is not None else DEFAULT
        for packet in container.demux(video):
            start = time.perf_counter()
            skipping = decoder.skip_frame != DEFAULT
            if packet.size:  # the last, empty packet only flushes the decoder
                self._packets += 1
                self._keyframes += packet.is_keyframe
                self._skipping[0] += skipping
                if tap is not None:
                    try:
                        tap(packet, self._offset_ms)
                    except Exception:
                        log.exception("source %s: the on_packet callback failed", self.stream_id)
            for frame in packet.decode():
                self._skipping[1] += skipping
                yield frame, time.perf_counter() - start
                start = time.perf_counter()
            if policy is not None:
                wanted = self.every_frame_wanted is not None and self.every_frame_wanted()
                counts = Counts(self._packets, self._keyframes, self._decoded, self.buffer.dropped)
                level = policy.update(counts, time.monotonic(), every_frame_wanted=wanted)
                if level != decoder.skip_frame:
                    log.info("source %s: %s", self.stream_id, _SKIPPING[level])
                    decoder.skip_frame = level

    def _play(self, container: av.container.InputContainer, offset_ms: float) -> float | None:
        """Decode to the end; returns the last pts (ms), ``None`` if stopped or the consumer left."""
        if not container.streams.video:
            raise av.error.InvalidDataError(0, f"no video stream in {self.url}")
        clock: tuple[float, float] | None = None  # (wall, pts) of the first frame, for realtime pacing
        last = offset_ms
        self._progress = (0, 0.0)
        self._offset_ms = offset_ms
        fallback_fps = float(container.streams.video[0].average_rate or 30)
        for frame, seconds in self._frames(container):
            if self.stopping.is_set():
                return None
            picture = decoded_picture(frame)
            decode_ms = seconds * 1000.0
            pts_ms = offset_ms + (
                frame.time * 1000.0 if frame.time is not None else self._decoded * 1000 / fallback_fps
            )
            if self.realtime:
                clock, delay = playback_delay(clock, pts_ms, time.monotonic())
                if delay > 0 and self.stopping.wait(delay):
                    return None
            self._set_state(SourceState.LIVE)
            if not self._emit(picture, pts_ms, decode_ms):
                return None
            last = pts_ms
            self._progress = (self._progress[0] + 1, (pts_ms - offset_ms) / 1000.0)
        return last

    def stats(self) -> SourceStats:
        packets, frames = self._skipping
        return replace(super().stats(), skipped=max(0, packets - frames))

    def _open(self, timeout: tuple[float, float] | None) -> av.container.InputContainer:
        """The container, its video decoded by NVDEC if asked and possible, else in software (said once)."""
        if self.hwaccel is None:
            return av.open(self.url, options=self.options, timeout=timeout)
        try:
            container = av.open(self.url, options=self.options, timeout=timeout, hwaccel=self.hwaccel)
        except (av.error.FFmpegError, OSError) as exc:
            container = av.open(self.url, options=self.options, timeout=timeout)  # the GPU, or the stream?
            self._software(f"NVDEC cannot be used: {exc}")
            return container
        video = container.streams.video
        if video and not video[0].codec_context.is_hwaccel:
            self._software(f"NVDEC cannot decode {video[0].codec_context.name}")
        return container

    def _software(self, reason: str) -> None:
        """Decode in software from now on, saying why in one line."""
        self.hwaccel = None
        log.warning("source %s: decoding in software: %s", self.stream_id, self._redacted(reason))

    def _run(self) -> None:
        offset_ms = 0.0  # added to a looping file's pts so they keep increasing
        failures = 0  # consecutive failed connections, for the backoff
        while not self.stopping.is_set():
            try:
                # Timeouts only for network streams: for files the interrupt callback costs GIL round trips.
                timeout = self.timeouts if self.network else None
                with self._open(timeout) as container:
                    failures = 0
                    while (last := self._play(container, offset_ms)) is not None:
                        if self.reconnect or not self.loop:
                            break
                        offset_ms = last + 1000.0 / float(container.streams.video[0].average_rate or 30)
                        container.seek(0)
                    else:
                        return  # stopped, or the consumer is gone
                    once = not (self.reconnect or self.loop)  # a file read once: did it end where it says?
                    short = (
                        short_read(container, container.streams.video[0], *self._progress, whole=True) if once else None
                    )
                if not self.reconnect:
                    if short is not None:
                        self._error(short)
                    self._set_state(SourceState.ENDED)
                    return
                reason = "the stream ended"
            except (av.error.FFmpegError, OSError) as exc:
                message = str(exc)
                if any(word in message for word in _UNAUTHORIZED):
                    self._fail(f"{message}: check the user name and password in the URL")
                    return
                if not self.reconnect:
                    frames, seconds = self._progress
                    if frames:
                        self._fail(f"decoding stopped after frame {frames} ({seconds:.3f} s): {message}")
                    else:
                        self._fail(f"cannot decode {self.url}: {message}")
                    return
                reason = message
                failures += 1
            if not self._retry(reason, failures, *self.backoff):
                return
