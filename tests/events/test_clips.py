"""Event clips on real video: an H.264 file made at test time, demuxed with PyAV, remuxed, decoded back.

Every source frame carries its number as black/white blocks, so a decoded
clip frame says which source frame it is. Time is driven by packet pts.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.errors import ConfigError
from streamer.events.clips import (
    ClipConfig,
    Clips,
    PacketRing,
    StoredPacket,
    Template,
    clip_start,
    ring_trim,
)
from streamer.events.encoder import FrameClipEncoder
from streamer.frames import Frame
from streamer.sources.pyav import PyAVSource

FPS = 10
FRAMES = 100  # 10 s
GOP = 20  # a keyframe every 2 s
SIZE = (160, 120)
BITS = 8


def coded(index: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """An RGB frame whose top half shows ``index`` in binary (white = 1), a grey bar moving below."""
    width, height = size
    image = np.full((height, width, 3), 40, np.uint8)
    step = width // BITS
    for bit in range(BITS):
        if index >> bit & 1:
            image[: height // 2, bit * step : (bit + 1) * step] = 255
    x = index * 3 % (width - 10)
    image[height * 3 // 4 :, x : x + 10] = 160
    return image


def index_of(image: np.ndarray) -> int:
    """The frame number :func:`coded` drew into ``image`` (any size)."""
    height, width = image.shape[:2]
    step = width // BITS
    top = image[: height // 2].mean(axis=2)
    return sum(
        1 << bit for bit in range(BITS) if top[:, bit * step + step // 4 : (bit + 1) * step - step // 4].mean() > 150
    )


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 s at 10 fps, H.264 (MPEG-4 without libx264) with B-frames, a keyframe every 2 s."""
    path = tmp_path_factory.mktemp("source") / "source.mp4"
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "2"}
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(coded(i), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def packets(path: Path) -> Iterator[av.Packet[av.VideoStream]]:
    """The video packets of ``path`` in decode order (empty flush packets left out)."""
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                yield packet


def ms(packet: av.Packet[av.VideoStream]) -> float:
    assert packet.pts is not None and packet.time_base is not None
    return float(packet.pts * packet.time_base) * 1000.0


def drive(clips: Clips, path: Path, events: list[tuple[float, Callable[[], object]]], *, skip: int = 0) -> None:
    """Feed ``path``'s packets to ``clips`` as stream ``cam``, running each event once a packet reaches its ms."""
    pending = sorted(events, key=lambda e: e[0])
    for n, packet in enumerate(packets(path)):
        if n < skip:
            continue
        clips.packet("cam", packet)
        while pending and pending[0][0] <= ms(packet):  # after the packet, as a frame decoded from it
            pending.pop(0)[1]()


def decode(path: Path) -> tuple[list[int], list[float]]:
    """Frame numbers and times (s) of the frames in ``path``."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [index_of(f.to_ndarray(format="rgb24")) for f in frames], [float(f.time or 0.0) for f in frames]


def packet_bytes(path: Path) -> list[bytes]:
    return [bytes(p) for p in packets(path)]


def test_frame_numbers_survive_encoding(video: Path) -> None:
    indices, times = decode(video)
    assert indices == list(range(FRAMES))
    assert times[:3] == pytest.approx([0.0, 0.1, 0.2], abs=1e-6)


def test_clip_is_the_source_bytes_from_the_keyframe_before_pre_capture(video: Path, tmp_path: Path) -> None:
    done: list[tuple[str, Path]] = []
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=2.0, post_capture_s=1.0), on_done=lambda e, p: done.append((e, p)))
    drive(clips, video, [(5300, lambda: clips.start("ev1", "cam", 5300)), (7000, lambda: clips.stop("ev1", 7000))])
    assert clips.flush(60)
    assert done == [("ev1", tmp_path / "ev1.mp4")]
    assert not list(tmp_path.glob(".*")), "no temporary file is left"
    indices, times = decode(tmp_path / "ev1.mp4")
    assert indices[0] == 20, "starts on the keyframe at 2.0 s, the last at or before 5.3 - 2 s"
    assert indices == list(range(20, indices[-1] + 1)), "every frame, in order"
    assert 80 <= indices[-1] < 80 + GOP, "covers the stop plus post-capture (8.0 s), not much more"
    assert times[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(times))
    source = packet_bytes(video)
    clip = packet_bytes(tmp_path / "ev1.mp4")
    assert clip == source[20 : 20 + len(clip)], "remuxed, not re-encoded: the same compressed bytes"
    assert (clips.written, clips.failed) == (1, 0)
    clips.close()


def test_overlapping_clips_of_one_stream(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=1.0, post_capture_s=0.5))
    drive(
        clips,
        video,
        [
            (3000, lambda: clips.start("a", "cam", 3000)),
            (5000, lambda: clips.start("b", "cam", 5000)),
            (6000, lambda: clips.stop("a", 6000)),
            (8000, lambda: clips.stop("b", 8000)),
        ],
    )
    assert clips.flush(60)
    a, _ = decode(tmp_path / "a.mp4")
    b, _ = decode(tmp_path / "b.mp4")
    assert a[0] == 20 and 65 <= a[-1] < 80 and a == list(range(20, a[-1] + 1))
    assert b[0] == 40 and 85 <= b[-1] < FRAMES and b == list(range(40, b[-1] + 1))
    clips.close()


def test_event_before_any_keyframe_starts_at_the_next_one(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=1.0, post_capture_s=0.5))
    # join the stream mid-GOP (as a camera does): packets from 0.5 s, no keyframe until 2.0 s
    drive(
        clips,
        video,
        [(600, lambda: clips.start("early", "cam", 600)), (2500, lambda: clips.stop("early", 2500))],
        skip=5,
    )
    assert clips.flush(60)
    indices, _ = decode(tmp_path / "early.mp4")
    assert indices[0] == 20 and indices == list(range(20, indices[-1] + 1)) and indices[-1] >= 30
    clips.close()


def test_max_clip_s_closes_a_clip_that_never_stops(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=0.0, max_clip_s=3.0))
    drive(clips, video, [(2000, lambda: clips.start("long", "cam", 2000))])
    assert clips.open_clips() == [], "closed by its length, not by the end of the stream"
    assert clips.flush(60)
    indices, times = decode(tmp_path / "long.mp4")
    # 3 s from its keyframe, plus at most the frames B-frames are predicted from (shown later, decoded earlier)
    assert indices == list(range(20, indices[-1] + 1)) and 49 <= indices[-1] <= 52
    assert times[-1] < 3.3
    clips.close()


def test_unknown_stop_a_stream_without_packets_and_a_bad_id_are_harmless(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig())
    assert clips.stop("nobody", 1000) is False
    clips.start("webcam-event", "webcam", 1000)  # no packets ever came from this stream
    assert clips.open_clips() == []
    assert clips.stop("webcam-event", 2000) is False
    drive(clips, video, [(3000, lambda: clips.start("../escape", "cam", 3000))])  # not a file name: no clip
    assert clips.open_clips() == []
    assert clips.flush(10)
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "escape.mp4").exists()
    assert (clips.written, clips.failed) == (0, 0)
    clips.close()


def test_end_stream_and_close_write_open_clips(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=0.0))
    drive(clips, video, [(2000, lambda: clips.start("x", "cam", 2000)), (4000, lambda: clips.start("y", "cam", 4000))])
    assert sorted(clips.open_clips()) == ["x", "y"]
    clips.end_stream("cam")
    assert clips.open_clips() == []
    clips.close(60)
    x, _ = decode(tmp_path / "x.mp4")
    assert x == list(range(20, FRAMES)), "the file ended: the clip holds what there was"


def test_timestamps_that_jump_back_close_open_clips(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=0.0))
    drive(clips, video, [(8000, lambda: clips.start("before", "cam", 8000))])
    drive(clips, video, [])  # the stream restarts from 0 (a reconnect)
    assert clips.open_clips() == []
    assert clips.flush(60)
    indices, _ = decode(tmp_path / "before.mp4")
    assert indices == list(range(80, FRAMES))
    clips.close()


def test_a_looping_source_offset_keeps_one_timeline(video: Path, tmp_path: Path) -> None:
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=1.0, post_capture_s=0.0))
    for packet in packets(video):
        clips.packet("cam", packet)
    clips.start("loop", "cam", 9900)
    for packet in packets(video):  # the second pass, shifted as PyAVSource shifts its frames
        if ms(packet) + 10_000 > 12_000:
            clips.stop("loop", 12_000)
        clips.packet("cam", packet, 10_000.0)
    assert clips.flush(60)
    indices, times = decode(tmp_path / "loop.mp4")
    assert indices == list(range(80, FRAMES)) + list(range(0, indices[-1] + 1)) and indices[-1] >= 20
    assert all(b > a for a, b in itertools.pairwise(times))
    clips.close()


def test_close_is_final(tmp_path: Path) -> None:
    clips = Clips(tmp_path)
    clips.close(10)
    clips.close(10)
    assert clips.flush(1), "nothing can be pending after close"


def fake_packets(template: Template, keyframes: list[bool], size: int = 1000) -> list[StoredPacket]:
    tb = Fraction(1, 1000)
    return [
        StoredPacket(b"x" * size, i * 100, i * 100, 100, tb, key, i * 100.0, i * 100.0, template)
        for i, key in enumerate(keyframes)
    ]


@pytest.fixture(scope="module")
def template(video: Path) -> Template:
    with av.open(str(video)) as container:
        return Template(container.streams.video[0])


def test_ring_is_bounded_by_bytes_even_without_keyframes(template: Template) -> None:
    config = ClipConfig(pre_capture_s=600.0, max_ring_bytes=65536)
    ring = PacketRing(config)
    for packet in fake_packets(template, [i % 10 == 0 for i in range(500)]):  # 500 kB, a keyframe every 10 kB
        ring.add(packet)
        assert ring.nbytes <= 65536
    assert ring.nbytes >= 65536 - 10_000, "whole GOPs are dropped, no more"
    assert ring.since(0)[0].keyframe
    lonely = PacketRing(config)
    for packet in fake_packets(template, [True] + [False] * 499):  # one keyframe, then none
        lonely.add(packet)
        assert lonely.nbytes <= 65536
    assert lonely.nbytes == 0 and lonely.since(0) == []
    never = PacketRing(config)
    for packet in fake_packets(template, [False] * 100):
        never.add(packet)
    assert never.nbytes == 0


def test_ring_keeps_pre_capture_from_a_keyframe(template: Template) -> None:
    ring = PacketRing(ClipConfig(pre_capture_s=1.0))
    for packet in fake_packets(template, [i % 5 == 0 for i in range(40)]):  # 0.1 s apart, key every 0.5 s
        ring.add(packet)
    held = ring.since(0)
    assert held[0].pts_ms == 2500.0, "the last keyframe at or before 3.9 - 1.0 s"
    assert held[-1].pts_ms == 3900.0
    assert ring.since(3200)[0].pts_ms == 3000.0


def test_pure_selection() -> None:
    assert clip_start([0, 2000, 4000], 3300) == 1
    assert clip_start([0, 2000, 4000], 4000) == 2
    assert clip_start([2000, 4000], 500) == 0, "nothing that old: the oldest held"
    assert ring_trim([0, 2000, 4000], [10, 10, 10], 5000, 2.0, 100) == 1
    assert ring_trim([0, 2000, 4000], [10, 10, 50], 5000, 60.0, 55) == 2
    assert ring_trim([0], [500], 100, 60.0, 100) == 1


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"pre_capture_s": -1.0}, "[storage] pre_capture_s"),
        ({"post_capture_s": 1e9}, "[storage] post_capture_s"),
        ({"max_clip_s": 0.0}, "[storage] max_clip_s"),
        ({"max_ring_bytes": 10}, "[storage] max_ring_bytes"),
        ({"max_clip_bytes": 1.5}, "[storage] max_clip_bytes"),
    ],
)
def test_bad_config_names_the_key(options: dict[str, float], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        ClipConfig(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", [None, "mpeg4"])  # None: libx264 where FFmpeg has it; mpeg4 is the fallback
def test_frame_encoder_writes_a_decodable_clip(tmp_path: Path, codec: str | None) -> None:
    done: list[str] = []
    encoder = FrameClipEncoder(
        tmp_path, ClipConfig(pre_capture_s=1.0, post_capture_s=0.5), on_done=lambda e, p: done.append(e), codec=codec
    )
    for i in range(50):  # 1280 x 720 at 10 fps: stored at 640 x 360
        pts = i * 100.0
        if pts == 2000.0:
            encoder.start("cam-ev", "webcam", pts)
        if pts == 3000.0:
            assert encoder.stop("cam-ev", pts)
        encoder.frame("webcam", coded(i, (1280, 720)), pts)
    assert encoder.flush(60)
    assert done == ["cam-ev"]
    with av.open(str(tmp_path / "cam-ev.mp4")) as container:
        frames = list(container.decode(video=0))
    assert (frames[0].width, frames[0].height) == (640, 360)
    indices = [index_of(f.to_ndarray(format="rgb24")) for f in frames]
    assert indices == list(range(10, 36)), "1 s before the start (ring) to 0.5 s after the stop"
    times = [float(f.time or 0.0) for f in frames]
    assert times[0] == 0.0 and times[-1] == pytest.approx(2.5)
    assert (encoder.written, encoder.failed, encoder.dropped) == (1, 0, 0)
    encoder.close()


def test_frame_encoder_ring_is_capped(tmp_path: Path) -> None:
    encoder = FrameClipEncoder(tmp_path, ClipConfig(pre_capture_s=600.0, post_capture_s=0.0), max_frames=5)
    for i in range(30):
        encoder.frame("webcam", coded(i), i * 100.0)
    encoder.start("capped", "webcam", 2900.0)
    encoder.stop("capped", 2900.0)
    encoder.end_stream("webcam")
    encoder.close(60)
    with av.open(str(tmp_path / "capped.mp4")) as container:
        indices = [index_of(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    assert indices == [25, 26, 27, 28, 29]


def test_pyav_source_taps_every_packet_and_still_decodes(video: Path, tmp_path: Path) -> None:
    tapped: list[tuple[bytes, float]] = []
    clips = Clips(tmp_path, ClipConfig(pre_capture_s=1.0, post_capture_s=0.0))

    def tap(packet: av.Packet[av.VideoStream], offset_ms: float) -> None:
        tapped.append((bytes(packet), offset_ms))
        clips.packet("file", packet, offset_ms)

    source = PyAVSource("file", str(video), on_packet=tap)
    source.start()
    frames: list[Frame] = []
    deadline = time.monotonic() + 60  # a bound on a broken run, not a timing assertion
    while time.monotonic() < deadline and not source.buffer.drained:
        frame = source.buffer.get(timeout=0.2)
        if frame is not None:
            frames.append(frame)
            if frame.pts_ms == 4000.0:
                clips.start("tap", "file", frame.pts_ms)
            if frame.pts_ms == 6000.0:
                clips.stop("tap", frame.pts_ms)
    source.stop()
    assert source.join(10)
    assert [b for b, _ in tapped] == packet_bytes(video), "every video packet, once, in order"
    assert {offset for _, offset in tapped} == {0.0}
    assert [round(f.pts_ms) for f in frames] == [i * 100 for i in range(FRAMES)]
    assert [index_of(f.image) for f in frames] == list(range(FRAMES))
    clips.close(60)
    indices, _ = decode(tmp_path / "tap.mp4")
    assert indices[0] == 20 and indices == list(range(20, indices[-1] + 1)) and indices[-1] >= 60
