"""A real RTSP server for the tests: GStreamer's RTSP server serving one H.264 mp4 on 127.0.0.1.

Run with Debian's ``/usr/bin/python3`` (it gets ``gi`` from ``python3-gi``); it imports only
``gi`` and the standard library. ``tests/rtsp.py`` starts it as a subprocess::

    /usr/bin/python3 -I tests/rtsp_server.py --port 8554 --file clip.mp4 --path /stream [--loop]
        [--user U --password PW]

Once the server listens it prints exactly one line, ``READY rtsp://127.0.0.1:PORT/path``, and
runs until SIGTERM or SIGINT (or, with ``--watch-stdin``, until its stdin closes, which
happens when the process that started it dies, even by SIGKILL). ``--check`` only verifies
that everything the server needs is installed: it prints ``OK`` (exit 0) or the reason it
cannot run (exit 1).

How the file is served: at start the whole clip's H.264 access units are read once into memory
(``filesrc ! qtdemux ! appsink``), and each media (one per client group: the factory is
shared) replays them through ``appsrc ! rtph264pay``. Every buffer gets a fresh timestamp, so
with ``--loop`` pass ``n`` of the clip is shifted by ``n`` clip durations: timestamps (and hence
RTP timestamps) keep increasing and a client sees one endless stream. The sinks of the RTSP
server's pipeline are synchronised to the clock, so the stream runs at the clip's frame rate.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

#: Elements the server needs, and the Debian package that ships each one.
ELEMENTS = {
    "filesrc": "libgstreamer1.0-0",
    "appsrc": "gstreamer1.0-plugins-base",
    "appsink": "gstreamer1.0-plugins-base",
    "qtdemux": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
    "rtpbin": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
}

#: Each media's pipeline. h264parse puts SPS/PPS in front of every keyframe (so a client can
#: join at any keyframe) once per access unit: rtph264pay's own config-interval would insert
#: them before every slice, and FFmpeg then splits a multi-slice keyframe into two frames.
LAUNCH = (
    "( appsrc name=src format=time stream-type=stream ! h264parse config-interval=-1"
    " ! video/x-h264,stream-format=byte-stream,alignment=au ! rtph264pay name=pay0 pt=96 )"
)
LOAD_TIMEOUT_US = 20_000_000  # reading the clip into memory


@dataclass(frozen=True)
class Unit:
    """One H.264 access unit of the clip, with timestamps relative to the clip's start."""

    data: bytes
    pts: int
    dts: int
    duration: int
    flags: Gst.BufferFlags


@dataclass(frozen=True)
class Clip:
    """The clip's access units in decode order, their caps and the length of one pass."""

    caps: Gst.Caps
    units: list[Unit]
    period: int


def check() -> str | None:
    """None if every element the server needs is installed, else why not."""
    Gst.init(None)
    names = [name for name in ELEMENTS if Gst.ElementFactory.find(name) is None]
    if names:
        packages = sorted({ELEMENTS[name] for name in names})
        return f"GStreamer elements {', '.join(names)} missing: install {' '.join(packages)}"
    return None


