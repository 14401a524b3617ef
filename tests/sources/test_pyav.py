"""PyAV sources on real clips made at test time, several containers and codecs, and bad inputs."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from streamer.errors import InputNotFoundError
from streamer.frames import Frame
from streamer.sources.base import Source, SourceState, redact, redact_text, secrets_in
from streamer.sources.pyav import PyAVSource, is_live_url, playback_delay
from tests.media import make_clip


def _drain(source: Source, timeout: float = 20.0) -> list[Frame]:
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = source.buffer.get(timeout=0.2)
        if frame is not None:
            frames.append(frame)
        elif source.buffer.drained:
            break
    source.stop()
    assert source.join(5)
    return frames


def _wait_state(source: Source, states: set[SourceState], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while source.state not in states and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("clip.mp4", "libx264"),
        ("clip.mkv", "libx264"),
        ("clip.webm", "libvpx-vp9"),
        ("clip.avi", "mpeg4"),
        ("clip.mkv", "mjpeg"),
    ],
)
def test_file_gives_every_frame_in_order(tmp_path: Path, name: str, codec: str) -> None:
    path = make_clip(tmp_path / name, frames=20, fps=10, size=(160, 120), codec=codec)
    source = PyAVSource("file", str(path))
    assert not source.live, "a file played as fast as possible is lossless"
    source.start()
    frames = _drain(source)
    assert [f.index for f in frames] == list(range(20))
    assert [round(f.pts_ms) for f in frames] == [i * 100 for i in range(20)]
    assert frames[0].image.shape == (120, 160, 3)
    stats = source.stats()
    assert (stats.state, stats.decoded, stats.dropped, stats.width, stats.height) == (
        SourceState.ENDED,
        20,
        0,
        160,
        120,
    )


def test_a_phone_video_is_turned_upright(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "phone.mp4", frames=3, fps=3, size=(320, 240), rotation=-90)
    source = PyAVSource("phone", str(clip))
    source.start()
    frames = _drain(source)
    assert [f.image.shape for f in frames] == [(320, 240, 3)] * 3, "stored 320x240 sideways, shown 240x320"
    assert (source.stats().width, source.stats().height) == (240, 320)


def test_realtime_pacing_follows_the_pts_on_a_fake_clock() -> None:
    clock, delay = playback_delay(None, 1000.0, now=50.0)  # the first frame starts the clock, shown at once
    assert (clock, delay) == ((50.0, 1000.0), 0.0)
    assert playback_delay(clock, 1100.0, now=50.02) == (clock, pytest.approx(0.08)), "100 ms later in the file"
    assert playback_delay(clock, 1200.0, now=50.5)[1] == pytest.approx(-0.3), "late: shown at once, no catch-up wait"
    assert playback_delay(clock, 3000.0, now=51.0)[1] == pytest.approx(1.0)


def test_realtime_file_acts_as_a_live_camera(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", frames=10, fps=10, size=(160, 120))
    source = PyAVSource("cam", str(path), realtime=True)
    assert source.live, "a live buffer: it drops the oldest frame instead of waiting for the consumer"
    source.start()
    frames = _drain(source)
    stamps = [f.pts_ms for f in frames]
    assert len(frames) >= 8 and stamps == sorted(stamps)


def test_looping_file_keeps_pts_increasing(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mp4", frames=5, fps=10, size=(160, 120))
    source = PyAVSource("loop", str(path), loop=True)
    source.start()
    frames = [source.buffer.get(timeout=5) for _ in range(12)]
    source.stop()
    source.join(5)
    stamps = [f.pts_ms for f in frames if f is not None]
    assert len(stamps) == 12 and stamps == sorted(stamps) and len(set(stamps)) == 12
    assert stamps[5] == pytest.approx(500.0)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"video file .*gone\.mp4 does not exist"):
        PyAVSource("x", str(tmp_path / "gone.mp4"))


def test_random_bytes_fail_with_the_file_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(bytes(range(256)) * 64)
    source = PyAVSource("junk", str(junk))
    source.start()
    assert _drain(source) == []
    stats = source.stats()
    assert stats.state is SourceState.FAILED
    assert stats.last_error is not None and "junk.mp4" in stats.last_error


def test_truncated_file_gives_what_it_can(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "clip.mkv", frames=30, fps=10, size=(160, 120))
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    source = PyAVSource("cut", str(cut))
    source.start()
    frames = _drain(source)
    assert 3 <= len(frames) < 30
    assert source.state in (SourceState.ENDED, SourceState.FAILED)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_camera_reconnects_without_crashing_and_hides_the_password() -> None:
    url = f"rtsp://admin:hunter2@127.0.0.1:{_closed_port()}/stream"
    source = PyAVSource("cam", url, open_timeout=1.0, backoff=(0.05, 0.2))
    source.start()
    deadline = time.monotonic() + 10
    while source.stats().reconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    stats = source.stats()
    source.stop()
    assert source.join(5)
    assert stats.state is SourceState.RECONNECTING and stats.reconnects >= 2
    assert stats.last_error and "hunter2" not in stats.last_error
    assert stats.url == url.replace("hunter2", "***")
    assert "hunter2" not in repr(stats.to_dict())


def test_redact_and_live_urls() -> None:
    assert redact("rtsp://u:p%40ss@cam.local:554/s?x=1") == "rtsp://u:***@cam.local:554/s?x=1"
    assert redact("rtsp://cam.local/s") == "rtsp://cam.local/s"
    assert redact("/videos/a.mp4") == "/videos/a.mp4"
    assert is_live_url("rtsp://x/y") and is_live_url("https://x/y.m3u8")
    assert not is_live_url("/videos/a.mp4") and not is_live_url("file:///videos/a.mp4")


def test_the_bundled_demo_clip_decodes() -> None:
    clip = Path(__file__).resolve().parents[2] / "samples" / "street.mp4"
    source = PyAVSource("street", str(clip))
    source.start()
    frames = _drain(source)
    assert len(frames) == 90 and frames[0].image.shape == (426, 640, 3)
    assert frames[-1].pts_ms == pytest.approx(89 * 1000 / 15)


def test_redact_query_secrets() -> None:
    url = "rtsp://alice:pw1@cam.local:554/live?user=alice&password=hunter2&Api-Key=k%2B1&sig=s9&channel=2&auth="
    assert redact(url) == (
        "rtsp://alice:***@cam.local:554/live?user=alice&password=***&Api-Key=***&sig=***&channel=2&auth="
    )
    assert secrets_in(url) == ["hunter2", "k%2B1", "k+1", "pw1", "s9"]
    message = "[Errno 111] Connection refused: 'rtsp://alice:pw1@cam.local:554/live?password=hunter2'"
    assert (
        redact_text(message, url)
        == "[Errno 111] Connection refused: 'rtsp://alice:***@cam.local:554/live?password=***'"
    )
    for token in ("token", "access_token", "secret", "passwd", "pwd", "key", "session", "credential"):
        assert redact(f"http://h/x.m3u8?{token}=v4lue") == f"http://h/x.m3u8?{token}=***"
    assert redact("rtsp://u:p@host:99999/x?token=t") == "rtsp://host:99999/x?***", "unparseable: nothing kept"
