"""The server with real clients on 127.0.0.1: HTTP routes, token, Origin, fan-out, fuzzing, classify.

Every test runs the real :class:`StreamerServer` on port 0 inside ``asyncio.run``
with a time bound, and talks to it with ``http.client`` (on a worker thread,
since the server shares the loop) and the websockets client.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import random
import re
import shutil
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State
from websockets.typing import Origin

from streamer.errors import ConfigError
from streamer.results import Category, FrameResult
from streamer.server import wire
from streamer.server.app import WEB_DIR, ServerConfig, StreamerServer, host_allowed
from streamer.tasks import Classifier, ClassifierOptions
from tests.fuzz import random_json

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
TOKEN = "s3cret-t0ken"

STREAMS: list[dict[str, Any]] = [
    {
        "stream": "cam1",
        "url": "rtsp://admin:***@10.0.0.5/live",
        "state": "live",
        "decoded": 120,
        "dropped": 3,
        "reconnects": 0,
        "width": 640,
        "height": 480,
        "last_error": None,
        "inferred": 117,
        "last_age_ms": 42.5,
    },
    {
        "stream": 'lobby "east"\\door\n2',
        "url": "file:///videos/lobby.mp4",
        "state": "reconnecting",
        "decoded": 7,
        "dropped": 0,
        "reconnects": 2,
        "width": 0,
        "height": 0,
        "last_error": "connection refused",
        "inferred": 5,
        "last_age_ms": None,
    },
]


def two_streams() -> list[dict[str, Any]]:
    return [dict(row) for row in STREAMS]


def run(main: Callable[[], Awaitable[None]], seconds: float = 20) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await main()

    asyncio.run(bounded())


def _fetch(url: str, path: str, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=5)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


async def fetch(
    server: StreamerServer, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent exactly as given), off the loop the server runs on."""
    return await asyncio.to_thread(_fetch, server.url, path, method, headers or {})