def load(path: str) -> Clip:
    """Read the H.264 video track of the mp4 at ``path`` into memory (test clips are small)."""
    pipeline = Gst.parse_launch(
        "filesrc name=file ! qtdemux name=demux demux.video_0 ! video/x-h264 ! appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    raw: list[tuple[bytes, int, int, int, Gst.BufferFlags]] = []
    caps: Gst.Caps | None = None
    deadline = GLib.get_monotonic_time() + LOAD_TIMEOUT_US
    try:
        while True:
            if GLib.get_monotonic_time() > deadline:
                raise RuntimeError(f"reading {path} took too long")
            message = bus.pop_filtered(Gst.MessageType.ERROR)
            if message is not None:
                error, debug = message.parse_error()
                raise RuntimeError(f"cannot read {path}: {error.message} ({debug})")
            sample = sink.emit("try-pull-sample", 100 * Gst.MSECOND)
            if sample is None:
                if sink.get_property("eos"):
                    break
                continue
            buffer = sample.get_buffer()
            caps = caps or sample.get_caps()
            pts = buffer.pts if buffer.pts != Gst.CLOCK_TIME_NONE else buffer.dts
            dts = buffer.dts if buffer.dts != Gst.CLOCK_TIME_NONE else pts
            raw.append((buffer.extract_dup(0, buffer.get_size()), pts, dts, buffer.duration, buffer.get_flags()))
    finally:
        pipeline.set_state(Gst.State.NULL)
    if caps is None or not raw:
        raise RuntimeError(f"{path} has no H.264 video frames")
    fallback = _frame_duration(caps)
    durations = [d if d != Gst.CLOCK_TIME_NONE else fallback for *_, d, _ in raw]
    start = min(min(pts, dts) for _, pts, dts, _, _ in raw)
    end = max(pts + d for (_, pts, _, _, _), d in zip(raw, durations, strict=True))
    units = [
        Unit(data, pts - start, dts - start, d, flags & Gst.BufferFlags.DELTA_UNIT)
        for (data, pts, dts, _, flags), d in zip(raw, durations, strict=True)
    ]
    return Clip(caps=caps, units=units, period=end - start)


def _frame_duration(caps: Gst.Caps) -> int:
    """One frame's duration from the caps' frame rate (1/15 s when the caps have none)."""
    ok, num, den = caps.get_structure(0).get_fraction("framerate")
    if not ok or num <= 0:
        return Gst.SECOND // 15
    return Gst.util_uint64_scale_int(Gst.SECOND, den, num)


class Feeder:
    """Feeds one media's ``appsrc`` with the clip's access units, once or forever."""

    def __init__(self, clip: Clip, source: Gst.Element, *, loop: bool) -> None:
        self.clip, self.loop = clip, loop  # no reference to source: it holds this feeder
        self.index = 0
        self.done = False
        source.set_property("caps", clip.caps)
        source.connect("need-data", self.need_data)

    def need_data(self, source: Gst.Element, _length: int) -> None:
        """Push the next access unit; at the end of the clip, wrap around or end the stream."""
        if self.done:
            return
        count = len(self.clip.units)
        if self.index >= count and not self.loop:
            self.done = True
            source.emit("end-of-stream")
            return
        offset = (self.index // count) * self.clip.period
        unit = self.clip.units[self.index % count]
        buffer = Gst.Buffer.new_wrapped(unit.data)
        buffer.pts = offset + unit.pts
        buffer.dts = offset + unit.dts
        buffer.duration = unit.duration
        if unit.flags:
            buffer.set_flags(unit.flags)
        self.index += 1
        source.emit("push-buffer", buffer)


STDIN_CLOSED = GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR


def stdin_closed(loop: GLib.MainLoop) -> bool:
    """Quit ``loop`` once stdin is at its end: the process that started the server is gone."""
    if os.read(sys.stdin.fileno(), 4096):
        return True  # keep watching
    loop.quit()
    return False


def main(argv: list[str] | None = None) -> int:
    """Serve ``--file`` at ``rtsp://127.0.0.1:PORT/path`` until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the server can run")
    parser.add_argument("--port", type=int, help="TCP port on 127.0.0.1")
    parser.add_argument("--file", help="an mp4 with an H.264 video track")
    parser.add_argument("--path", default="/stream", help="mount point (default /stream)")
    parser.add_argument("--user", help="require RTSP Basic authentication with this user")
    parser.add_argument("--password", help="the user's password")
    parser.add_argument("--loop", action="store_true", help="replay the file forever")
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (the parent is gone)")
    args = parser.parse_args(argv)

    reason = check()
    if args.check:
        print(reason or "OK", flush=True)
        return 1 if reason else 0
    if reason:
        print(reason, file=sys.stderr, flush=True)
        return 1
    if args.port is None or args.file is None:
        parser.error("--port and --file are required")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    path = args.path if args.path.startswith("/") else "/" + args.path

    try:
        clip = load(args.file)
    except RuntimeError as error:
        print(error, file=sys.stderr, flush=True)
        return 1

    def configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        # The appsrc's need-data handler holds the feeder, so it lives exactly as long as the media.
        Feeder(clip, media.get_element().get_by_name("src"), loop=args.loop)

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(LAUNCH)
    factory.set_shared(True)
    pool = GstRtspServer.RTSPAddressPool()  # RTP/RTCP over UDP on 127.0.0.1 too, not on every interface
    pool.add_range("127.0.0.1", "127.0.0.1", 30000, 60000, 0)
    factory.set_address_pool(pool)
    factory.connect("media-configure", configure)

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(path, factory)

    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)
    if args.watch_stdin:
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, STDIN_CLOSED, lambda *_: stdin_closed(loop))
    print(f"READY rtsp://127.0.0.1:{server.get_bound_port()}{path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
