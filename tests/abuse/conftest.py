"""The abuse suite's parts: the real server process, probes of what it holds, and a well-behaved client.

Every test here talks to ``python -m streamer serve CLIP --loop --port 0
--device cpu`` over loopback with real clients. A module shares one server
(:func:`running_server` in a module-scoped fixture) where its cases do not
interfere. Around the abuse, the module checks what a user would notice:

* :class:`Probe` reads the server's resident memory, threads, open file
  descriptors and UDP sockets (one per WebRTC peer) from ``/proc``, and its
  ``/api/streams``; it samples every 0.2 s on a thread, keeping the peak
  memory (and kills a server past 4 GiB, to spare the machine).
  :meth:`Probe.wait_back` waits, bounded, until threads and descriptors are
  back near a baseline after a group of abuse, and UDP sockets at it.
* :class:`GoodClient`, a client on its own thread and event loop subscribed
  to every stream, counts ``result`` messages; ``with good.receiving(...)``
  fails a group of abuse during which it got none.
* At the end of each module (:meth:`Server.check`): the server still runs,
  its peak memory stayed under 1 GiB, and its stderr holds no traceback and
  no "Task exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.media import make_clip
from tests.process import Child, child_env, spawn_streamer

T = TypeVar("T")
GIB = 1 << 30
#: The most resident memory the server may ever use in these tests.
RSS_LIMIT = GIB
#: Past this much resident memory the probe kills the server at once, so a failing test never takes the machine down.
KILL_ABOVE = 4 * GIB
#: How many threads and open descriptors more than the baseline still count as "back".
THREADS_SLACK = 3
FDS_SLACK = 6
#: Text that must never reach the server's stderr.
BAD_LOG_TEXT = ("Traceback", "Task exception was never retrieved")
CLIP_STREAM = "cam.mp4"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


# --- plain HTTP and WebSocket helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(
    port: int,
    path: str,
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """``GET path`` on 127.0.0.1:``port`` with http.client; ``host`` replaces the Host header."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest("GET", path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        conn.close()


def ws_upgrade(port: int, path: str = "/ws", *, host: str, origin: str | None = None, timeout: float = 5.0) -> int:
    """The status of a WebSocket opening handshake with this ``Host`` (and ``Origin``): 101 when accepted."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
    }
    if origin is not None:
        headers["Origin"] = origin
    return http_get(port, path, host=host, headers=headers, timeout=timeout).status


async def recv_json(ws: ClientConnection, *, timeout: float = 30.0, skip: tuple[str, ...] = ("result",)) -> Any:
    """The next message whose type is not in ``skip``, parsed."""
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") not in skip:
                return message


async def ping_pong(ws: ClientConnection, *, timeout: float = 30.0) -> None:
    """Send ``ping``; the next message but results must be ``pong`` (so nothing else was still owed)."""
    await ws.send('{"type":"ping"}')
    reply = await recv_json(ws, timeout=timeout)
    assert reply == {"type": "pong"}, f"expected pong, got {str(reply)[:300]}"


def assert_error(reply: Any, code: str | None = None) -> None:
    """``reply`` is one ``error`` message (with ``code`` if given) with a message string."""
    assert isinstance(reply, dict) and reply.get("type") == "error", f"expected an error, got {str(reply)[:300]}"
    assert isinstance(reply.get("code"), str) and isinstance(reply.get("message"), str), reply
    if code is not None:
        assert reply["code"] == code, reply


def jpeg_b64(image_rgb: np.ndarray, quality: int = 90) -> str:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def file_b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


# --- the probe ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What the server process holds at one moment."""

    rss: int  # bytes
    threads: int
    fds: int
    udp: int  # UDP sockets: one per WebRTC peer's ICE candidate, none otherwise

    def __str__(self) -> str:
        return f"{self.threads} threads, {self.fds} fds ({self.udp} UDP sockets), {self.rss / 2**20:.0f} MiB resident"


