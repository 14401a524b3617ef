"""The server with real clients on 127.0.0.1: the page, token, Host, Origin, fan-out, fuzzing, classify over /ws.

The REST API is in ``test_rest.py``, ``/metrics`` in ``test_metrics.py``;
the parts they share are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import shutil
import threading
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State
from websockets.typing import Origin

from streamer.config import StreamSpec
from streamer.errors import ConfigError
from streamer.results import Category, FrameResult
from streamer.runtime import Runtime
from streamer.server import wire
from streamer.server.app import MAX_BODY_BYTES, ServerConfig, StreamerServer
from streamer.server.auth import host_allowed
from streamer.server.serving import RedactSecrets
from streamer.server.static import page_root
from tests.fuzz import random_json
from tests.memory import rss_mib
from tests.server.conftest import added_stream, b64, fetch, make_runtime, port_of, receive, run, ws_url

TOKEN = "s3cret-t0ken"
REPO = Path(__file__).resolve().parents[2]


def make_web_dir(root: Path) -> Path:
    web = root / "web"
    web.mkdir()
    shutil.copy(page_root() / "index.html", web / "index.html")
    (web / "app.js").write_text("console.log('streamer');\n")
    (web / "style.css").write_text("body { margin: 0; }\n")
    (web / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (web / "icon.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>\n')
    (web / "labels.json").write_text('{"a": 1}\n')
    (web / "sub").mkdir()
    (web / "sub" / "page.html").write_text("<p>sub</p>\n")
    return web


# --- 1. routes -----------------------------------------------------------------------------------


def test_routes_the_page_and_its_files(tmp_path: Path, runtime: Runtime) -> None:
    web = make_web_dir(tmp_path)

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, web_dir=web), runtime) as server:
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
                assert "server" not in headers, "no Server header"

            status, headers, body = await fetch(server, "/logo.png", method="HEAD")
            assert (status, body, headers["content-length"]) == (200, b"", str((web / "logo.png").stat().st_size))
            status, headers, _ = await fetch(server, "/healthz", method="DELETE")
            assert status == 405 and headers["allow"] == "GET, HEAD"
            status, headers, _ = await fetch(server, "/ws")  # plain HTTP, no Upgrade
            assert status == 426 and headers["upgrade"] == "websocket"
            assert (await fetch(server, "/api/nothing"))[0] == 404
            for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):  # no docs page: it would load from a CDN
                assert (await fetch(server, page))[0] == 404, page

            status, headers, body = await fetch(server, "/api/streams")
            assert (status, headers["content-type"], json.loads(body)) == (200, "application/json", [])
            status, headers, body = await fetch(server, "/openapi.json")
            paths = json.loads(body)["paths"]
            assert status == 200 and {"/api/classify", "/api/streams", "/api/streams/{stream_id}"} <= set(paths)
            assert {"/api/models", "/api/models/reload"} <= set(paths)
            classify_body = paths["/api/classify"]["post"]["requestBody"]["content"]
            assert {"application/json", "multipart/form-data"} <= set(classify_body)

    run(main)


# --- 2. path traversal ---------------------------------------------------------------------------


def test_nothing_outside_web_dir_is_served(tmp_path: Path, runtime: Runtime) -> None:
    secret = "TOP-SECRET-CONTENT-42"
    web = make_web_dir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname = '{secret}'\n")
    (tmp_path / "secret.txt").write_text(secret)
    (web / "link.txt").symlink_to(tmp_path / "secret.txt")
    (web / "uplink").symlink_to(tmp_path, target_is_directory=True)
    (web / ".hidden").write_text(secret)
    (web / "server.py").write_text(f"# {secret}\n")  # package code next to the page is never served
    (web / "__pycache__").mkdir()
    (web / "__pycache__" / "server.cpython-311.pyc").write_text(secret)
    (web / "notes.secret").write_text(secret)
    repo_pyproject = (REPO / "pyproject.toml").read_bytes()
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
        "/server.py",
        "/__pycache__/server.cpython-311.pyc",
        "/notes.secret",
        "/sub",
        "/sub/",
        "/sub/.",
        "/%00",
        "/index.html%00.png",
        "/%ff%fe",
        "/nothing.html",
    ]

    async def main() -> None:
        for web_dir in (web, None):
            async with StreamerServer(ServerConfig(port=0, web_dir=web_dir), runtime) as server:
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


GUARDED = ("/metrics", "/api/streams", "/api/models", "/openapi.json")


def test_token_guards_ws_api_metrics_and_openapi_only(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        config = ServerConfig(port=0, token=TOKEN)
        async with StreamerServer(config, runtime) as server:
            logging.getLogger("uvicorn.error").setLevel(logging.DEBUG)  # its lines name the path and query
            for path in GUARDED:
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
                    status, answer, body = await fetch(server, path, headers=headers)
                    assert status == 401 and TOKEN.encode() not in body, (path, headers)
                    assert answer["www-authenticate"] == "Bearer"
                for query in ("?token=wrong", "?token=", f"?token={TOKEN[:-1]}", "?token=%C3%A9"):
                    status, _, body = await fetch(server, path + query)
                    assert status == 401 and TOKEN.encode() not in body, (path, query)
                status, _, body = await fetch(server, f"{path}?token={TOKEN}")
                assert status == 200 and TOKEN.encode() not in body, path
                status, _, body = await fetch(server, path, headers={"Authorization": f"Bearer {TOKEN}"})
                assert status == 200, path
            status, _, _ = await fetch(server, "/api/classify", method="POST", body=b"{}")
            assert status == 401, "the token is checked before the body is looked at"
            for path in ("/", "/index.html", "/healthz", "/app.js"):
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
                    assert hello == {"type": "hello", "version": wire.VERSION, "streams": []}

    run(main)
    server_side = [r for r in caplog.records if not r.name.startswith("websockets.client")]  # the client logs it
    assert any(r.name.startswith("streamer.server") for r in server_side), "the server logged nothing at DEBUG"
    leaks = [f"{r.name}: {r.getMessage()}" for r in server_side if TOKEN in r.getMessage()]
    assert not leaks, leaks
    assert any("/ws?token=***" in r.getMessage() for r in server_side if r.name.startswith("uvicorn")), (
        "uvicorn logged no WebSocket line, so its redaction went untested"
    )


def test_exactly_one_token_is_taken(runtime: Runtime) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, token=TOKEN), runtime) as server:
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



def test_a_rebinding_host_gets_nothing(runtime: Runtime) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, allowed_hosts=("cam.example",)), runtime) as server:
            port = port_of(server)
            for path in ("/", "/index.html", "/healthz", "/api/streams", "/metrics", "/openapi.json", "/ws"):
                status, _, body = await fetch(server, path, headers={"Host": "evil.example"})
                assert status == 400 and b"server.allowed_hosts" in body, path
                assert (await fetch(server, path, headers={"Host": f"cam.example:{port}"}))[0] != 400, path
            status, _, _ = await fetch(
                server, "/api/classify", method="POST", headers={"Host": "evil.example"}, body=b"{}"
            )
            assert status == 400
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
    for bad in ({"token": ""}, {"port": 70000}, {"allowed_origins": ("evil.example",)}, {"max_body_bytes": 0}):
        with pytest.raises(ConfigError):
            ServerConfig(**bad)  # type: ignore[arg-type]
    config = ServerConfig()
    assert (config.host, config.port, config.web_dir, config.queue_size) == ("127.0.0.1", 8080, None, 64)
    assert (config.max_message_bytes, config.max_body_bytes) == (wire.MAX_MESSAGE_BYTES, MAX_BODY_BYTES)


def test_a_port_in_use_is_a_clear_error(runtime: Runtime) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as first:
            second = StreamerServer(ServerConfig(port=port_of(first)), runtime)
            with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+: .*--port"):
                await second.start()
            assert (await fetch(first, "/healthz"))[0] == 200

    run(main)


# --- 4. Origin -----------------------------------------------------------------------------------


def test_origin_check(runtime: Runtime) -> None:
    async def main() -> None:
        config = ServerConfig(port=0, allowed_origins=("https://app.example:8443",))
        async with StreamerServer(config, runtime) as server:
            port = port_of(server)
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


def test_many_clients_all_receive_every_result(runtime: Runtime) -> None:
    """Results published from another thread, as the runtime's dispatcher does, reach each client once, in order."""
    clients, count = 50, 300

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, queue_size=512), runtime) as server:
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

    run(main, 60)