def ws_url(server: StreamerServer, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "ws" + query


async def receive(ws: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert isinstance(message, dict)
    return message


def make_web_dir(root: Path) -> Path:
    web = root / "web"
    web.mkdir()
    shutil.copy(WEB_DIR / "index.html", web / "index.html")
    (web / "app.js").write_text("console.log('streamer');\n")
    (web / "style.css").write_text("body { margin: 0; }\n")
    (web / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (web / "icon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    (web / "labels.json").write_text('{"a": 1}\n')
    (web / "sub").mkdir()
    (web / "sub" / "page.html").write_text("<p>sub</p>\n")
    return web


# --- 1. routes -----------------------------------------------------------------------------------


def test_routes_static_files_api_and_metrics(tmp_path: Path) -> None:
    web = make_web_dir(tmp_path)

    async def main() -> None:
        config = ServerConfig(port=0, web_dir=web)
        async with StreamerServer(config, stats=two_streams, provider="CPUExecutionProvider") as server:
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url) and not server.url.endswith(":0/")

            status, headers, body = await fetch(server, "/healthz")
            assert (status, body.strip()) == (200, b"ok")

            status, headers, body = await fetch(server, "/")
            assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
            assert b'id="streams"' in body and b"<title>streamer</title>" in body

            expected = {
                "/app.js": ("text/javascript; charset=utf-8", (web / "app.js").read_bytes()),
                "/style.css": ("text/css; charset=utf-8", (web / "style.css").read_bytes()),
                "/logo.png": ("image/png", (web / "logo.png").read_bytes()),
                "/icon.svg": ("image/svg+xml", (web / "icon.svg").read_bytes()),
                "/labels.json": ("application/json", (web / "labels.json").read_bytes()),
                "/sub/page.html": ("text/html; charset=utf-8", b"<p>sub</p>\n"),
                "/index.html?v=2": ("text/html; charset=utf-8", (web / "index.html").read_bytes()),
            }
            for path, (content_type, content) in expected.items():
                status, headers, body = await fetch(server, path)
                assert (status, headers["content-type"], body) == (200, content_type, content), path
                assert headers["x-content-type-options"] == "nosniff"

            status, headers, body = await fetch(server, "/logo.png", method="HEAD")
            assert (status, body, headers["content-length"]) == (200, b"", str((web / "logo.png").stat().st_size))
            status, headers, _ = await fetch(server, "/healthz", method="DELETE")
            assert status == 405 and headers["allow"] == "GET, HEAD"
            status, _, _ = await fetch(server, "/ws")  # plain HTTP, no Upgrade
            assert status == 426
            status, _, _ = await fetch(server, "/api/nothing")
            assert status == 404

            status, headers, body = await fetch(server, "/api/streams")
            assert (status, headers["content-type"]) == (200, "application/json")
            assert json.loads(body) == STREAMS

            status, headers, body = await fetch(server, "/metrics")
            assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
            check_metrics(body.decode())

    run(main)


def check_metrics(text: str) -> None:
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    samples: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter") and name not in typed
            typed[name] = kind
            continue
        match = re.fullmatch(r'([a-z_]+)(\{[a-z_]+="(?:[^"\\\n]|\\["\\n])*"\})? (-?[0-9.e+]+)', line)
        assert match, line
        assert match[1] in typed, f"{match[1]} has no # TYPE line before its samples"
        samples[match[1] + (match[2] or "")] = match[3]
    assert {name for name, kind in typed.items() if kind == "counter"} == {
        "streamer_frames_decoded_total",
        "streamer_frames_dropped_total",
        "streamer_frames_inferred_total",
        "streamer_reconnects_total",
        "streamer_ws_dropped_total",
    }
    lobby = '{stream="lobby \\"east\\"\\\\door\\n2"}'
    assert samples == {
        'streamer_info{provider="CPUExecutionProvider"}': "1",
        'streamer_stream_up{stream="cam1"}': "1",
        f"streamer_stream_up{lobby}": "0",
        'streamer_frames_decoded_total{stream="cam1"}': "120",
        f"streamer_frames_decoded_total{lobby}": "7",
        'streamer_frames_dropped_total{stream="cam1"}': "3",
        f"streamer_frames_dropped_total{lobby}": "0",
        'streamer_frames_inferred_total{stream="cam1"}': "117",
        f"streamer_frames_inferred_total{lobby}": "5",
        'streamer_reconnects_total{stream="cam1"}': "0",
        f"streamer_reconnects_total{lobby}": "2",
        'streamer_frame_age_ms{stream="cam1"}': "42.5",  # the other stream has no frame age yet: no sample
        "streamer_ws_clients": "0",
        "streamer_ws_dropped_total": "0",
    }
    assert "admin" not in text and "rtsp://" not in text


# --- 2. path traversal ---------------------------------------------------------------------------


def test_nothing_outside_web_dir_is_served(tmp_path: Path) -> None:
    secret = "TOP-SECRET-CONTENT-42"
    web = make_web_dir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = '{secret}'\n")
    (tmp_path / "secret.txt").write_text(secret)
    (web / "link.txt").symlink_to(tmp_path / "secret.txt")
    (web / "uplink").symlink_to(tmp_path, target_is_directory=True)
    (web / ".hidden").write_text(secret)
    repo_pyproject = (WEB_DIR.parent / "pyproject.toml").read_bytes()
    paths = [
        "/../pyproject.toml",
        "/%2e%2e/pyproject.toml",
        "/%2E%2E/pyproject.toml",
        "/..%2fpyproject.toml",
        "/%2e%2e%2fpyproject.toml",
        "/sub/../../pyproject.toml",
        "/sub/%2e%2e/%2e%2e/pyproject.toml",
        "/..\\pyproject.toml",
        "/%5c..%5cpyproject.toml",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/etc/passwd",
        f"/{tmp_path}/secret.txt",
        f"/{'%2f' + str(tmp_path).lstrip('/')}/secret.txt",
        "/link.txt",
        "/uplink/secret.txt",
        "/uplink/pyproject.toml",
        "/.hidden",
        "/sub",
        "/sub/",
        "/sub/.",
        "/%00",
        "/index.html%00.png",
        "/%ff%fe",
        "/nothing.html",
    ]

    async def main() -> None:
        for web_dir in (web, WEB_DIR):
            async with StreamerServer(ServerConfig(port=0, web_dir=web_dir)) as server:
                for path in paths:
                    status, _, body = await fetch(server, path)
                    assert status == 404, path
                    assert secret.encode() not in body and b"root:" not in body, path
                    assert repo_pyproject[:40] not in body and b"[project]" not in body, path
                    assert b"page.html" not in body, f"{path}: a directory listing"
                status, _, body = await fetch(server, "/sub/page.html" if web_dir == web else "/index.html")
                assert status == 200

    run(main)


# --- 3. token ------------------------------------------------------------------------------------


def test_token_guards_ws_api_and_metrics_only(tmp_path: Path) -> None:
    async def main() -> None:
        config = ServerConfig(port=0, token=TOKEN)
        async with StreamerServer(config, stats=two_streams) as server:
            for path in ("/metrics", "/api/streams"):
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                    status, _, body = await fetch(server, path, headers=headers)
                    assert status == 401 and TOKEN.encode() not in body, (path, headers)
                for query in ("?token=wrong", "?token=", f"?token={TOKEN[:-1]}", "?token=%C3%A9"):
                    status, _, body = await fetch(server, path + query)
                    assert status == 401 and TOKEN.encode() not in body, (path, query)
                status, _, body = await fetch(server, f"{path}?token={TOKEN}")
                assert status == 200, path
                status, _, body = await fetch(server, path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert status == 200, path
            for path in ("/", "/index.html", "/healthz"):
                status, _, _ = await fetch(server, path)
                assert status == 200, path

            for query, headers in (("", {}), ("?token=wrong", {}), ("", {"Authorization": "Bearer wrong"})):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(ws_url(server, query), additional_headers=headers, open_timeout=5):
                        pass
                assert refused.value.response.status_code == 401
                assert TOKEN.encode() not in refused.value.response.body
            for query, headers in ((f"?token={TOKEN}", {}), ("", {"Authorization": f"Bearer {TOKEN}"})):
                async with connect(ws_url(server, query), additional_headers=headers, open_timeout=5) as ws:
                    hello = await receive(ws)
                    assert hello == {"type": "hello", "version": wire.VERSION, "streams": STREAMS}

    run(main)


def test_exactly_one_token_is_taken(tmp_path: Path) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, token=TOKEN), stats=two_streams) as server:
            bearer = {"Authorization": f"Bearer {TOKEN}"}
            for query, headers in (
                (f"?token=wrong&token={TOKEN}", {}),
                ("?" + "&".join(["token=x"] * 599 + [f"token={TOKEN}"]), {}),
                (f"?token={TOKEN}", bearer),
                (f"?token={TOKEN}&token={TOKEN}", {}),
            ):
                status, _, body = await fetch(server, "/api/streams" + query, headers=headers)
                assert status == 400 and b"give the token once" in body, query[:40]
            assert (await fetch(server, f"/api/streams?token={TOKEN}"))[0] == 200
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(server, f"?token={TOKEN}&token=x"), open_timeout=5):
                    pass
            assert refused.value.response.status_code == 400

    run(main)


@pytest.mark.parametrize(
    ("host", "bind", "allowed", "ok"),
    [
        ("127.0.0.1:8080", "127.0.0.1", (), True),
        ("localhost:8080", "127.0.0.1", (), True),
        ("LOCALHOST", "127.0.0.1", (), True),
        ("[::1]:8080", "127.0.0.1", (), True),
        ("127.0.0.2", "127.0.0.1", (), True),
        ("evil.example", "127.0.0.1", (), False),
        ("evil.example:8080", "127.0.0.1", (), False),
        ("127.0.0.1.evil.example", "127.0.0.1", (), False),
        ("", "127.0.0.1", (), False),
        ("cam.example:8080", "127.0.0.1", ("cam.example",), True),
        ("other.example", "127.0.0.1", ("*",), True),
        ("192.168.1.5:8080", "0.0.0.0", (), True),
        ("nas.local", "0.0.0.0", (), False),
        ("192.168.1.5", "192.168.1.5", (), True),
        ("192.168.1.6", "192.168.1.5", (), False),
        ("localhost", "192.168.1.5", (), False),
        ("cam.example", "cam.example", (), True),
        ("a b", "127.0.0.1", (), False),
        ("[::1", "127.0.0.1", (), False),
    ],
)
def test_host_allowed(host: str, bind: str, allowed: tuple[str, ...], ok: bool) -> None:
    assert host_allowed(host, bind, allowed) is ok


def test_a_rebinding_host_gets_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, allowed_hosts=("cam.example",)), stats=two_streams) as server:
            port = urlsplit(server.url).port
            for path in ("/", "/index.html", "/healthz", "/api/streams", "/metrics", "/ws"):
                status, _, body = await fetch(server, path, headers={"Host": "evil.example"})
                assert status == 400 and b"server.allowed_hosts" in body, path
                assert (await fetch(server, path, headers={"Host": f"cam.example:{port}"}))[0] != 400, path
            with pytest.raises(InvalidStatus) as refused:
                headers = {"Host": f"evil.example:{port}"}
                async with connect(
                    ws_url(server),
                    origin=Origin(f"http://evil.example:{port}"),
                    additional_headers=headers,
                    open_timeout=5,
                ):
                    pass
            assert refused.value.response.status_code == 400

    run(main)


