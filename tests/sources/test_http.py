"""HTTP and HLS sources, served from a real HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from streamer.sources import PyAVSource, SourceState
from tests.media import clip_frame, make_clip, photo


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _write_hls(folder: Path, frames: int = 30, fps: int = 10) -> None:
    picture = photo()
    options = {"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod"}
    with av.open(str(folder / "index.m3u8"), "w", format="hls", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(fps)}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(picture, i, frames, (320, 240)), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _collect(source: PyAVSource, count: int, timeout: float = 20.0) -> int:
    received = 0
    deadline = time.monotonic() + timeout
    while received < count and time.monotonic() < deadline:
        if source.buffer.get(timeout=0.2) is not None:
            received += 1
    return received


def test_hls_playlist_over_http(http_root: tuple[Path, str]) -> None:
    folder, base = http_root
    _write_hls(folder)
    source = PyAVSource("hls", f"{base}/index.m3u8", live=False)
    source.start()
    assert _collect(source, 30) == 30
    assert source.join(10) and source.state is SourceState.ENDED


def test_live_http_stream_that_ends_is_reopened(http_root: tuple[Path, str]) -> None:
    folder, base = http_root
    make_clip(folder / "clip.ts", frames=10, fps=10)  # MPEG-TS streams without Range requests
    source = PyAVSource("http", f"{base}/clip.ts", backoff=(0.05, 0.2))
    source.start()
    try:
        assert _collect(source, 25) == 25, "the stream is played again and again"
        assert source.stats().reconnects >= 2
    finally:
        source.stop()
        assert source.join(10)


def test_missing_http_resource_is_named(http_root: tuple[Path, str]) -> None:
    _, base = http_root
    source = PyAVSource("http", f"{base}/nothing.mp4", live=False)
    source.start()
    assert source.join(20)
    stats = source.stats()
    assert stats.state is SourceState.FAILED and "404" in (stats.last_error or "")
