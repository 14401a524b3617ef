"""``/ws``: one WebSocket per page: results out, requests in (see :mod:`streamer.server.wire`).

Each connection gets ``hello`` (the streams it may see), then the results
of the streams it subscribes to through its own bounded queue in the
:class:`~streamer.server.hub.Hub` (a client that reads too slowly loses old
results, nobody else does). Its messages are answered in order: ``ping``,
``subscribe``, ``classify`` (through the shared
:class:`~streamer.server.classify.ClassifyService`) and WebRTC ``offer``
(:class:`~streamer.server.peers.Peers`). A bad message gets an ``error``
naming what was wrong and the connection stays; a message over the size
limit closes it with 1009 (uvicorn does that). :meth:`WebSocketChannel.close`
closes every connection with 1001 (going away) when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from streamer.server import wire
from streamer.server.classify import Busy, ClassifyService, ws_record
from streamer.server.hub import Client, Hub
from streamer.server.metrics import ServerMetrics
from streamer.server.peers import Connection, Peers

__all__ = ["WebSocketChannel"]

log = logging.getLogger(__name__)

#: How long the closing handshake of one connection may take when the server stops (then it is dropped).
CLOSE_TIMEOUT_S = 5.0
#: What a send may raise once the client is gone: Starlette's disconnect, uvicorn's, or "already closed".
_GONE = (WebSocketDisconnect, OSError, RuntimeError)


@dataclass(eq=False)
class _Session:
    websocket: WebSocket
    connection: Connection
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class WebSocketChannel:
    """Serves every /ws connection; created on the server's event loop once it starts.

    ``visible(client)`` lists the streams ``client`` may see; ``detects``
    says whether classify answers carry objects.
    """

    def __init__(
        self,
        *,
        hub: Hub,
        peers: Peers,
        classify: ClassifyService,
        metrics: ServerMetrics,
        visible: Callable[[Client | None], list[dict[str, Any]]],
        detects: Callable[[], bool],
    ) -> None:
        self.hub = hub
        self.peers = peers
        self.classify = classify
        self.metrics = metrics
        self.visible = visible
        self.detects = detects
        self.dropped_gone = 0  # results dropped for clients that have disconnected
        self._sessions: set[_Session] = set()

    def dropped(self) -> int:
        """Results dropped so far for clients that read too slowly."""
        return self.dropped_gone + sum(c.dropped for c in self.hub.clients)

    async def close(self) -> None:
        """Close every connection with 1001 (going away) and wait, bounded, until each has ended."""
        sessions = list(self._sessions)
        await asyncio.gather(*(self._close(session) for session in sessions), return_exceptions=True)

    async def _close(self, session: _Session) -> None:
        with contextlib.suppress(TimeoutError, *_GONE):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                async with session.send_lock:
                    await session.websocket.close(1001, "server shutting down")
                await session.done.wait()

    async def serve(self, websocket: WebSocket) -> None:
        """The whole life of one connection (the /ws route's handler)."""
        await websocket.accept()
        hub = self.hub
        client = hub.connect()
        remote = websocket.client
        connection = Connection(client, f"{remote.host}:{remote.port}" if remote else "?")
        session = _Session(websocket, connection)
        self._sessions.add(session)
        log.debug("WebSocket %s open", connection.remote)
        sender: asyncio.Task[None] | None = None
        code: object = None
        try:
            await self._send(session, wire.encode("hello", version=wire.VERSION, streams=self.visible(client)))
            sender = asyncio.create_task(self._send_results(session))
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code")
                    break
                text = message.get("text")
                data: str | bytes = text if text is not None else message.get("bytes") or b""
                reply = await self._answer(data, connection)
                if reply is not None:
                    await self._send(session, reply)
        except _GONE:
            pass  # the client went away mid-send
        finally:
            hub.disconnect(client)
            self.dropped_gone += client.dropped
            await self.peers.close_connection(connection)
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
            self._sessions.discard(session)
            session.done.set()
            log.debug("WebSocket %s closed (code %s, %d dropped)", connection.remote, code, client.dropped)

    async def _send(self, session: _Session, text: str) -> None:
        async with session.send_lock:
            await session.websocket.send_text(text)

    async def _send_results(self, session: _Session) -> None:
        """Send the client's queued results, oldest first, as they come.

        Once woken, it sends as many results as are queued under one hold of the send lock, each as one
        ASGI message straight to ``websocket.send`` (no lock, no task switch and no coroutine of ours per
        result while the connection takes them). A reply waiting for the lock comes after at most that
        many, even while a slow client's queue keeps refilling (and dropping its oldest).
        """
        client = session.connection.client
        wait, pop, send = client.wait, client.pop, session.websocket.send
        lock = session.send_lock
        try:
            while True:
                await wait()
                async with lock:
                    for _ in range(len(client)):
                        await send({"type": "websocket.send", "text": pop()})
        except _GONE:
            return

    async def _answer(self, message: str | bytes, connection: Connection) -> str | None:
        """The reply to one client message (``None``: no reply); a bad message gets an ``error``."""
        try:
            return await self._dispatch(message, connection)
        except wire.WireError as exc:
            connection.complain(f"{exc.code}: {str(exc)[:120]}")
            self.metrics.ws_error(exc.code)
            return wire.error(exc)
        except Exception as exc:  # a bug of ours: the client gets one line, the log one traceback per connection
            connection.complain(type(exc).__name__, failure=True)
            self.metrics.ws_error("internal")
            return wire.error(
                wire.WireError("internal", f"the server could not handle this message ({type(exc).__name__})")
            )

    async def _dispatch(self, message: str | bytes, connection: Connection) -> str | None:
        request = wire.decode(message)
        client = connection.client
        if isinstance(request, wire.Ping):
            return wire.encode("pong")
        if isinstance(request, wire.Subscribe):
            client.streams = None if request.streams is None else frozenset(request.streams)
            return None
        if isinstance(request, wire.Classify):
            return await self._classify(request)
        if request.stream is None:
            return await self.peers.camera(request, connection)
        return await self.peers.watch(request, connection)

    async def _classify(self, request: wire.Classify) -> str:
        """Answer a classify request record by record, or ``busy`` when enough are waiting."""
        service = self.classify
        try:
            admitted = service.admit()
        except Busy as exc:
            raise wire.WireError("busy", str(exc), request.id) from None
        with admitted:
            detects = self.detects()
            records: list[dict[str, Any]] = []
            for index, record in enumerate(request.records):
                if record.image is None:
                    records.append({"error": record.error or f"record {index}: no image"})
                    continue
                answer = await service.classify(record.image, f"record {index}")
                records.append(ws_record(answer, top_k=request.top_k, detects=detects))
        return wire.encode("classified", id=request.id, records=records)
