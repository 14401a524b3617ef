"""Event clips: a few seconds before an event, the event, a few seconds after, as an MP4.

Sources with compressed packets (files, RTSP, HTTP: :class:`Clips`) keep
their packets and remux them: no re-encode, the bytes are the camera's.
Sources without them (webcams, the browser camera:
:class:`streamer.events.encoder.FrameClipEncoder`) keep downscaled frames
and encode H.264. Both share one call order::

    clips = Clips(clips_dir, ClipConfig(pre_capture_s=5, post_capture_s=5), on_done=store.attach_clip)
    source = PyAVSource("cam1", url, on_packet=lambda p, offset: clips.packet("cam1", p, offset))
    ...                                   # source thread: every packet -> PacketRing (pre-capture)
    clips.start(event_id, "cam1", pts_ms) # event begins: clip = ring from the keyframe at or before
                                          #   pts_ms - pre_capture_s, then every new packet
    clips.stop(event_id, pts_ms)          # event ends: packets go on to pts_ms + post_capture_s,
                                          #   then a worker thread writes <clips_dir>/<event_id>.mp4
                                          #   (temp name + os.replace) and calls on_done(event_id, path)
    clips.end_stream("cam1")              # the stream ended: open clips are written with what they have
    clips.flush(timeout)                  # wait for pending writes (tests, shutdown)
    clips.close()                         # write what is open, stop the worker

Times are milliseconds on the frames' clock (``Frame.pts_ms``). A clip is cut
at ``max_clip_s`` (by decode time: a cut keeps the frames its B-frames need);
a stream whose timestamps jump back (a reconnect) or whose codec changes
closes its open clips there. Write errors are logged and counted in
:attr:`Clips.failed`, never raised into the source thread.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from streamer.errors import ConfigError
from streamer.events.machine import Event

__all__ = [
    "ClipBook",
    "ClipConfig",
    "Clips",
    "PacketRing",
    "StoredPacket",
    "Template",
    "clip_start",
    "follow_event",
    "remux",
    "ring_trim",
    "safe_name",
    "temp_path",
]

log = logging.getLogger(__name__)

#: called on the worker thread when a clip file is in place: ``(event_id, path)``
OnDone = Callable[[str, Path], None]


@dataclass(frozen=True)
class ClipConfig:
    """How much video a clip keeps around its event, and the memory it may hold.

    ``max_ring_bytes`` bounds each stream's pre-capture ring; ``max_clip_bytes``
    bounds each open clip (a clip over it is closed there).
    """

    pre_capture_s: float = 5.0
    post_capture_s: float = 5.0
    max_clip_s: float = 300.0
    max_ring_bytes: int = 64 * 2**20
    max_clip_bytes: int = 512 * 2**20

    def __post_init__(self) -> None:
        for key in ("pre_capture_s", "post_capture_s"):
            value = getattr(self, key)
            if not 0 <= value <= 600:
                raise ConfigError(f"[storage] {key} = {value!r}; give seconds from 0 to 600")
        if not 0 < self.max_clip_s <= 86400:
            raise ConfigError(f"[storage] max_clip_s = {self.max_clip_s!r}; give seconds above 0 (at most 86400)")
        for key in ("max_ring_bytes", "max_clip_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 2**16:
                raise ConfigError(f"[storage] {key} = {value!r}; give a whole number of bytes, at least 65536")


class Template:
    """A stream's codec parameters, copied so they outlive the source's container (which closes on reconnect)."""

    def __init__(self, stream: av.VideoStream) -> None:
        self._holder = av.open(io.BytesIO(), "w", format="mp4")  # never written: it only owns the copy
        self.stream = self._holder.add_stream_from_template(stream)
        self.codec = stream.codec_context.name
        self.size = (stream.codec_context.width, stream.codec_context.height)
        self.extradata = stream.codec_context.extradata or b""

    def same_as(self, stream: av.VideoStream) -> bool:
        context = stream.codec_context
        return (context.name, (context.width, context.height), context.extradata or b"") == (
            self.codec,
            self.size,
            self.extradata,
        )


@dataclass(frozen=True, eq=False)
class StoredPacket:
    """A copy of one compressed packet: its bytes, timestamps (in ``time_base``, a source's loop offset
    added) and those times in ms."""

    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool
    pts_ms: float  # presentation time on the frames' clock
    dts_ms: float  # decode time on the frames' clock (packets arrive in this order)
    template: Template


def clip_start(keyframe_ms: Sequence[float], start_ms: float) -> int:
    """Index of the keyframe a clip wanting video from ``start_ms`` starts on: the last at or before it,
    else the first (the ring holds nothing that old). ``keyframe_ms`` is increasing and not empty."""
    index = 0
    for i, ms in enumerate(keyframe_ms):
        if ms <= start_ms:
            index = i
    return index


def ring_trim(
    keyframe_ms: Sequence[float], gop_bytes: Sequence[int], newest_ms: float, keep_s: float, max_bytes: int
) -> int:
    """How many whole GOPs to drop from the front of a ring so it starts on the last keyframe at or before
    ``newest_ms - keep_s`` and holds at most ``max_bytes`` (even if that drops them all)."""
    drop = clip_start(keyframe_ms, newest_ms - keep_s * 1000.0) if keyframe_ms else 0
    total = sum(gop_bytes[drop:])
    while drop < len(gop_bytes) and total > max_bytes:
        total -= gop_bytes[drop]
        drop += 1
    return drop


class PacketRing:
    """One stream's recent packets as whole GOPs (each starting on a keyframe); thread-safe.

    Packets before the first keyframe (or after the ring was emptied for its
    byte bound) are dropped until the next keyframe: a clip needs one to start.
    """

    def __init__(self, config: ClipConfig) -> None:
        self.config = config
        self._gops: deque[list[StoredPacket]] = deque()
        self._gop_bytes: deque[int] = deque()
        self._lock = threading.Lock()

    def add(self, packet: StoredPacket) -> None:
        with self._lock:
            if packet.keyframe:
                self._gops.append([packet])
                self._gop_bytes.append(len(packet.data))
            elif self._gops:
                self._gops[-1].append(packet)
                self._gop_bytes[-1] += len(packet.data)
            else:
                return
            drop = ring_trim(
                [g[0].pts_ms for g in self._gops],
                list(self._gop_bytes),
                packet.pts_ms,
                self.config.pre_capture_s,
                self.config.max_ring_bytes,
            )
            for _ in range(drop):
                self._gops.popleft()
                self._gop_bytes.popleft()

    def since(self, start_ms: float) -> list[StoredPacket]:
        """Packets from the keyframe at or before ``start_ms`` (else the oldest held) on; empty if none."""
        with self._lock:
            if not self._gops:
                return []
            first = clip_start([g[0].pts_ms for g in self._gops], start_ms)
            return [p for gop in list(self._gops)[first:] for p in gop]

    def clear(self) -> None:
        with self._lock:
            self._gops.clear()
            self._gop_bytes.clear()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(self._gop_bytes)


class _Worker:
    """One daemon thread running jobs in order; :meth:`flush` waits until none is pending."""

    def __init__(self, name: str) -> None:
        self._jobs: deque[Callable[[], None] | None] = deque()
        self._pending = 0
        self._closed = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None], *, limit: int | None = None) -> bool:
        """Queue ``job``; ``False`` (not queued) if ``limit`` jobs are already pending or the worker is closed."""
        with self._ready:
            if (limit is not None and self._pending >= limit) or self._closed:
                return False
            self._pending += 1
            self._jobs.append(job)
            self._ready.notify_all()
            return True

    def flush(self, timeout: float | None = None) -> bool:
        with self._ready:
            return self._ready.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = None) -> None:
        with self._ready:
            if self._closed:
                return
            self._closed = True
            self._jobs.append(None)
            self._ready.notify_all()
        self._thread.join(timeout)

    def _main(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._jobs))
                job = self._jobs.popleft()
            if job is None:
                return
            try:
                job()
            except Exception:
                log.exception("clip worker: a job failed")
            finally:
                with self._ready:
                    self._pending -= 1
                    self._ready.notify_all()


def safe_name(event_id: str) -> bool:
    """Whether ``event_id`` can name a file in the clips folder (no folder part, no dot name, printable)."""
    return (
        0 < len(event_id) <= 200
        and event_id.isprintable()
        and event_id not in (".", "..")
        and not any(c in event_id for c in "/\\")
        and not event_id.startswith(".")
    )


def temp_path(path: Path) -> Path:
    """Where ``path`` is written before it is moved into place: hidden, and unique to this thread."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part")