class Probe:
    """The resources of process ``pid`` from /proc, its peak memory, and its ``/api/streams``.

    A process seen using more than ``kill_above`` bytes is killed on the spot (``killed`` says so): a
    server that fails the memory limit by gigabytes would otherwise swap or exhaust the test machine.
    """

    def __init__(self, pid: int, port: int, token: str | None = None, *, kill_above: int = KILL_ABOVE) -> None:
        self.pid = pid
        self.port = port
        self.token = token
        self.kill_above = kill_above
        self.killed = ""
        self._lock = threading.Lock()
        self._peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Sample:
        """Read /proc/PID now; also raises the recorded peak memory."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            raise AssertionError(f"the server (pid {self.pid}) is gone {self.killed}") from None
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields["VmRSS"].split()[0]) * 1024
        threads = int(fields["Threads"])
        sockets: set[str] = set()
        fds = 0
        for name in os.listdir(f"/proc/{self.pid}/fd"):
            fds += 1
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{name}")
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                sockets.add(target[len("socket:[") : -1])
        udp = len(sockets & self._udp_inodes())
        with self._lock:
            self._peak = max(self._peak, rss)
        if rss > self.kill_above and not self.killed:
            self.killed = f"killed by the test at {rss / 2**20:.0f} MiB resident (over {self.kill_above >> 20} MiB)"
            os.kill(self.pid, signal.SIGKILL)
        return Sample(rss, threads, fds, udp)

    def _udp_inodes(self) -> set[str]:
        """The inodes of every UDP socket in the process's network namespace."""
        inodes: set[str] = set()
        for table in ("udp", "udp6"):
            try:
                lines = Path(f"/proc/{self.pid}/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            inodes.update(fields[9] for fields in map(str.split, lines) if len(fields) > 9)
        return inodes

    @property
    def peak_rss(self) -> int:
        """The largest resident size seen so far, in bytes."""
        with self._lock:
            return self._peak

    def streams(self) -> list[dict[str, Any]]:
        """The server's ``/api/streams``."""
        path = "/api/streams" if self.token is None else f"/api/streams?token={self.token}"
        reply = http_get(self.port, path, timeout=10)
        assert reply.status == 200, (reply.status, reply.body[:300])
        rows = reply.json()
        assert isinstance(rows, list)
        return rows

    def start(self) -> None:
        """Sample every 0.2 s on a daemon thread until :meth:`stop` (or the process is gone)."""

        def run() -> None:
            while not self._stop.wait(0.2):
                try:
                    self.sample()
                except (AssertionError, OSError, KeyError, ValueError):  # the process has exited
                    return

        self._thread = threading.Thread(target=run, name=f"probe-{self.pid}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def assert_peak_under(self, limit: int = RSS_LIMIT) -> None:
        self.sample()
        peak = self.peak_rss
        assert peak < limit, (
            f"the server's resident memory reached {peak / 2**20:.0f} MiB (limit {limit >> 20} MiB) {self.killed}"
        )

    def wait_back(
        self,
        baseline: Sample,
        what: str,
        *,
        timeout: float = 20.0,
        streams_ok: Callable[[list[dict[str, Any]]], bool] | None = None,
    ) -> Sample:
        """Wait until threads and fds are within a small slack of ``baseline``, UDP sockets (WebRTC peers) no more
        than then, and ``streams_ok`` holds.

        Fails with the baseline and the last numbers when that does not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            now = self.sample()
            rows = self.streams() if streams_ok is not None else []
            back = (
                now.threads <= baseline.threads + THREADS_SLACK
                and now.fds <= baseline.fds + FDS_SLACK
                and now.udp <= baseline.udp
            )
            if back and (streams_ok is None or streams_ok(rows)):
                return now
            if time.monotonic() > deadline:
                streams = f"; streams: {[r.get('stream') for r in rows]}" if streams_ok is not None else ""
                raise AssertionError(
                    f"{timeout:.0f} s after {what}, the server holds {now}; before: {baseline} "
                    f"(allowed: +{THREADS_SLACK} threads, +{FDS_SLACK} fds, +0 UDP sockets){streams}"
                )
            time.sleep(0.2)


def no_browser_streams(rows: list[dict[str, Any]]) -> bool:
    return not any(str(row.get("stream", "")).startswith("browser-") for row in rows)


# --- the well-behaved client ----------------------------------------------------------------------------------------


class GoodClient:
    """A client that reads everything, on its own thread and event loop, subscribed to every stream.

    ``count`` is the number of ``result`` messages received so far. The
    connection must stay open: if the server closes it, ``closed`` says how.
    """

    def __init__(self, ws_url: str, *, lifetime: float = 1800.0) -> None:
        self.ws_url = ws_url
        self.lifetime = lifetime  # a hard bound, should stop() never come
        self._count = 0
        self._lock = threading.Lock()
        self.closed: str | None = None
        self._hello = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="good-client", daemon=True)

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        assert self._hello.wait(timeout), f"the good client got no hello: {self.closed}"

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already finished
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(15)

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``count`` results have arrived in all."""
        deadline = time.monotonic() + timeout
        while self.count < count:
            assert self.closed is None, f"the server closed the good client's connection: {self.closed}"
            assert time.monotonic() < deadline, f"the good client got {self.count} results of {count} in {timeout} s"
            time.sleep(0.1)

    @contextmanager
    def receiving(self, what: str, grace: float = 5.0) -> Iterator[None]:
        """Fail unless results keep arriving while the block runs (``grace`` s for those still on the way)."""
        before = self.count
        yield
        deadline = time.monotonic() + grace
        while self.count <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.closed is None, f"the server closed the good client's connection during {what}: {self.closed}"
        assert self.count > before, f"the good client got no result during {what} ({before} before, {self.count} after)"

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        end = time.monotonic() + self.lifetime
        try:
            async with connect(self.ws_url, open_timeout=30, close_timeout=5) as ws:
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
                assert hello.get("type") == "hello", hello
                await ws.send('{"type":"subscribe","streams":null}')
                self._hello.set()
                while not self._stopping.is_set() and time.monotonic() < end:
                    try:
                        text = await asyncio.wait_for(ws.recv(), 0.5)
                    except TimeoutError:
                        continue
                    if '"type":"result"' in str(text):
                        with self._lock:
                            self._count += 1
        except Exception as exc:  # kept for the assertions, which run on the test's thread
            self.closed = f"{type(exc).__name__}: {exc}"
            self._hello.set()


# --- the server -----------------------------------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``streamer serve`` child, its probe, its good client and its baseline."""

    child: Child
    probe: Probe
    good: GoodClient | None
    baseline: Sample
    token: str | None = None
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = int(urlsplit(self.child.url).port or 0)

    @property
    def url(self) -> str:
        return self.child.url

    def ws_url(self, query: str = "") -> str:
        if self.token is not None:
            query = f"token={self.token}" + (f"&{query}" if query else "")
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?{query}" if query else "")

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run(main)``; a connection the server dropped fails with what became of the server."""
        try:
            return asyncio.run(main)
        except (ConnectionClosed, ConnectionError) as exc:
            state = "still runs" if self.child.alive() else f"exited with {self.child.returncode}"
            raise AssertionError(
                f"{type(exc).__name__}: {exc}; the server {state}, peak {self.probe.peak_rss / 2**20:.0f} MiB "
                f"{self.probe.killed}\nstderr: {self.child.stderr()[-3000:]}"
            ) from exc

    def get(self, path: str, **kwargs: Any) -> Reply:
        return http_get(self.port, path, **kwargs)

    def good_client(self) -> GoodClient:
        assert self.good is not None, "this server has no video source, so no good client"
        return self.good

    def wait_back(self, what: str, **kwargs: Any) -> Sample:
        return self.probe.wait_back(self.baseline, what, **kwargs)

    def assert_clean_log(self) -> None:
        text = self.child.stderr()
        for bad in BAD_LOG_TEXT:
            assert bad not in text, f"the server's stderr has {bad!r}:\n{text[-6000:]}"

    def check(self) -> None:
        """The end-of-module checks: still running, peak memory under 1 GiB, a clean stderr."""
        assert self.child.alive(), (
            f"the server exited with {self.child.returncode} {self.probe.killed}:\n{self.child.stderr()[-4000:]}"
        )
        self.probe.assert_peak_under()
        self.assert_clean_log()
        now = self.probe.sample()
        print(  # the figures, for `pytest tests/abuse -s`
            f"\nabuse: server pid {self.child.pid}: peak RSS {self.probe.peak_rss / 2**20:.0f} MiB; "
            f"threads {self.baseline.threads} -> {now.threads}, fds {self.baseline.fds} -> {now.fds}"
        )


def warm_up(port: int, query: str, classify: bool) -> None:
    """Concurrent page and classify requests, so the server's worker threads exist before the baseline is taken.

    Thread pools grow on demand and never shrink: without this, the first group of abuse would seem to leak them.
    """
    threads = [threading.Thread(target=http_get, args=(port, "/index.html")) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if not classify:
        return
    records = [{"image": file_b64(SAMPLES / "coffee.jpg")}]
    message = json.dumps({"type": "classify", "id": "warm-up", "records": records})

    async def one() -> None:
        async with connect(f"ws://127.0.0.1:{port}/ws{query}", close_timeout=5) as ws:
            await recv_json(ws, skip=())
            await ws.send(message)
            await recv_json(ws, timeout=60)

    async def main() -> None:
        async with asyncio.timeout(120):
            await asyncio.gather(*(one() for _ in range(12)))

    asyncio.run(main())


@contextmanager
def running_server(
    *sources: str,
    cache_dir: Path,
    cwd: Path,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    token: str | None = None,
    results: bool = True,
) -> Iterator[Server]:
    """``streamer serve SOURCES --loop --port 0 --device cpu ARGS``, probed, with a good client if ``results``.

    Yields once the good client has results and the baseline is taken; on a
    normal exit checks the server (:meth:`Server.check`). The child is killed
    on every way out.
    """
    command = ["serve", *sources, "--loop", "--port", "0", "--device", "cpu", *args]
    if token is not None:
        command += ["--token", token]
    with spawn_streamer(*command, env=child_env(cache_dir, **(env or {})), cwd=cwd) as child:
        port = int(urlsplit(child.url).port or 0)
        probe = Probe(child.pid, port, token)
        probe.start()
        good: GoodClient | None = None
        try:
            query = f"?token={token}" if token is not None else ""
            if results:
                good = GoodClient(f"ws://127.0.0.1:{port}/ws{query}")
                good.start()
                good.wait_for(3)
            warm_up(port, query, classify=results)
            server = Server(child, probe, good, probe.sample(), token)
            yield server
            server.check()
        finally:
            if good is not None:
                good.stop()
            probe.stop()


# --- fixtures -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A looping 2 s clip of a real photograph, 320x240 at 15 fps: stream ``cam.mp4``."""
    return make_clip(tmp_path_factory.mktemp("abuse-clip") / CLIP_STREAM, frames=30, fps=15)


@pytest.fixture(scope="session")
def coffee_b64() -> str:
    """samples/coffee.jpg (an espresso), base64."""
    return file_b64(SAMPLES / "coffee.jpg")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory for the module's servers: no config.toml is read from it."""
    return tmp_path_factory.mktemp("serve-cwd")


@pytest.fixture(scope="module")
def server(clip: Path, cache_dir: Path, workdir: Path) -> Iterator[Server]:
    """One server for the module: the clip, looping, default settings."""
    with running_server(str(clip), cache_dir=cache_dir, cwd=workdir) as running:
        yield running
