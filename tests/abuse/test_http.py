"""HTTP abuse: DNS rebinding (foreign Host), token tricks, and credentials in a source URL's query string."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.abuse.conftest import Server, http_get, recv_json, running_server, ws_upgrade

PATHS = ["/", "/ws", "/api/streams", "/metrics"]


def status(server: Server, path: str, host: str, *, origin: str | None = None) -> int:
    """The status of ``GET path`` with this ``Host``; for ``/ws`` a WebSocket handshake (101: accepted)."""
    if path == "/ws":
        return ws_upgrade(server.port, path, host=host, origin=origin)
    return http_get(server.port, path, host=host).status


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}"])
def test_a_foreign_host_name_is_refused(server: Server, path: str, host: str) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    host = host.format(port=server.port)
    with server.good_client().receiving(f"GET {path} from a foreign host"):
        got = status(server, path, host, origin=f"http://{host}")
    assert got == 400, f"GET {path} with Host: {host} got {got}"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "127.0.0.1", "localhost"])
def test_the_server_s_own_names_are_accepted(server: Server, path: str, host: str) -> None:
    host = host.format(port=server.port)
    expected = 101 if path == "/ws" else 200
    with server.good_client().receiving(f"GET {path} with Host: {host}"):
        got = status(server, path, host)
        with_origin = status(server, path, host, origin=f"http://{host}") if path == "/ws" else expected
    assert got == expected, f"GET {path} with Host: {host} got {got}"
    assert with_origin == expected, f"GET /ws with Host: {host} and its own Origin got {with_origin}"


def test_allowed_hosts_adds_a_name(cache_dir: Path, workdir: Path) -> None:
    """STREAMER_SERVER_ALLOWED_HOSTS=cam.example: a reverse proxy's name is accepted, others still are not."""
    env = {"STREAMER_SERVER_ALLOWED_HOSTS": "cam.example"}
    with running_server(cache_dir=cache_dir, cwd=workdir, env=env, results=False) as named:
        host = f"cam.example:{named.port}"
        assert [status(named, path, host, origin=f"http://{host}") for path in PATHS] == [200, 101, 200, 200]
        assert [status(named, path, "evil.example", origin="http://evil.example") for path in PATHS] == [400] * 4
        assert status(named, "/api/streams", f"127.0.0.1:{named.port}") == 200


TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
def guarded(cache_dir: Path, workdir: Path) -> Iterator[Server]:
    """A server with a token (on loopback, where it is allowed too)."""
    with running_server(cache_dir=cache_dir, cwd=workdir, token=TOKEN, results=False) as running:
        yield running


@pytest.mark.parametrize("path", ["/api/streams", "/metrics", "/ws"])
@pytest.mark.parametrize(
    ("query", "bearer", "expected"),
    [
        (f"token={TOKEN}", None, 200),
        (None, TOKEN, 200),
        ("token=wrong", None, 401),
        (None, "wrong", 401),
        (None, None, 401),
        (f"token=wrong&token={TOKEN}", None, 400),
        (f"token={TOKEN}&token={TOKEN}", None, 400),
        ("&".join(["token=w"] * 599 + [f"token={TOKEN}"]), None, 400),
        (f"token={TOKEN}", TOKEN, 400),
    ],
    ids=["query", "bearer", "wrong", "wrong-bearer", "none", "wrong-and-right", "twice", "600-values", "both-ways"],
)
def test_the_token_is_one_value_in_one_place(
    guarded: Server, path: str, query: str | None, bearer: str | None, expected: int
) -> None:
    """Exactly one token, right, in the query or the Authorization header; more than one is a bad request."""
    target = path + (f"?{query}" if query is not None else "")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    host = f"127.0.0.1:{guarded.port}"
    if path == "/ws":
        headers |= {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
        headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
        expected = 101 if expected == 200 else expected
    reply = http_get(guarded.port, target, host=host, headers=headers)
    assert reply.status == expected, (reply.status, reply.body[:200])
    assert TOKEN.encode() not in reply.body


SECRETS = {"password": "hunter2pw", "token": "tok3nvalue", "auth": "authval9", "key": "keyval7", "secret": "sec8value"}
CAMERA = "rtsp://127.0.0.1:9/cam?user=alice&" + "&".join(f"{k}={v}" for k, v in SECRETS.items())


def test_credentials_in_a_query_string_never_leave_the_server(cache_dir: Path, workdir: Path) -> None:
    """A camera URL with secrets in its query (port 9: nothing listens, so it reconnects) is shown redacted."""
    with running_server(CAMERA, cache_dir=cache_dir, cwd=workdir, results=False) as server:
        deadline = time.monotonic() + 60
        rows = server.probe.streams()
        while not (rows and rows[0].get("reconnects", 0) >= 2) and time.monotonic() < deadline:
            time.sleep(0.2)
            rows = server.probe.streams()
        assert rows and rows[0]["reconnects"] >= 2, rows
        stderr = server.child.wait_for_stderr("127.0.0.1/cam", count=2, timeout=30)

        async def hello() -> str:
            async with asyncio.timeout(30), connect(server.ws_url(), close_timeout=5) as ws:
                text = str(await ws.recv())
                assert json.loads(text)["type"] == "hello"
                await ws.send('{"type":"ping"}')
                assert (await recv_json(ws))["type"] == "pong"
                return text

        seen = {
            "/api/streams": server.get("/api/streams").body.decode(),
            "/metrics": server.get("/metrics").body.decode(),
            "the /ws hello": server.run(hello()),
            "stderr": stderr + server.child.stderr(),
        }
        leaks = [
            f"{where} shows {value!r}" for where, text in seen.items() for value in SECRETS.values() if value in text
        ]
        assert not leaks, "; ".join(leaks) + f"\n/api/streams: {seen['/api/streams'][:600]}"
        url = json.loads(seen["/api/streams"])[0]["url"]
        for key in SECRETS:
            assert f"{key}=***" in url, url
        assert url.startswith("rtsp://127.0.0.1:9/cam?"), url