def remux(packets: Sequence[StoredPacket], path: Path) -> None:
    """Write ``packets`` (one template, starting on a keyframe) to ``path`` as MP4, timestamps from 0, atomically."""
    temp = temp_path(path)
    base = packets[0].pts
    try:
        with av.open(str(temp), "w", format="mp4") as output:
            stream = output.add_stream_from_template(packets[0].template.stream)
            for stored in packets:
                packet = av.Packet(stored.data)
                packet.pts, packet.dts, packet.duration = stored.pts - base, stored.dts - base, stored.duration
                packet.time_base = stored.time_base
                packet.is_keyframe = stored.keyframe
                packet.stream = stream
                output.mux(packet)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@dataclass(eq=False)
class _Clip:
    event_id: str
    stream: str
    start_ms: float  # pre-capture included; the first packet's pts is the clip's start
    end_ms: float | None = None  # stop time + post_capture_s; None while the event lasts
    packets: list[StoredPacket] = field(default_factory=list)
    nbytes: int = 0
    last_ms: float = float("-inf")  # the latest pts held


class ClipBook(ABC):
    """What both clip writers share: the open clips by event id, their end, the worker that writes them.

    A subclass keeps its stream's recent media, opens clips in ``start`` and
    hands a finished clip to the worker in ``_finish`` (lock held).
    """

    def __init__(self, clips_dir: Path, config: ClipConfig | None, on_done: OnDone | None, name: str) -> None:
        self.clips_dir = Path(clips_dir)
        self.config = config or ClipConfig()
        self.on_done = on_done
        self.written = 0
        self.failed = 0
        self._open: dict[str, Any] = {}  # by event id: the subclass's clips (event_id, stream, end_ms)
        self._lock = threading.Lock()
        self._worker = _Worker(name)

    @abstractmethod
    def start(self, event_id: str, stream: str, pts_ms: float) -> None:
        """Begin the clip of ``event_id`` on ``stream``, from ``pts_ms - pre_capture_s``."""

    @abstractmethod
    def _finish(self, clip: Any) -> None:
        """Hand a finished clip to the worker (lock held)."""

    def stop(self, event_id: str, pts_ms: float) -> bool:
        """End the event: media go on to ``pts_ms + post_capture_s``; ``False`` if no clip is open for it."""
        with self._lock:
            clip = self._open.get(event_id)
            if clip is None:
                return False
            clip.end_ms = pts_ms + self.config.post_capture_s * 1000.0
            return True

    def end_stream(self, stream: str) -> None:
        """Write every open clip of ``stream`` with what it has (the stream ended or restarted)."""
        with self._lock:
            for clip in [c for c in self._open.values() if c.stream == stream]:
                self._finish(clip)

    def _done(self, event_id: str, path: Path) -> None:
        """A clip is in place (worker thread): count it and tell ``on_done``."""
        self.written += 1
        if self.on_done is not None:
            try:
                self.on_done(event_id, path)
            except Exception:
                log.exception("clips: on_done failed for %s", event_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything handed to the worker is done; ``False`` if ``timeout`` passed first."""
        return self._worker.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write every open clip with what it has, then stop the worker (waiting up to ``timeout``)."""
        with self._lock:
            for clip in list(self._open.values()):
                self._finish(clip)
        self._worker.close(timeout)

    def open_clips(self) -> list[str]:
        """Event ids whose clips are still collecting."""
        with self._lock:
            return list(self._open)


class Clips(ClipBook):
    """Event clips remuxed from streams' compressed packets; one per runtime, any number of streams.

    :meth:`packet` runs on source threads and only copies and appends; files
    are written on one worker thread. ``on_done`` (``None``: nobody is told) is
    called there with each clip written.
    """

    def __init__(self, clips_dir: Path, config: ClipConfig | None = None, *, on_done: OnDone | None = None) -> None:
        super().__init__(clips_dir, config, on_done, "clips")
        self._rings: dict[str, PacketRing] = {}
        self._templates: dict[str, Template] = {}
        self._last: dict[str, tuple[av.VideoStream, float]] = {}  # the stream object last seen, last dts_ms

    def packet(self, stream: str, packet: av.Packet[av.VideoStream], offset_ms: float = 0.0) -> None:
        """Keep a copy of ``packet`` of ``stream`` (source thread; never raises, never waits on disk).

        ``offset_ms`` is what the source adds to this packet's own times (a looping file's offset).
        """
        try:
            self._packet(stream, packet, offset_ms)
        except Exception:
            log.exception("clips: cannot keep a packet of stream %s", stream)

    def _packet(self, stream: str, packet: av.Packet[av.VideoStream], offset_ms: float) -> None:
        pts, dts, time_base = packet.pts, packet.dts, packet.time_base
        pts = dts if pts is None else pts
        dts = pts if dts is None else dts
        if pts is None or dts is None or time_base is None or not packet.size:
            return  # no time: it cannot be placed in a clip
        template = self._template(stream, packet.stream)
        shift = round(Fraction(offset_ms) / 1000 / time_base)  # on the frames' clock: a loop keeps counting
        stored = StoredPacket(
            data=bytes(packet),
            pts=pts + shift,
            dts=dts + shift,
            duration=packet.duration or 0,
            time_base=time_base,
            keyframe=packet.is_keyframe,
            pts_ms=float((pts + shift) * time_base) * 1000.0,
            dts_ms=float((dts + shift) * time_base) * 1000.0,
            template=template,
        )
        last = self._last.get(stream)
        self._last[stream] = (packet.stream, stored.dts_ms)
        ring = self._rings.setdefault(stream, PacketRing(self.config))
        if last is not None and stored.dts_ms < last[1]:  # the clock jumped back: a new timeline
            self.end_stream(stream)
            ring.clear()
        with self._lock:  # held across both, so a clip starting now sees this packet once
            ring.add(stored)
            for clip in [c for c in self._open.values() if c.stream == stream]:
                self._feed(clip, stored)

    def _template(self, stream: str, video: av.VideoStream) -> Template:
        known = self._templates.get(stream)
        last = self._last.get(stream)
        if known is not None and last is not None and last[0] is video:
            return known
        if known is not None and known.same_as(video):
            return known
        if known is not None:  # a new codec or size: what is open cannot go on in the same file
            self.end_stream(stream)
            self._rings.pop(stream, None)
        template = self._templates[stream] = Template(video)
        return template

    def _feed(self, clip: _Clip, stored: StoredPacket) -> None:
        """Add ``stored`` to ``clip`` or close it (lock held)."""
        ended = clip.end_ms is not None and stored.dts_ms > clip.end_ms
        too_long = stored.dts_ms - clip.start_ms >= self.config.max_clip_s * 1000.0
        too_big = clip.nbytes + len(stored.data) > self.config.max_clip_bytes
        changed = bool(clip.packets) and stored.template is not clip.packets[0].template
        # past its end, a clip still takes the frames (B-frames) shown before one it holds: no gap at the end
        if ((ended or too_long) and stored.pts_ms >= clip.last_ms) or too_big or changed:
            self._finish(clip)
            return
        if not clip.packets:
            if not stored.keyframe:
                return  # waiting for a keyframe to start on
            clip.start_ms = stored.pts_ms
        elif stored.pts_ms < clip.start_ms:
            return  # shown before the clip's keyframe (an open GOP): it needs frames the clip lacks
        clip.packets.append(stored)
        clip.nbytes += len(stored.data)
        clip.last_ms = max(clip.last_ms, stored.pts_ms)

    def start(self, event_id: str, stream: str, pts_ms: float) -> None:
        """Begin the clip of ``event_id`` on ``stream``, from the keyframe at or before ``pts_ms - pre_capture_s``.

        Nothing happens if the stream never gave a packet (it has no packets: use :class:`FrameClipEncoder`).
        """
        if not safe_name(event_id):
            log.error("clips: event id %r cannot name a file; no clip", event_id)
            return
        ring = self._rings.get(stream)
        if ring is None:
            log.debug("clips: stream %s has no packets; no clip for event %s", stream, event_id)
            return
        clip = _Clip(event_id, stream, pts_ms - self.config.pre_capture_s * 1000.0)
        with self._lock:
            if event_id in self._open:
                return
            self._open[event_id] = clip
            for stored in ring.since(clip.start_ms):
                if event_id not in self._open:
                    break
                self._feed(clip, stored)

    def _finish(self, clip: _Clip) -> None:
        """Hand ``clip`` to the worker (lock held)."""
        self._open.pop(clip.event_id, None)
        if not clip.packets:
            log.info("clips: event %s on %s ended before any keyframe; no clip", clip.event_id, clip.stream)
            return
        packets = clip.packets
        self._worker.submit(lambda: self._write(clip.event_id, packets))

    def _write(self, event_id: str, packets: list[StoredPacket]) -> None:
        path = self.clips_dir / f"{event_id}.mp4"
        try:
            self.clips_dir.mkdir(parents=True, exist_ok=True)
            remux(packets, path)
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            self.failed += 1
            log.error("clips: cannot write %s: %s", path, exc)
            return
        self._done(event_id, path)


def follow_event(clips: ClipBook, event: Event, pts_ms: float) -> None:
    """An event's clip: started when the event is new, stopped when it ends (``pts_ms``: the frame's time);
    an event that ended with its stream is written at once with what there is (no packet will come)."""
    stream = event.after.stream
    if event.kind == "new":
        clips.start(event.id, stream, pts_ms)
    elif event.kind == "end":
        clips.stop(event.id, pts_ms)
        if "stream" in event.reasons:
            clips.end_stream(stream)