def test_a_client_that_never_reads_does_not_grow_memory_or_slow_others(runtime: Runtime) -> None:
    queue_size, total, batch = 64, 2000, 50
    readers_n = 3

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, queue_size=queue_size), runtime) as server:
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
                await asyncio.to_thread(publish_range, start, stop)  # from another thread, as the runtime does
                while min(counts) < stop:
                    await asyncio.sleep(0.002)

            try:
                await publish(0, batch)  # warm up allocators and buffers
                before = rss_mib()
                for start in range(batch, total + batch, batch):
                    await publish(start, start + batch)
                    assert max(len(c) for c in server.hub.clients) <= queue_size
                grown = (rss_mib() - before) * 1024  # KiB
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

    run(main, 60)


def test_stop_closes_every_websocket_with_1001(runtime: Runtime) -> None:
    async def main() -> None:
        server = StreamerServer(ServerConfig(port=0), runtime)
        await server.start()
        sockets = [await connect(ws_url(server), open_timeout=5, close_timeout=5) for _ in range(3)]
        for ws in sockets:
            assert (await receive(ws))["type"] == "hello"
        await server.stop()
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            assert ws.close_code == 1001, ws.close_code
        with pytest.raises(OSError):
            await fetch(server, "/healthz")
        server.publish_result(result("cam1", 0))  # after stop: goes nowhere, raises nothing

    run(main)


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


