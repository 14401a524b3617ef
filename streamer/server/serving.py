"""Running uvicorn inside our own asyncio loop: bind, serve, shut down.

uvicorn's ``Server.serve()`` owns the process (it installs signal handlers
and calls ``sys.exit`` when it cannot bind); :class:`Uvicorn` uses its
parts instead, so the caller's loop and signal handling stay its own::

    serving = Uvicorn(app, host="127.0.0.1", port=0, max_message_bytes=16 << 20)
    port = await serving.start()     # bound and accepting; raises ConfigError if the port is taken
    ...
    await serving.stop()             # stop accepting, close what is left (WebSockets with 1012), wait

The HTTP protocol is h11 (the plain ``uvicorn`` package's own); WebSockets
use the ``websockets`` library through uvicorn's ``websockets-sansio``
protocol (its ``websockets`` one is the deprecated ``websockets.legacy``
API). uvicorn's access log is off and every uvicorn log record passes
:class:`RedactSecrets`, so no ``?token=`` or ``Authorization`` value is
ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from streamer.errors import ConfigError

__all__ = ["WS_IMPLEMENTATION", "RedactSecrets", "Uvicorn", "bind"]

#: uvicorn's WebSocket protocol: the ``websockets`` library's sans-I/O one.
WS_IMPLEMENTATION = "websockets-sansio"
#: How long stopping waits for requests in flight before cancelling them.
GRACEFUL_S = 5
_BACKLOG = 2048
_SECRET = re.compile(r"((?:[?&]|%3[Ff]|%26)token=)[^&\s\"']*|(bearer\s+)[^\s\"']+", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Rewrites a log record so a ``token=`` query value or a ``Bearer`` credential reads ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_REDACT = RedactSecrets()
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def _redact_uvicorn_logs() -> None:
    """Put :class:`RedactSecrets` on uvicorn's loggers (once: a filter is added only if absent)."""
    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address of ``host`` (``""``: all), all on one port (``0``: a free one)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"server.host = {host!r} cannot be resolved: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _, address in infos:
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # the other addresses on the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(_BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(
            f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}; pick another --port (0: any free one)"
        ) from None
    return sockets


class Uvicorn:
    """One uvicorn server for ``app`` on ``host:port``, run on the running loop; see the module doc."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, max_message_bytes: int) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http="h11",
            ws=WS_IMPLEMENTATION,
            ws_max_size=max_message_bytes,
            ws_per_message_deflate=False,  # results are small; deflate costs CPU and memory per client
            lifespan="off",
            log_config=None,
            log_level=logging.WARNING,  # its per-connection INFO lines are ours at DEBUG
            access_log=False,
            server_header=False,
            proxy_headers=False,  # X-Forwarded-* from a client never changes who or where it is
            timeout_graceful_shutdown=GRACEFUL_S,
        )
        self._server: uvicorn.Server | None = None
        self._sockets: list[socket.socket] = []
        self._ticks: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind and start accepting; returns the port bound."""
        if self._server is not None:
            raise RuntimeError("this server is already started")
        _redact_uvicorn_logs()
        self._sockets = bind(self.config.host, self.config.port)
        server = uvicorn.Server(self.config)
        try:
            if not self.config.loaded:
                self.config.load()
            server.lifespan = self.config.lifespan_class(self.config)
            await server.startup(sockets=self._sockets)
        except BaseException:
            for sock in self._sockets:
                sock.close()
            raise
        self._server = server
        self._ticks = asyncio.get_running_loop().create_task(server.main_loop())  # Date headers, exit flag
        port: int = self._sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop accepting, close every connection left, wait (bounded) for what is in flight."""
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._ticks is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticks
        await server.shutdown(sockets=self._sockets)
