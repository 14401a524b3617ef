"""The RTSP test server itself, read by a plain PyAV client over 127.0.0.1.

These prove what the streaming tests rely on: frames arrive with the clip's size and
increasing timestamps, ``loop`` makes an endless stream, Basic authentication answers 401,
a killed server can be restarted on the same port (with another resolution), and a
stalled server makes a client's read time out within a bounded time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from tests import rtsp
from tests.rtsp import RtspServer, rtsp_clip

rtsp_server = rtsp.rtsp_server  # the fixture (tests/conftest.py may offer it to every module too)

OPEN_TIMEOUT = 5.0


def open_stream(url: str, *, read_timeout: float = 5.0) -> av.container.InputContainer:
    """Open ``url`` the plain way: RTSP over TCP, bounded open and read timeouts."""
    return av.open(url, options={"rtsp_transport": "tcp"}, timeout=(OPEN_TIMEOUT, read_timeout))


def frames(container: av.container.InputContainer) -> Iterator[av.VideoFrame]:
    """The container's decoded video frames."""
    yield from container.decode(video=0)


def read_frames(url: str, count: int | None, *, deadline: float = 15.0) -> list[av.VideoFrame]:
    """Up to ``count`` frames (all until the stream ends with None); reading stops after ``deadline`` seconds
    (a bound against hanging: the caller's count check then fails)."""
    start = time.monotonic()
    got: list[av.VideoFrame] = []
    with open_stream(url) as container:
        for frame in frames(container):
            got.append(frame)
            if (count is not None and len(got) >= count) or time.monotonic() - start > deadline:
                break
    return got


def increasing_pts(got: list[av.VideoFrame]) -> list[int]:
    """The frames' timestamps, checked to increase; FFmpeg's RTSP demuxer leaves the first frame's pts unset."""
    stamps = [frame.pts for frame in got[1:]]
    assert all(pts is not None for pts in stamps), stamps
    known = [pts for pts in stamps if pts is not None]
    assert all(b > a for a, b in itertools.pairwise(known)), known
    return known


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s of 320x240 at 15 fps, a keyframe every second."""
    return rtsp_clip(tmp_path_factory.mktemp("rtsp") / "clip.mp4", frames=30)


def test_frames_arrive_with_the_clips_size_and_the_stream_ends(rtsp_server: RtspServer, clip: Path) -> None:
    url = rtsp_server.start(clip)
    assert url == rtsp_server.url == rtsp_server.url_with_credentials
    assert url.startswith("rtsp://127.0.0.1:") and url.endswith("/stream")
    got = read_frames(url, None)
    assert len(got) == 30
    assert {(frame.width, frame.height) for frame in got} == {(320, 240)}
    increasing_pts(got)


def test_loop_replays_the_clip_endlessly(rtsp_server: RtspServer, tmp_path: Path) -> None:
    short = rtsp_clip(tmp_path / "short.mp4", frames=15)  # 1 s, one keyframe
    got = read_frames(rtsp_server.start(short, loop=True), 50)
    assert len(got) == 50  # more than three passes of a 15-frame clip
    steps = np.diff(increasing_pts(got))
    assert steps.min() > 0.9 * 6000 and steps.max() < 1.1 * 6000  # 1/15 s in 90 kHz, no jump at a wrap
    pictures = [frame.to_ndarray(format="rgb24") for frame in got]
    for i in range(15, 50):  # each pass decodes to the very same pictures
        assert np.array_equal(pictures[i], pictures[i - 15]), i
    assert not np.array_equal(pictures[0], pictures[7])  # ... of a moving pan


def test_basic_authentication(rtsp_server: RtspServer, clip: Path) -> None:
    url = rtsp_server.start(clip, user="viewer", password="s3cr:et@x", loop=True)
    assert rtsp_server.url_with_credentials == url.replace("rtsp://", "rtsp://viewer:s3cr%3Aet%40x@")
    for wrong in (url, url.replace("rtsp://", "rtsp://viewer:wrong@")):
        with pytest.raises(av.error.HTTPUnauthorizedError, match="401 Unauthorized"):
            open_stream(wrong)
    got = read_frames(rtsp_server.url_with_credentials, 5)
    assert len(got) == 5 and (got[-1].width, got[-1].height) == (320, 240)


def test_kill_and_restart_on_the_same_port_with_another_size(
    rtsp_server: RtspServer, clip: Path, tmp_path: Path
) -> None:
    url = rtsp_server.start(clip, loop=True)
    with open_stream(url, read_timeout=2.0) as container:
        stream = frames(container)
        next(stream)
        rtsp_server.kill()
        with pytest.raises((StopIteration, av.error.FFmpegError)):  # the stream ends: EOF or an error
            for _ in range(100):  # what the client had buffered, then the end
                next(stream)
    with pytest.raises(av.error.ConnectionRefusedError):
        open_stream(url)

    assert rtsp_server.restart() == url
    assert {(f.width, f.height) for f in read_frames(url, 5)} == {(320, 240)}

    large = rtsp_clip(tmp_path / "large.mp4", size=(640, 480))
    assert rtsp_server.restart(large) == url
    assert {(f.width, f.height) for f in read_frames(url, 5)} == {(640, 480)}


def test_a_stalled_server_makes_reads_time_out(rtsp_server: RtspServer, clip: Path) -> None:
    url = rtsp_server.start(clip, loop=True)
    with open_stream(url, read_timeout=2.0) as container:
        stream = frames(container)
        for _ in range(5):
            next(stream)
        rtsp_server.stall()
        after = 0
        # The frames the client had buffered, then the read timeout: FFmpeg raises
        # ExitError ("Immediate exit requested"), or InvalidDataError when the last,
        # half-received frame is flushed to the decoder; or the stream just ends.
        with pytest.raises((StopIteration, av.error.FFmpegError)):
            for _ in range(100):
                next(stream)
                after += 1
    assert after < 40  # no more than the buffered frames: nothing new came, and the read timed out
    rtsp_server.resume()
    assert len(read_frames(url, 5)) == 5


def test_a_server_that_cannot_start_says_why(rtsp_server: RtspServer, tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-video.mp4"
    bogus.write_text("not a video")
    with pytest.raises(RuntimeError, match=r"(?s)exited with status 1.*not-a-video.mp4"):
        rtsp_server.start(bogus)
    assert rtsp_server.pid is None