def test_thousands_of_malformed_messages_each_get_an_error(runtime: Runtime) -> None:
    messages = _garbage(random.Random(20240611), 3000)

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
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
                # a classify of something that is no image, an offer that is no SDP: answers, the connection stays
                await ws.send(wire.encode("classify", id="c1", records=[{"image": "aGVsbG8="}]))
                reply = await receive(ws)
                assert (reply["type"], reply["id"], len(reply["records"])) == ("classified", "c1", 1)
                assert set(reply["records"][0]) == {"error"} and "decode" in reply["records"][0]["error"]
                await ws.send(wire.encode("offer", stream="cam1", sdp="v=0"))
                reply = await receive(ws)
                assert (reply["type"], reply["code"]) == ("error", "unknown_stream")
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
            assert ws.state is State.CLOSED
            async with connect(ws_url(server), open_timeout=5) as ws:  # still serving
                assert (await receive(ws))["type"] == "hello"
                await ws.send(wire.encode("ping"))
                assert await receive(ws) == {"type": "pong"}
            status, _, _ = await fetch(server, "/healthz")
            assert status == 200

    run(main, 60)


# --- 7. classify over /ws ------------------------------------------------------------------------


CATS = {"tabby", "tiger cat", "Egyptian cat"}


def test_classify_real_photos_over_the_websocket(runtime: Runtime) -> None:
    coffee, chelsea = b64("coffee.jpg"), b64("chelsea.jpg")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server, connect(ws_url(server)) as ws:
            assert (await receive(ws))["type"] == "hello"
            records = [
                {"image": coffee},
                {"image": "not base64!!"},
                {"image": "aGVsbG8="},  # "hello"
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

    run(main, 60)


def test_classify_while_busy_is_answered_busy(runtime: Runtime) -> None:
    async def main() -> None:
        config = ServerConfig(port=0, max_pending_classify=1)
        async with StreamerServer(config, runtime) as server, connect(ws_url(server), open_timeout=5) as ws:
            assert (await receive(ws))["type"] == "hello"
            with server.classify_service.admit():  # one request running: the limit
                await ws.send(wire.encode("classify", id="b", records=[{"image": b64("coffee.jpg")}]))
                reply = await receive(ws)
            assert (reply["type"], reply["code"], reply["id"]) == ("error", "busy", "b")
            assert "send this one again later" in reply["message"]
            await ws.send(wire.encode("classify", id="c", records=[{"image": b64("coffee.jpg")}]))
            assert (await receive(ws))["records"][0]["best_label"]["name"] == "espresso"

    run(main, 60)


def test_classify_with_a_cascade_gives_objects(cache_dir: Path) -> None:
    coffee = b64("coffee.jpg")
    cascade = make_runtime(cache_dir, stages="cascade")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), cascade) as server, connect(ws_url(server)) as ws:
            assert (await receive(ws))["type"] == "hello"
            await ws.send(wire.encode("classify", id="c", records=[{"image": coffee}]))
            (record,) = (await receive(ws))["records"]
        cups = [o for o in record["objects"] if o["name"] == "cup"]
        assert cups and cups[0]["classes"][0]["name"] == "espresso"
        assert record["best_label"] is None and record["labels"] == []  # cascade labels objects only

    cascade.start()
    try:
        run(main, 120)
    finally:
        cascade.stop()


def test_private_camera_streams_stay_out_of_the_api(runtime: Runtime, tmp_path: Path) -> None:
    """A stream the hub holds as private (a browser's camera) is listed to its owner only, on /ws and the API."""

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            with added_stream(runtime, StreamSpec(id="browser-77", source=str(REPO / "samples" / "street.mp4"))):
                async with connect(ws_url(server), open_timeout=5) as owner:
                    hello = await receive(owner)
                    assert [row["stream"] for row in hello["streams"]] == ["browser-77"]  # not private yet
                    (client,) = server.hub.clients
                    server.hub.private["browser-77"] = client
                    assert [row["stream"] for row in server.stats(client)] == ["browser-77"]
                    status, _, body = await fetch(server, "/api/streams")
                    assert (status, json.loads(body)) == (200, [])
                    status, _, body = await fetch(server, "/api/streams/browser-77")
                    assert (status, json.loads(body)) == (404, {"detail": "no stream 'browser-77'"})
                    assert b"browser-77" not in (await fetch(server, "/metrics"))[2]
                    assert (await fetch(server, "/api/streams/browser-77", method="DELETE"))[0] == 404

    run(main, 60)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('127.0.0.1:5 - "WebSocket /ws?token=s3cret" [accepted]', '127.0.0.1:5 - "WebSocket /ws?token=***" [accepted]'),
        ("GET /api/streams?x=1&token=s3cret&y=2 HTTP/1.1", "GET /api/streams?x=1&token=***&y=2 HTTP/1.1"),
        ("Authorization: Bearer s3cret", "Authorization: Bearer ***"),
        ("/ws%3Ftoken=s3cret", "/ws%3Ftoken=***"),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_uvicorn_log_lines_are_redacted(message: str, expected: str) -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "%s", (message,), None)
    assert RedactSecrets().filter(record) is True
    assert record.getMessage() == expected
