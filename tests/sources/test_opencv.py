"""OpenCV webcams: this machine has none, so the real part to test is the error a user sees."""

from __future__ import annotations

import time

import pytest

from streamer.errors import SourceError
from streamer.sources.base import SourceState
from streamer.sources.opencv import OpenCVSource


def test_missing_device_path_is_named() -> None:
    with pytest.raises(SourceError, match=r"no camera at /dev/video97; list cameras with: ls /dev/video\*"):
        OpenCVSource("cam", "/dev/video97").open()


def test_missing_device_index_is_named() -> None:
    with pytest.raises(SourceError, match="cannot open camera 97: missing, busy, or not a capture device"):
        OpenCVSource("cam", 97).open()


def test_a_missing_camera_keeps_retrying_in_the_background() -> None:
    source = OpenCVSource("cam", "/dev/video97", backoff=(0.02, 0.05))
    source.start()
    deadline = time.monotonic() + 5
    while source.stats().reconnects < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = source.stats()
    source.stop()
    assert source.join(5)
    assert stats.state is SourceState.RECONNECTING and "no camera at /dev/video97" in (stats.last_error or "")
