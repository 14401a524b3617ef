"""The ASGI middleware every request passes first: Host, token, Origin, and the request body's size.

In this order, for HTTP requests and WebSocket handshakes alike::

    Host not this server's       -> 400  (DNS rebinding)
    guarded path, token wrong    -> 401; more than one token offered -> 400
    /ws from a foreign Origin    -> 403
    body over max_body_bytes     -> 413, from Content-Length before anything is read,
                                    else as soon as the bytes received pass the limit

Guarded are ``/ws``, ``/api/...``, ``/metrics`` and ``/openapi.json``;
the page's files and ``/healthz`` are public (they hold no data). A
WebSocket handshake is refused with a plain HTTP response. Every HTTP
response gets ``X-Content-Type-Options: nosniff`` and ``Cache-Control:
no-cache``. Refusals never echo what the client sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamer.server.auth import host_allowed, origin_allowed, token_verdict

__all__ = ["GUARDED_PATHS", "Guard", "is_guarded"]

log = logging.getLogger(__name__)

#: Paths that need the token (besides everything under ``/api/``).
GUARDED_PATHS = frozenset({"/ws", "/metrics", "/openapi.json", "/api"})


def is_guarded(path: str) -> bool:
    """Whether ``path`` (percent-decoded, as routed) needs the token."""
    return path.rstrip("/") in GUARDED_PATHS or path.startswith("/api/")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a request body passes the limit; answered 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body over the server's limit of {limit} bytes (server.max_body_bytes)",
            headers={"Connection": "close"},
        )


class Guard:
    """Wraps the app: refuses what :mod:`streamer.server.auth` refuses, bounds request bodies."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        token: str | None,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.bind_host = bind_host
        self.token = token
        self.allowed_hosts = tuple(allowed_hosts)
        self.allowed_origins = tuple(allowed_origins)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, text, extra = refusal
            await _refuse(scope, receive, send, status, text, extra)
            return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        lengths = headers.getlist("content-length")
        if any(not value.strip().isdigit() or int(value) > self.max_body_bytes for value in lengths):
            refused = BodyTooLarge(self.max_body_bytes)
            await _refuse(scope, receive, send, 413, str(refused.detail), refused.headers or {})
            return
        await self.app(scope, self._limited(receive), _hardened(send))

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, Mapping[str, str]] | None:
        """``(status, text, headers)`` refusing the request, or ``None`` if it may go on."""
        hosts = headers.getlist("host")
        if len(hosts) != 1 or not host_allowed(hosts[0], self.bind_host, self.allowed_hosts):
            shown = hosts[0][:100] if len(hosts) == 1 else f"{len(hosts)} Host headers"
            text = (
                f"bad request: Host {shown!r} is not this server's address; to reach it under another name, "
                "add that name to server.allowed_hosts"
            )
            return 400, text, {}
        path: str = scope["path"]
        if is_guarded(path):
            query = scope.get("query_string", b"").decode("latin-1")
            verdict = token_verdict(self.token, query, headers.getlist("authorization"))
            if verdict is None:
                return 400, "bad request: give the token once, as ?token= or Authorization: Bearer", {}
            if not verdict:
                return 401, "unauthorized: pass the server's token", {"WWW-Authenticate": "Bearer"}
        if scope["type"] == "websocket" and not origin_allowed(
            headers.getlist("origin"), hosts, self.allowed_origins
        ):
            client = scope.get("client")
            log.warning("WebSocket from %s refused: Origin not allowed", client[0] if client else "?")
            return 403, "forbidden: this Origin is not allowed", {}
        return None

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that raises :class:`BodyTooLarge` once the body read so far passes the limit."""
        limit = self.max_body_bytes
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited


def _hardened(send: Send) -> Send:
    """``send`` adding ``nosniff`` and ``no-cache`` to a response that does not set them."""

    async def hardened(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers.setdefault("X-Content-Type-Options", "nosniff")
            headers.setdefault("Cache-Control", "no-cache")
        await send(message)

    return hardened


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, text: str, extra: Mapping[str, str]
) -> None:
    """Answer ``status`` with ``{"detail": text}``: an HTTP response, or the refusal of a WebSocket handshake."""
    body = json.dumps({"detail": text}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-cache"),
        *((key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in extra.items()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": 1008})  # a server without the extension: 403, no body
