"""The server: a FastAPI (Starlette) app under uvicorn, around a :class:`~streamer.runtime.Runtime`.

Routes (all on one port)::

    GET  /                  the page (web/index.html)                      public
    GET  /<file>            the page's other files (package data)          public
    GET  /healthz           200 "ok"                                       public
    GET  /ws                the WebSocket (:mod:`.websocket`, :mod:`.wire`) token, Origin checked
    /api/...                the REST API (:mod:`.rest`)                    token
    GET  /metrics           Prometheus text exposition (:mod:`.metrics`)   token
    GET  /openapi.json      the API's description (no docs page)           token

Every request first passes :class:`~streamer.server.guard.Guard` (Host,
token, Origin, body size). Call order::

    runtime = Runtime(config)
    server = StreamerServer(ServerConfig(port=8080, token=...), runtime)   # subscribes to the runtime
    runtime.start()
    async with server:                  # start(): bound, ``server.url`` has the real port
        await stop_event.wait()
    # stop(): every WebSocket closed with 1001, every WebRTC peer closed, uvicorn shut down
    runtime.stop()

The server neither starts nor stops the runtime. Results reach the
WebSocket clients through the :class:`~streamer.server.hub.Hub` (each its
own bounded queue) and the metrics; decoded frames reach the browsers
watching over WebRTC. The token, when configured, is accepted as
``?token=...`` or ``Authorization: Bearer ...`` (exactly one of them,
once); a non-loopback ``host`` needs one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from streamer.errors import ConfigError
from streamer.events import Event
from streamer.frames import Frame
from streamer.results import FrameResult
from streamer.server import wire
from streamer.server.auth import is_loopback, normal_origin
from streamer.server.classify import ClassifyService
from streamer.server.guard import Guard
from streamer.server.hub import Client, Hub
from streamer.server.metrics import CONTENT_TYPE, ServerMetrics
from streamer.server.peers import PeerLimits, Peers
from streamer.server.serving import Uvicorn
from streamer.server.static import StaticFiles
from streamer.server.websocket import WebSocketChannel
from streamer.sources.images import DEFAULT_LIMITS, ImageLimits

if TYPE_CHECKING:
    from streamer.cluster.front import ClusterRuntime
    from streamer.runtime import Runtime

__all__ = ["ServerConfig", "StreamerServer", "build_app"]

log = logging.getLogger(__name__)

#: Largest request body by default (``server.max_body_bytes``): ten large photos, base64-encoded.
MAX_BODY_BYTES = 32 * 1024 * 1024
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class ServerConfig:
    """Where and how to serve; validated on creation.

    ``token`` (``None``: no authentication) guards ``/ws``, ``/api/*``,
    ``/metrics`` and ``/openapi.json``; it is required to bind anything but a
    loopback address. ``web_dir`` is the page's folder (``None``: the page
    installed with streamer). ``allowed_origins`` lists browser origins
    (``"https://host:port"``) allowed on ``/ws`` besides the page's own.
    ``queue_size`` bounds each client's queue of results;
    ``max_message_bytes`` the size of a message from a client (larger ones
    close the connection with 1009); ``max_body_bytes`` the size of a request
    body (larger ones get 413 before they are read). ``ice_hosts`` are the
    addresses WebRTC offers its media on (never a STUN server).
    ``allowed_hosts`` are more names a request's ``Host`` may give (a reverse
    proxy's, say). ``max_pending_classify`` bounds the classify requests
    running or waiting; ``image_limits`` the images they may hold.
    ``ice_timeout_s`` is how long a WebRTC peer may take to connect;
    ``max_peers`` and ``max_peers_per_client`` cap peer connections.
    ``share_cameras`` lists a browser's camera to every client, not only to
    the one that shares it.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    web_dir: Path | None = None
    allowed_origins: tuple[str, ...] = ()
    queue_size: int = 64
    max_message_bytes: int = wire.MAX_MESSAGE_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    ice_hosts: tuple[str, ...] = ("127.0.0.1",)
    allowed_hosts: tuple[str, ...] = ()
    max_pending_classify: int = 4
    image_limits: ImageLimits = DEFAULT_LIMITS
    ice_timeout_s: float = 15.0
    max_peers: int = 32
    max_peers_per_client: int = 4
    share_cameras: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            raise ConfigError(f"port = {self.port!r}; expected an integer in 0..65535 (0: any free port)")
        if self.token is not None and not self.token.strip():
            raise ConfigError("token is empty; pass a non-empty --token or STREAMER_TOKEN, or none at all")
        if self.token is None and not is_loopback(self.host):
            raise ConfigError(
                f"host = {self.host!r} is not a loopback address, so anyone on the network could watch the "
                "cameras' results; pass --token or set STREAMER_TOKEN to require a token, or bind 127.0.0.1"
            )
        if not isinstance(self.queue_size, int) or self.queue_size < 1:
            raise ConfigError(f"queue_size = {self.queue_size!r}; expected an integer >= 1")
        if not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes = {self.max_message_bytes!r}; expected an integer >= 1024")
        for key in ("max_pending_classify", "max_peers", "max_peers_per_client", "max_body_bytes"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"server.{key} = {value!r}; expected an integer >= 1")
        if not 0.1 <= self.ice_timeout_s <= 3600:  # also refuses nan
            raise ConfigError(f"server.ice_timeout_s = {self.ice_timeout_s!r}; expected seconds in 0.1..3600")
        for origin in self.allowed_origins:
            if not isinstance(origin, str) or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"allowed_origins: {origin!r} is not an origin; write it as 'https://host:port' (scheme and host)"
                )
        if self.web_dir is not None:
            object.__setattr__(self, "web_dir", Path(self.web_dir))
        object.__setattr__(self, "allowed_origins", tuple(normal_origin(o) for o in self.allowed_origins))
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower() for h in self.allowed_hosts))


class StreamerServer:
    """Serves the page, the REST API, the metrics and the WebSocket of results for ``runtime``.

    Subscribes to ``runtime``'s results and frames on creation (so create it
    before ``runtime.start()``); until :meth:`start` and after :meth:`stop`
    they go nowhere.
    """

    def __init__(self, config: ServerConfig, runtime: Runtime | ClusterRuntime) -> None:
        self.config = config
        self.runtime = runtime
        self.metrics = ServerMetrics(
            self.stats,
            lambda: runtime.provider,
            clients=self._client_count,
            ws_dropped=self.ws_dropped,
            mqtt=lambda: runtime.bus.counters() if runtime.bus is not None else None,
        )
        self.static = StaticFiles(config.web_dir)
        self.app = build_app(self)
        self.reload_lock = asyncio.Lock()
        self._port = config.port
        self._hub: Hub | None = None
        self._peers: Peers | None = None
        self._classify: ClassifyService | None = None
        self._channel: WebSocketChannel | None = None
        self._serving: Uvicorn | None = None
        runtime.subscribe(self._on_result)
        runtime.subscribe_frames(self._on_frame, wanted=self.watching)
        runtime.subscribe_events(self.publish_event)

    # lifecycle

    async def start(self) -> None:
        """Bind and start serving; ``url`` then has the real port."""
        if self._serving is not None:
            raise RuntimeError("this server is already started")
        config = self.config
        hub = Hub(asyncio.get_running_loop(), queue_size=config.queue_size)
        limits = PeerLimits(
            config.ice_hosts, config.ice_timeout_s, config.max_peers, config.max_peers_per_client, config.share_cameras
        )
        peers = Peers(limits, self.runtime, hub, self.stats)
        classify = ClassifyService(self.runtime, max_pending=config.max_pending_classify, limits=config.image_limits)
        channel = WebSocketChannel(
            hub=hub,
            peers=peers,
            classify=classify,
            metrics=self.metrics,
            visible=self.stats,
            detects=lambda: self.runtime.detects,
        )
        serving = Uvicorn(self.app, host=config.host, port=config.port, max_message_bytes=config.max_message_bytes)
        self._hub, self._peers, self._classify, self._channel = hub, peers, classify, channel
        try:
            self._port = await serving.start()
        except BaseException:
            classify.close()
            self._hub = self._peers = self._classify = self._channel = None
            raise
        self._serving = serving
        log.debug("serving on %s", self.url)

    async def stop(self) -> None:
        """Close every WebSocket (1001 going away) and WebRTC peer, and stop listening."""
        serving, self._serving = self._serving, None
        if self._channel is not None:
            await self._channel.close()
        if self._peers is not None:
            await self._peers.close()
        if serving is not None:
            await serving.stop()
        if self._classify is not None:
            self._classify.close()

    async def __aenter__(self) -> StreamerServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """``http://host:port/`` with the port actually bound."""
        host = self.config.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self._port}/"

    @property
    def hub(self) -> Hub:
        """The fan-out of results to the WebSocket clients; exists once started."""
        if self._hub is None:
            raise RuntimeError("the server is not started; await server.start() first")
        return self._hub

    @property
    def classify_service(self) -> ClassifyService:
        """The classify requests' admission and answers; exists once started."""
        if self._classify is None:
            raise RuntimeError("the server is not started; await server.start() first")
        return self._classify

    @property
    def peer_count(self) -> int:
        """Open WebRTC peer connections."""
        return len(self._peers) if self._peers is not None else 0

    async def serve_websocket(self, ws: WebSocket) -> None:
        """The life of one /ws connection (refused with 1001 while the server is not serving)."""
        channel = self._channel
        if channel is None or self._serving is None:
            await ws.close(1001)
            return
        await channel.serve(ws)

    # results and frames, from the runtime's threads

    def _on_result(self, result: FrameResult, frame: Frame) -> None:
        self.publish_result(result)

    def _on_frame(self, frame: Frame) -> None:
        peers = self._peers
        if peers is not None:
            peers.publish_frame(frame.stream_id, lambda: frame.image, frame.pts_ms)  # RGB only if watched

    def publish_result(self, result: FrameResult) -> None:
        """Send ``result`` to every client subscribed to its stream and count it in the metrics; any thread,
        never blocks. Before :meth:`start` and after :meth:`stop` it goes nowhere."""
        hub = self._hub
        if hub is None or self._serving is None:
            return
        if result.stream not in hub.private:
            self.metrics.observe(result)
        if not hub.clients:  # nobody to encode it for
            return
        text = wire.encode("result", result=result.to_dict())
        try:
            hub.publish(text, stream=result.stream)
        except RuntimeError:  # the loop closed between the hub's check and the call
            log.debug("result of %r dropped: the server's loop is closed", result.stream)

    def publish_event(self, event: Event) -> None:
        """Send a recorded ``event`` to the clients subscribed to its stream (an ``event`` message); any
        thread, never blocks."""
        hub = self._hub
        if hub is None or self._serving is None or not hub.clients:
            return
        try:
            hub.publish(wire.encode("event", event=event.to_dict()), stream=event.after.stream)
        except RuntimeError:
            log.debug("event of %r dropped: the server's loop is closed", event.after.stream)

    def publish_frame(self, stream: str, image: np.ndarray, pts_ms: float) -> None:
        """Hand a decoded frame to every browser watching ``stream`` over WebRTC; any thread, never blocks."""
        peers = self._peers
        if peers is not None:
            peers.publish_frame(stream, lambda: image, pts_ms)

    def watching(self, stream: str) -> bool:
        """Whether a browser watches ``stream``'s video now (then its decoder skips no frame); any thread."""
        peers = self._peers
        return peers is not None and peers.watching(stream)

    def stats(self, client: Client | None = None) -> list[dict[str, Any]]:
        """The streams ``client`` may see: all but the cameras other clients share (``None``: no camera)."""
        private = self._hub.private if self._hub is not None else {}
        return [
            row
            for row in self.runtime.stats()
            if (stream := str(row.get("stream"))) not in private or (client is not None and private[stream] is client)
        ]

    def ws_dropped(self) -> int:
        """Results dropped so far for clients that read too slowly."""
        return self._channel.dropped() if self._channel is not None else 0

    def _client_count(self) -> int:
        return len(self._hub.clients) if self._hub is not None else 0


def build_app(server: StreamerServer) -> FastAPI:
    """The FastAPI app of ``server``: its routes behind the :class:`~streamer.server.guard.Guard`."""
    from streamer.server import rest  # here: rest's handlers name StreamerServer, defined above

    app = FastAPI(
        title="streamer",
        version=_version(),
        description="Real-time video stream classifier: results over WebSocket, images over REST.",
        docs_url=None,  # the docs pages load their scripts from a CDN; nothing may load from outside the server
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.server = server
    config = server.config
    app.add_middleware(
        Guard,
        bind_host=config.host,
        token=config.token,
        allowed_hosts=config.allowed_hosts,
        allowed_origins=config.allowed_origins,
        max_body_bytes=config.max_body_bytes,
    )
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.include_router(rest.router)

    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = await run_in_threadpool(server.metrics.render)  # reads the runtime's stats
        return Response(body, headers={"Content-Type": CONTENT_TYPE})

    @app.websocket("/ws")
    async def websocket(ws: WebSocket) -> None:
        await server.serve_websocket(ws)

    @app.api_route("/ws", methods=["GET", "HEAD"], include_in_schema=False)
    async def websocket_over_http() -> JSONResponse:
        return JSONResponse(
            {"detail": "/ws is a WebSocket; connect with a WebSocket client"}, 426, headers={"Upgrade": "websocket"}
        )

    @app.api_route("/{path:path}", methods=["GET", "HEAD"], include_in_schema=False)
    async def page(request: Request) -> Response:
        return await run_in_threadpool(server.static.response, request.scope["path"])

    return app


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """FastAPI's own answer, with a 405's ``Allow`` in a stable order."""
    allow = (exc.headers or {}).get("Allow")
    if exc.status_code == 405 and allow:
        methods = {m.strip() for m in allow.split(",")}
        ordered = [m for m in _METHOD_ORDER if m in methods] + sorted(methods - set(_METHOD_ORDER))
        exc.headers = {**(exc.headers or {}), "Allow": ", ".join(ordered)}
    return await http_exception_handler(request, exc)


def _version() -> str:
    try:
        return version("streamer")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0"
