"""The server's tests: a real :class:`Runtime` on the embedded classifier, real servers on 127.0.0.1, real clients.

Every test runs its :class:`StreamerServer` on port 0 inside ``asyncio.run``
with a time bound (:func:`run`), and talks to it with ``http.client`` (on a
worker thread, since the server shares the loop) and the websockets client.
One runtime serves the whole session (loading the model once); a test that
adds streams to it removes them (:func:`added_stream`).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection

from streamer.config import StreamSpec, load_config
from streamer.runtime import Runtime
from streamer.server.app import StreamerServer

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def make_runtime(cache_dir: Path, **overrides: Any) -> Runtime:
    """A runtime on the embedded models (CPU), none of the developer's config or environment read."""
    return Runtime(load_config(env={}, overrides={"device": "cpu", "cache_dir": str(cache_dir), **overrides}))


@contextmanager
def added_stream(runtime: Runtime, spec: StreamSpec) -> Iterator[str]:
    """``spec``'s stream in ``runtime`` for the block, removed after."""
    runtime.add_stream(spec)
    try:
        yield spec.id
    finally:
        runtime.remove_stream(spec.id)


def run(main: Callable[[], Awaitable[None]], seconds: float = 30) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await main()

    asyncio.run(bounded())


def port_of(server: StreamerServer) -> int:
    return int(urlsplit(server.url).port or 0)


def _fetch(
    url: str, path: str, method: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


async def fetch(
    server: StreamerServer,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent exactly as given), off the loop the server runs on."""
    return await asyncio.to_thread(_fetch, server.url, path, method, headers or {}, body)


async def post_json(server: StreamerServer, path: str, payload: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    """``POST path`` with ``payload`` as JSON; the answer's status, headers and parsed body."""
    headers = {"Content-Type": "application/json", **kwargs.pop("headers", {})}
    status, answer_headers, body = await fetch(
        server, path, method="POST", headers=headers, body=json.dumps(payload).encode(), **kwargs
    )
    return status, answer_headers, json.loads(body) if body else None


def ws_url(server: StreamerServer, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "ws" + query


async def receive(ws: ClientConnection, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The next message whose type is not in ``skip``, parsed."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert isinstance(message, dict)
        if message.get("type") not in skip:
            return message


def b64(name: str) -> str:
    """samples/NAME, base64."""
    return base64.b64encode((SAMPLES / name).read_bytes()).decode()
