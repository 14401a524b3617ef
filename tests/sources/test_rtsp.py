"""Our PyAV source against a real RTSP server process (GStreamer), with the faults cameras have."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streamer.frames import Frame
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources import PyAVSource, SourceState
from streamer.tasks import Classifier, ClassifierOptions
from tests.rtsp import RtspServer, rtsp_clip


def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _camera(url: str, **options: object) -> PyAVSource:
    defaults: dict[str, object] = {"open_timeout": 3.0, "read_timeout": 2.0, "backoff": (0.2, 1.0)}
    return PyAVSource("cam", url, **{**defaults, **options})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.create_from_options(ClassifierOptions(device="cpu"))


def test_results_resume_after_the_server_is_killed_and_restarted(
    rtsp_server: RtspServer, tmp_path: Path, classifier: Classifier
) -> None:
    url = rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4", frames=30), loop=True)
    results: list[FrameResult] = []

    def collect(result: FrameResult, frame: Frame) -> None:
        results.append(result)

    source = _camera(url)
    with Pipeline(classifier.backend, on_result=collect, max_frame_age_ms=1000) as pipeline:
        pipeline.add(source)
        assert _until(lambda: len(results) >= 10, 20), "results flow from the camera"
        rtsp_server.kill()
        assert _until(lambda: source.state is SourceState.RECONNECTING, 10)
        before = len(results)
        rtsp_server.restart()
        assert _until(lambda: len(results) >= before + 10, 30), "results resume after the restart"
        stats = source.stats()
    assert stats.reconnects >= 1 and stats.state is SourceState.LIVE
    assert all(r.stream == "cam" and r.classes for r in results)


def test_a_stalled_server_trips_the_read_timeout(rtsp_server: RtspServer, tmp_path: Path) -> None:
    url = rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4"), loop=True)
    source = _camera(url, read_timeout=1.5)
    source.start()
    try:
        assert _until(lambda: source.stats().decoded >= 5, 20)
        rtsp_server.stall()
        assert _until(lambda: source.state is SourceState.RECONNECTING, 15), "the read timeout fires"
        rtsp_server.resume()
        decoded = source.stats().decoded
        assert _until(lambda: source.stats().decoded > decoded + 5, 30), "frames come back after the stall"
        assert source.state is SourceState.LIVE
    finally:
        rtsp_server.resume()
        source.stop()
        assert source.join(10)


def test_a_new_resolution_after_reconnect_is_not_a_crash(rtsp_server: RtspServer, tmp_path: Path) -> None:
    url = rtsp_server.start(rtsp_clip(tmp_path / "small.mp4", size=(320, 240)), loop=True)
    source = _camera(url)
    source.start()
    sizes: set[tuple[int, ...]] = set()
    try:
        assert _until(lambda: source.stats().width == 320, 20)
        rtsp_server.kill()
        rtsp_server.restart(rtsp_clip(tmp_path / "big.mp4", size=(640, 480)))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (640, 480) not in {(s[1], s[0]) for s in sizes}:
            frame = source.buffer.get(timeout=0.5)
            if frame is not None:
                sizes.add(frame.image.shape[:2])
        assert (480, 640) in sizes
        assert source.state is SourceState.LIVE and source.stats().reconnects >= 1
    finally:
        source.stop()
        assert source.join(10)


def test_wrong_credentials_fail_clearly_without_the_password(
    rtsp_server: RtspServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4"), user="admin", password="s3cret-pw", loop=True)
    wrong = rtsp_server.url.replace("rtsp://", "rtsp://admin:not-the-pw@")
    source = _camera(wrong)
    with caplog.at_level(logging.INFO):
        source.start()
        assert _until(lambda: source.state is SourceState.FAILED, 20)
    stats = source.stats()
    assert stats.last_error is not None and "401" in stats.last_error
    assert "check the user name and password" in stats.last_error
    for text in (stats.last_error, stats.url, caplog.text, repr(stats.to_dict())):
        assert "not-the-pw" not in text
    assert source.join(5)


def test_right_credentials_give_frames(rtsp_server: RtspServer, tmp_path: Path) -> None:
    rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4"), user="admin", password="s3cret-pw", loop=True)
    source = _camera(rtsp_server.url_with_credentials)
    source.start()
    try:
        frame = source.buffer.get(timeout=20)
        assert frame is not None and frame.image.shape == (240, 320, 3)
        assert "s3cret-pw" not in source.stats().url
    finally:
        source.stop()
        assert source.join(10)


def test_udp_transport_on_request(rtsp_server: RtspServer, tmp_path: Path) -> None:
    url = rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4"), loop=True)
    source = _camera(url, rtsp_transport="udp")
    assert source.options == {"rtsp_transport": "udp"}
    source.start()
    try:
        assert _until(lambda: source.stats().decoded >= 10, 20), source.stats().last_error
        assert source.state is SourceState.LIVE
    finally:
        source.stop()
        assert source.join(10)