def test_config_refuses_a_public_address_without_a_token() -> None:
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""):
        with pytest.raises(ConfigError, match=r"--token or set STREAMER_TOKEN"):
            ServerConfig(host=host)
        assert ServerConfig(host=host, token=TOKEN).token == TOKEN
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"):
        assert ServerConfig(host=host).token is None
    with pytest.raises(ConfigError):
        ServerConfig(token="")
    with pytest.raises(ConfigError):
        ServerConfig(port=70000)
    with pytest.raises(ConfigError):
        ServerConfig(allowed_origins=("evil.example",))
    config = ServerConfig()
    assert (config.host, config.port, config.web_dir, config.queue_size) == ("127.0.0.1", 8080, WEB_DIR, 64)
    assert config.max_message_bytes == wire.MAX_MESSAGE_BYTES


# --- 4. Origin -----------------------------------------------------------------------------------


def test_origin_check() -> None:
    async def main() -> None:
        config = ServerConfig(port=0, allowed_origins=("https://app.example:8443",))
        async with StreamerServer(config) as server:
            port = urlsplit(server.url).port
            for origin in ("http://evil.example", f"http://evil.example:{port}", f"http://localhost:{port}", "null"):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(ws_url(server), origin=Origin(origin), open_timeout=5):
                        pass
                assert refused.value.response.status_code == 403, origin
            good: list[str | None] = [None, f"http://127.0.0.1:{port}", "https://app.example:8443"]
            for allowed in [*good, "HTTPS://APP.example:8443"]:
                origin_header = None if allowed is None else Origin(allowed)
                async with connect(ws_url(server), origin=origin_header, open_timeout=5) as ws:
                    assert (await receive(ws))["type"] == "hello", allowed

    run(main)


