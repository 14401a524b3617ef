"""A real RTSP server for tests: GStreamer's RTSP server in a subprocess, on 127.0.0.1 only.

``tests/rtsp_server.py`` runs under Debian's ``/usr/bin/python3`` (``python3-gi`` and
``gir1.2-gst-rtsp-server-1.0``; ``tests/run`` installs them). ``RtspServer`` starts it,
kills, restarts (same port), stalls (SIGSTOP) and resumes it, and never leaves it behind.
The ``rtsp_server`` fixture skips the test when the server cannot run, or fails it when
``STREAMER_REQUIRE_ALL=1``::

    def test_stream(rtsp_server: RtspServer, tmp_path: Path) -> None:
        url = rtsp_server.start(rtsp_clip(tmp_path / "clip.mp4"), loop=True)
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from urllib.parse import quote

import pytest

from tests.media import make_clip
from tests.required import unavailable

__all__ = ["SYSTEM_PYTHON", "RtspServer", "rtsp_available", "rtsp_clip", "rtsp_server"]

#: Debian's Python, which has ``gi`` from ``python3-gi``.
SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
#: Debian packages the server needs (``tests/run`` installs the same list).
PACKAGES = (
    "python3-gi",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad",
)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def rtsp_clip(
    path: Path, *, frames: int = 30, fps: int = 15, size: tuple[int, int] = (320, 240), gop: int | None = None
) -> Path:
    """An H.264 mp4 fit for RTSP: a keyframe every ``gop`` frames (default: every second), no B-frames."""
    options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(gop or fps), "bf": "0"}
    return make_clip(path, frames=frames, fps=fps, size=size, codec="libx264", options=options)


@functools.cache
def rtsp_available() -> str | None:
    """None if the RTSP server can run here, else the reason it cannot."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} not found (the RTSP test server needs Debian's python3 with {' '.join(PACKAGES)})"
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-I", str(SERVER_SCRIPT), "--check"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{SYSTEM_PYTHON} {SERVER_SCRIPT.name} --check took over {START_TIMEOUT:.0f} s"
    if probe.returncode == 0:
        return None
    detail = (probe.stdout.strip() + "\n" + probe.stderr.strip()).strip().splitlines()
    return f"RTSP test server unavailable ({detail[-1] if detail else probe.returncode}); install {' '.join(PACKAGES)}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RtspServer:
    """One RTSP server subprocess serving a file at ``rtsp://127.0.0.1:PORT/stream``."""

    def __init__(self, path: str = "/stream") -> None:
        self.path = path
        self.port: int | None = None
        self.file: Path | None = None
        self.user: str | None = None
        self.password: str | None = None
        self.loop = False
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[str] | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        """The stream's URL, without credentials."""
        if self.port is None:
            raise RuntimeError("the RTSP server was never started")
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        """The stream's URL with ``user:password@`` (percent-encoded) when the server requires them."""
        if self.user is None or self.password is None:
            return self.url
        userinfo = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
        return self.url.replace("rtsp://", "rtsp://" + userinfo, 1)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.process.pid if self.process is not None and self.process.poll() is None else None

    def start(
        self,
        file: Path,
        *,
        user: str | None = None,
        password: str | None = None,
        port: int | None = None,
        loop: bool = False,
    ) -> str:
        """Serve ``file`` (an H.264 mp4), forever with ``loop``; returns the URL without credentials.

        Stops a server this object already runs, picks a free port on 127.0.0.1 unless ``port``
        is given, and returns once the server listens (at most 20 s, else RuntimeError with the
        server's stderr).
        """
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self._halt(graceful=False)
        self.file, self.user, self.password, self.loop = Path(file), user, password, loop
        self.port = port if port is not None else free_port()
        command = [SYSTEM_PYTHON, "-I", str(SERVER_SCRIPT), "--port", str(self.port), "--watch-stdin"]
        command += ["--file", str(self.file), "--path", self.path]
        if user is not None and password is not None:
            command += ["--user", user, "--password", password]
        if loop:
            command.append("--loop")
        # Held open for the server's lifetime (closed by _halt); a file, not a pipe nobody drains.
        self._stderr = tempfile.TemporaryFile("w+", prefix="rtsp-server-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # the server exits when this closes, so it never outlives the tests
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._wait_ready()
        return self.url

    def _wait_ready(self) -> None:
        """Wait for the server's ``READY`` line; on failure stop it and raise RuntimeError."""
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line, closed = "", False
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and not line.endswith("\n"):
                if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                chunk = os.read(self.process.stdout.fileno(), 4096).decode()
                if not chunk:
                    closed = True  # the server is exiting
                    break
                line += chunk
        if line.startswith(f"READY {self.url}"):
            return
        if closed:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(STOP_TIMEOUT)
        stderr = self.stderr()
        code = self.process.poll()
        self._halt(graceful=False)
        state = f"exited with status {code}" if code is not None else f"not ready after {START_TIMEOUT:.0f} s"
        raise RuntimeError(f"RTSP server on port {self.port} {state}; stdout: {line.strip()!r}; stderr:\n{stderr}")

    def stderr(self) -> str:
        """What the server has written to stderr so far."""
        if self._stderr is None or self._stderr.closed:
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def restart(self, file: Path | None = None) -> str:
        """Kill the server and start it again on the same port, with the same or another ``file``."""
        if self.file is None:
            raise RuntimeError("the RTSP server was never started")
        self.kill()
        return self.start(file or self.file, user=self.user, password=self.password, port=self.port, loop=self.loop)

    def kill(self) -> None:
        """SIGKILL the server (it closes no session gracefully) and wait for it."""
        self._halt(graceful=False)

    def stall(self) -> None:
        """SIGSTOP the server: it stops sending, its TCP connections stay open."""
        self._signal(signal.SIGSTOP)
        self._stopped = True

    def resume(self) -> None:
        """SIGCONT a stalled server."""
        self._signal(signal.SIGCONT)
        self._stopped = False

    def close(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it is not gone within 5 s."""
        self._halt(graceful=True)

    def __enter__(self) -> RtspServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("the RTSP server is not running")
        os.killpg(self.process.pid, signum)  # its own session and process group (start_new_session)

    def _halt(self, *, graceful: bool) -> None:
        """End the server process (bounded in time) and release its pipes."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                if process.poll() is None:
                    if graceful:
                        if self._stopped:
                            os.killpg(process.pid, signal.SIGCONT)  # a stopped process cannot handle SIGTERM
                        os.killpg(process.pid, signal.SIGTERM)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            process.wait(STOP_TIMEOUT)
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
        self._stopped = False
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    """An ``RtspServer`` (not started yet), closed after the test; skip (or fail) if it cannot run."""
    reason = rtsp_available()
    if reason is not None:
        unavailable(reason)
    server = RtspServer()
    try:
        yield server
    finally:
        server.close()