# --- 5. fan-out ----------------------------------------------------------------------------------


def result(stream: str, frame: int, *, labels: int = 2, name_size: int = 8) -> FrameResult:
    classes = tuple(Category(i, f"c{i}-" + "x" * name_size, f"C{i}", 1.0 / (i + 1)) for i in range(labels))
    return FrameResult(width=64, height=48, classes=classes, stream=stream, frame=frame)


def test_many_clients_all_receive_every_result() -> None:
    clients, count = 50, 300

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, queue_size=512)) as server:
            sockets = [await connect(ws_url(server), open_timeout=10) for _ in range(clients)]
            picky = await connect(ws_url(server), open_timeout=10)
            try:
                for ws in [*sockets, picky]:
                    assert (await receive(ws))["type"] == "hello"
                await picky.send(wire.encode("subscribe", streams=["cam2"]))
                await picky.send(wire.encode("ping"))
                assert (await receive(picky))["type"] == "pong"  # the subscription is in effect

                def publish_all() -> None:
                    for i in range(count):
                        server.publish_result(result(f"cam{i % 2 + 1}", i))

                publisher = threading.Thread(target=publish_all)
                publisher.start()
                await asyncio.to_thread(publisher.join)

                async def collect(ws: ClientConnection, n: int) -> list[tuple[str, int]]:
                    got = []
                    for _ in range(n):
                        message = await receive(ws)
                        assert message["type"] == "result"
                        got.append((message["result"]["stream"], message["result"]["frame"]))
                    return got

                everything = await asyncio.gather(*(collect(ws, count) for ws in sockets))
                expected = [(f"cam{i % 2 + 1}", i) for i in range(count)]
                assert all(got == expected for got in everything)
                assert await collect(picky, count // 2) == [e for e in expected if e[0] == "cam2"]
                await picky.send(wire.encode("ping"))
                assert (await receive(picky))["type"] == "pong"  # and nothing else came for it
                assert server.ws_dropped() == 0
            finally:
                await asyncio.gather(*(ws.close() for ws in [*sockets, picky]))

    run(main, 30)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_a_client_that_never_reads_does_not_grow_memory_or_slow_others() -> None:
    queue_size, total, batch = 64, 2000, 50
    readers_n = 3

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, queue_size=queue_size)) as server:
            stuck = await connect(ws_url(server), open_timeout=5, max_queue=1)
            readers = [await connect(ws_url(server), open_timeout=5) for _ in range(readers_n)]
            counts = [0] * readers_n
            last = [-1] * readers_n

            async def read(k: int) -> None:
                assert (await receive(readers[k]))["type"] == "hello"
                while True:
                    message = await receive(readers[k])
                    frame = message["result"]["frame"]
                    assert frame == last[k] + 1, "a reader lost a result"
                    last[k] = frame
                    counts[k] += 1

            tasks = [asyncio.create_task(read(k)) for k in range(readers_n)]
            # ~10 KB per result: 2,000 of them kept for the stuck client would be ~20 MB.
            big = [result("cam1", i, labels=20, name_size=400) for i in range(total + batch)]
            assert len(wire.encode("result", result=big[0].to_dict())) > 9000

            def publish_range(start: int, stop: int) -> None:
                for i in range(start, stop):
                    server.publish_result(big[i])

            async def publish(start: int, stop: int) -> None:
                await asyncio.to_thread(publish_range, start, stop)  # from another thread, as the pipeline does
                while min(counts) < stop:
                    await asyncio.sleep(0.002)

            try:
                await publish(0, batch)  # warm up allocators and buffers
                before = _rss_kib()
                for start in range(batch, total + batch, batch):
                    await publish(start, start + batch)
                    assert max(len(c) for c in server.hub.clients) <= queue_size
                grown = _rss_kib() - before
                print(f"RSS grew {grown} KiB; {server.ws_dropped()} results dropped for the stuck client")
                assert counts == [total + batch] * readers_n
                assert grown < 6 * 1024, f"RSS grew {grown} KiB while a client did not read"
                # the stuck client lost most: it took only what the socket buffers of the loopback hold
                assert server.ws_dropped() > total // 2
                await stuck.send(wire.encode("ping"))  # it is still connected
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.gather(*(ws.close() for ws in readers))
                stuck.transport.abort()

    run(main, 40)


# --- 6. malformed messages -----------------------------------------------------------------------


def _garbage(rng: random.Random, n: int) -> list[str | bytes]:
    """``n`` client messages that :func:`wire.decode` rejects: binary, random text, random JSON."""
    out: list[str | bytes] = []
    while len(out) < n:
        choice = len(out) % 3
        message: str | bytes
        if choice == 0:
            message = rng.randbytes(rng.randrange(2000))
        elif choice == 1:
            alphabet = rng.choice([(32, 127), (0, 0xD7FF), (0x1F300, 0x1F6FF)])
            message = "".join(chr(rng.randrange(*alphabet)) for _ in range(rng.randrange(300)))
        else:
            message = json.dumps(random_json(rng))
        try:
            wire.decode(message)
        except wire.WireError:
            out.append(message)
    out[1] = "[" * 100_000  # too deep for json
    out[2] = json.dumps({"type": "classify", "id": "r11", "records": [{"image": "aGVsbG8="}] * 11})
    out[3] = '{"type": "classify", "id": "n", "records": [{"image": "aGVsbG8="}], "top_k": 0}'
    out[4] = '{"type": "subscribe", "streams": [1, 2]}'
    return out


def test_thousands_of_malformed_messages_each_get_an_error() -> None:
    messages = _garbage(random.Random(20240611), 3000)

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), stats=two_streams) as server:
            codes: dict[str, int] = {}
            async with connect(ws_url(server), open_timeout=5, max_size=None) as ws:
                assert (await receive(ws))["type"] == "hello"
                for start in range(0, len(messages), 100):
                    chunk = messages[start : start + 100]
                    for message in chunk:
                        await ws.send(message)
                    for message in chunk:
                        reply = await receive(ws)
                        assert reply["type"] == "error" and reply["message"], (message[:80], reply)
                        codes[reply["code"]] = codes.get(reply["code"], 0) + 1
                        if message is messages[2]:
                            assert reply["id"] == "r11" and "11" in reply["message"]
                # a classify without a classifier, an offer that is no SDP: errors too, the connection stays
                await ws.send(wire.encode("classify", id="c1", records=[{"image": "aGVsbG8="}]))
                assert await receive(ws) == {
                    "type": "error",
                    "code": "unavailable",
                    "message": "this server has no classifier for classify requests",
                    "id": "c1",
                }
                await ws.send(wire.encode("offer", stream="cam1", sdp="v=0"))
                reply = await receive(ws)
                assert (reply["type"], reply["code"]) == ("error", "bad_offer")
                await ws.send(wire.encode("ping"))
                assert await receive(ws) == {"type": "pong"}
            assert {"binary", "bad_json", "bad_message", "unknown_type"} <= set(codes)
            assert sum(codes.values()) == len(messages)

            # Not `async with`: the client's own close() after the server dropped the connection
            # mid-write trips over the transport asyncio already closed (websockets 17 client).
            ws = await connect(ws_url(server), open_timeout=5, compression=None)
            assert (await receive(ws))["type"] == "hello"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.send("x" * (wire.MAX_MESSAGE_BYTES + 1))
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
            assert "exceeds limit" in closed.value.rcvd.reason
            assert ws.state is State.CLOSED
            async with connect(ws_url(server), open_timeout=5) as ws:  # still serving
                assert (await receive(ws))["type"] == "hello"
                await ws.send(wire.encode("ping"))
                assert await receive(ws) == {"type": "pong"}
            status, _, _ = await fetch(server, "/healthz")
            assert status == 200

    run(main, 40)


# --- 7. classify ---------------------------------------------------------------------------------


def _image(name: str) -> str:
    return base64.b64encode((SAMPLES / name).read_bytes()).decode()


CATS = {"tabby", "tiger cat", "Egyptian cat"}


def test_classify_real_photos_over_the_network(classifier: Classifier) -> None:
    coffee, chelsea = _image("coffee.jpg"), _image("chelsea.jpg")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), classifier) as server:
            assert server.provider == "CPUExecutionProvider"
            async with connect(ws_url(server), open_timeout=5) as ws:
                assert (await receive(ws))["type"] == "hello"
                records = [
                    {"image": coffee},
                    {"image": "not base64!!"},
                    {"image": base64.b64encode(b"hello").decode()},
                    {"image": "data:image/jpeg;base64," + chelsea},
                ]
                await ws.send(wire.encode("classify", id="req-1", records=records))
                reply = await receive(ws)
                assert (reply["type"], reply["id"], len(reply["records"])) == ("classified", "req-1", 4)
                espresso, broken, undecodable, cat = reply["records"]
                assert espresso["best_label"]["name"] == "espresso"
                assert espresso["best_label"]["confidence"] > 0.9
                assert set(espresso["best_label"]) == {"class_id", "name", "confidence"}
                assert len(espresso["labels"]) == 5 and espresso["labels"][0]["name"] == "espresso"
                assert set(espresso["labels"][0]) == {"class_id", "name", "display_name", "confidence"}
                assert espresso["processing_ms"] > 0 and "objects" not in espresso
                assert set(broken) == {"error"} and "base64" in broken["error"]
                assert set(undecodable) == {"error"} and "decode" in undecodable["error"]
                assert cat["best_label"]["name"] in CATS

                await ws.send(wire.encode("classify", id="req-2", top_k=2, records=[{"image": coffee}]))
                reply = await receive(ws)
                labels = reply["records"][0]["labels"]
                assert reply["id"] == "req-2" and len(labels) == 2 and labels[0]["name"] == "espresso"

                await ws.send(wire.encode("classify", id="req-3", records=[{"image": coffee}] * 11))
                reply = await receive(ws)
                assert (reply["type"], reply["code"], reply["id"]) == ("error", "bad_message", "req-3")
                await ws.send(wire.encode("ping"))
                assert await receive(ws) == {"type": "pong"}

    run(main, 30)


def test_classify_with_a_cascade_gives_objects() -> None:
    coffee = _image("coffee.jpg")

    async def main(cascade: Classifier) -> None:
        async with StreamerServer(ServerConfig(port=0), cascade) as server:
            ws = await connect(ws_url(server), open_timeout=5)
            try:
                assert (await receive(ws))["type"] == "hello"
                await ws.send(wire.encode("classify", id="c", records=[{"image": coffee}]))
                (record,) = (await receive(ws))["records"]
            finally:
                await ws.close()
        cups = [o for o in record["objects"] if o["name"] == "cup"]
        assert cups and cups[0]["classes"][0]["name"] == "espresso"
        assert record["best_label"] is None and record["labels"] == []  # cascade labels objects only

    with Classifier.create_from_options(ClassifierOptions(stages="cascade", device="cpu")) as cascade:
        run(lambda: main(cascade), 30)
