"""The HTTP + WebSocket server: thin I/O around the pure codec (:mod:`wire`) and the fan-out :mod:`hub`.

Routes (all on one port, served by python-websockets' ``process_request``)::

    GET /              web/index.html                       public
    GET /<file>        a static file under web_dir          public
    GET /healthz       200 "ok"                             public
    GET /api/streams   the pipeline's stats() as JSON       token
    GET /metrics       Prometheus text exposition format    token
    GET /ws            the WebSocket (see wire)             token, Origin checked

Call order::

    config = ServerConfig(port=8080, token=os.environ.get("STREAMER_TOKEN"))
    async with StreamerServer(config, classifier, stats=pipeline.stats) as server:
        pipeline_callback = server.publish_result       # from any thread
        await stop_event.wait()

The token, when configured, is accepted as ``?token=...`` or
``Authorization: Bearer ...`` (exactly one of them, once). A non-loopback
``host`` needs one. Every request's ``Host`` must name the address the server
listens on (or one of ``allowed_hosts``), so a page whose name rebinds to
127.0.0.1 gets nothing.

What one client may cost is bounded: classify requests run on a thread of
their own, at most ``max_pending_classify`` at a time (others are answered
``busy``); each client has at most ``max_peers_per_client`` WebRTC peer
connections and the server ``max_peers``; a peer that has not connected
within ``ice_timeout_s`` is closed, and every peer of a WebSocket is closed
with it. A browser's camera is private to the connection that shares it
(unless ``share_cameras``) and ends with it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hmac
import http
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers, MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streamer.errors import ConfigError, ImageError, StreamerError
from streamer.results import FrameResult
from streamer.server import wire
from streamer.server.hub import Client, Hub
from streamer.server.sdp import check_offer
from streamer.server.webrtc import FrameTrack, answer_offer
from streamer.sources.base import Source
from streamer.sources.images import DEFAULT_LIMITS, ImageLimits, decode_image
from streamer.sources.webrtc import TrackSource
from streamer.tasks import Classifier

__all__ = ["ServerConfig", "StreamerServer"]

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
#: Largest static file served; the web page is a handful of small files.
MAX_STATIC_BYTES = 16 * 1024 * 1024
#: High-water mark of each connection's write buffer; a client that stops reading blocks its sender there.
WRITE_LIMIT = 64 * 1024


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def host_allowed(host_header: str, bind_host: str, allowed_hosts: tuple[str, ...] = ()) -> bool:
    """Whether a request's ``Host`` header names this server (bound to ``bind_host``).

    Accepted: a loopback name or address when bound to loopback, the bound
    address itself, any IP address when bound to every interface (``0.0.0.0``,
    ``::``), and the names in ``allowed_hosts`` (``"*"``: any). A name that is
    none of these is what a DNS-rebinding page sends, so it is refused.
    """
    try:
        name = (urlsplit(f"//{host_header.strip()}").hostname or "").lower()
    except ValueError:
        return False
    if not name:
        return False
    if "*" in allowed_hosts or name in allowed_hosts:
        return True
    address, bound = _ip(name), _ip(bind_host)
    if name == bind_host.lower().strip("[]"):
        return True
    if address is None:
        return name == "localhost" and _is_loopback(bind_host)
    if bound is not None and bound.is_unspecified:
        return True
    return address.is_loopback and _is_loopback(bind_host)


@dataclass(frozen=True)
class ServerConfig:
    """Where and how to serve; validated on creation.

    ``token`` (``None``: no authentication) guards ``/ws``, ``/api/*`` and
    ``/metrics``; it is required to bind anything but a loopback address.
    ``allowed_origins`` lists browser origins (``"https://host:port"``)
    allowed on ``/ws`` besides the page's own. ``queue_size`` bounds each
    client's queue of results; ``max_message_bytes`` the size of a message
    from a client (larger ones close the connection with 1009). ``ice_hosts``
    are the addresses WebRTC offers its media on (never a STUN server).
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
    web_dir: Path = field(default_factory=lambda: WEB_DIR)
    allowed_origins: tuple[str, ...] = ()
    queue_size: int = 64
    max_message_bytes: int = wire.MAX_MESSAGE_BYTES
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
        if self.token is None and not _is_loopback(self.host):
            raise ConfigError(
                f"host = {self.host!r} is not a loopback address, so anyone on the network could watch the "
                "cameras' results; pass --token or set STREAMER_TOKEN to require a token, or bind 127.0.0.1"
            )
        if not isinstance(self.queue_size, int) or self.queue_size < 1:
            raise ConfigError(f"queue_size = {self.queue_size!r}; expected an integer >= 1")
        if not isinstance(self.max_message_bytes, int) or self.max_message_bytes < 1024:
            raise ConfigError(f"max_message_bytes = {self.max_message_bytes!r}; expected an integer >= 1024")
        for key in ("max_pending_classify", "max_peers", "max_peers_per_client"):
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
        object.__setattr__(self, "web_dir", Path(self.web_dir))
        object.__setattr__(self, "allowed_origins", tuple(_normal_origin(o) for o in self.allowed_origins))
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower() for h in self.allowed_hosts))


def _response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    phrase = http.HTTPStatus(status).phrase
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-cache"),
        ]
    )
    for key, value in (extra or {}).items():
        headers[key] = value
    return Response(status, phrase, headers, body)


def _text(status: int, text: str, extra: dict[str, str] | None = None) -> Response:
    return _response(status, text.encode(), "text/plain; charset=utf-8", extra)


def _host_port(netloc: str, scheme: str) -> str:
    """``netloc`` as ``host:port``, the scheme's default port filled in, lowercased."""
    default = 443 if scheme in ("https", "wss") else 80
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or default
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


# --- Prometheus text exposition format ------------------------------------------------------------


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: object) -> str | None:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else None
    return None


_STREAM_METRICS = (
    # name, type, help, stats key
    ("streamer_frames_decoded_total", "counter", "Frames decoded from the stream.", "decoded"),
    ("streamer_frames_dropped_total", "counter", "Frames dropped before inference.", "dropped"),
    ("streamer_frames_inferred_total", "counter", "Frames the models ran on.", "inferred"),
    ("streamer_reconnects_total", "counter", "Reconnections to the stream.", "reconnects"),
    ("streamer_frame_age_ms", "gauge", "Age of the last inferred frame when its result was ready.", "last_age_ms"),
)


def render_metrics(streams: list[dict[str, Any]], *, clients: int, ws_dropped: int, provider: str) -> str:
    """The Prometheus text exposition (format 0.0.4) of the pipeline's stats and the server's counters."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {_help(text)}")
        lines.append(f"# TYPE {name} {kind}")

    family("streamer_info", "gauge", "The execution provider the models run on.")
    lines.append(f'streamer_info{{provider="{_label(provider)}"}} 1')
    family("streamer_stream_up", "gauge", "1 if the stream is live, else 0.")
    for row in streams:
        up = 1 if row.get("state") == "live" else 0
        lines.append(f'streamer_stream_up{{stream="{_label(row.get("stream", ""))}"}} {up}')
    for name, kind, text, key in _STREAM_METRICS:
        family(name, kind, text)
        for row in streams:
            value = _number(row.get(key))
            if value is not None:
                lines.append(f'{name}{{stream="{_label(row.get("stream", ""))}"}} {value}')
    family("streamer_ws_clients", "gauge", "Connected WebSocket clients.")
    lines.append(f"streamer_ws_clients {clients}")
    family("streamer_ws_dropped_total", "counter", "Results dropped for WebSocket clients that read too slowly.")
    lines.append(f"streamer_ws_dropped_total {ws_dropped}")
    return "\n".join(lines) + "\n"


# --- classify requests ----------------------------------------------------------------------------


def _classify_records(
    classifier: Classifier, request: wire.Classify, limits: ImageLimits = DEFAULT_LIMITS
) -> list[dict[str, Any]]:
    """Answer each record of ``request``, in order; runs on the classify thread.

    A record that cannot be answered gets an ``error`` of its own; the others still are.
    """
    answers: list[dict[str, Any]] = []
    for index, record in enumerate(request.records):
        if record.image is None:
            answers.append({"error": record.error or f"record {index}: no image"})
            continue
        start = time.perf_counter()
        try:
            result = classifier.process([decode_image(record.image, f"record {index}", limits=limits)])[0]
        except ImageError as exc:
            answers.append({"error": str(exc)})
            continue
        except StreamerError as exc:
            answers.append({"error": f"record {index}: {exc}"})
            continue
        except Exception:
            log.warning("classify request %r, record %d failed", request.id, index, exc_info=True)
            answers.append({"error": f"record {index}: classification failed"})
            continue
        classes = result.classes
        best = classes[0] if classes else None
        answer: dict[str, Any] = {
            "best_label": (
                None
                if best is None
                else {"class_id": best.class_id, "name": best.name, "confidence": round(best.confidence, 6)}
            ),
            "labels": [c.to_dict() for c in classes[: request.top_k]],
        }
        if classifier.detector is not None:
            answer["objects"] = [o.to_dict() for o in result.objects]
        answer["processing_ms"] = round((time.perf_counter() - start) * 1e3, 3)
        answers.append(answer)
    return answers


# --- the server -----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    """One WebSocket: its queue of results and its WebRTC peers."""

    client: Client
    remote: object
    peers: set[RTCPeerConnection] = field(default_factory=set)
    complained: bool = False  # a bad message from it has been logged

    def complain(self, text: str, *, failure: bool = False) -> None:
        """Log the first bad message of this connection (``failure``: one we failed on, with its traceback);
        later ones are answered, not logged."""
        if self.complained:
            return
        self.complained = True
        if failure:
            log.warning("WebSocket %s: a message could not be handled", self.remote, exc_info=True)
        else:
            log.info("WebSocket %s sent a bad message (%s); later ones are answered but not logged", self.remote, text)


class StreamerServer:
    """Serves the web page, the API, the metrics and the WebSocket of results.

    ``classifier`` answers ``classify`` requests (``None``: they get an
    ``unavailable`` error). ``stats`` gives the pipeline's per-stream stats
    (``Pipeline.stats``). ``provider`` names the execution provider for
    ``/metrics`` (``None``: the classifier's, else ``unknown``).
    ``add_source`` and ``remove_source`` let browsers share their cameras.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        classifier: Classifier | None = None,
        *,
        stats: Callable[[], list[dict[str, Any]]] | None = None,
        provider: str | None = None,
        add_source: Callable[[Source], None] | None = None,
        remove_source: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or ServerConfig()
        self.classifier = classifier
        self._stats = stats or (lambda: [])
        if provider is None:
            provider = classifier.provider if classifier is not None else "unknown"
        self.provider = provider
        self._classify_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._classify_pending = 0  # requests running or waiting; touched on the event loop only
        self._hub: Hub | None = None
        self._server: Server | None = None
        self._port = self.config.port
        self._dropped_gone = 0  # results dropped for clients that have disconnected
        self._web_root = self.config.web_dir.resolve()
        self._tracks: dict[str, set[FrameTrack]] = {}  # per stream, the WebRTC tracks watching it
        self._tracks_lock = threading.Lock()
        self._peers: dict[RTCPeerConnection, list[Callable[[], None]]] = {}  # every open peer: what its close undoes
        self._tasks: set[asyncio.Task[None]] = set()  # ICE timeouts and peer closes in flight
        self._add_source, self._remove_source = add_source, remove_source
        self._cameras = 0

    # lifecycle

    async def start(self) -> None:
        """Bind and start serving; ``url`` then has the real port."""
        if self._server is not None:
            raise RuntimeError("this server is already started")
        self._hub = Hub(asyncio.get_running_loop(), queue_size=self.config.queue_size)
        self._classify_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="classify")
        self._server = await serve(
            self._handler,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            max_size=self.config.max_message_bytes,
            write_limit=WRITE_LIMIT,
            compression=None,  # results are small; deflate per client costs CPU and memory per connection
            server_header=None,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.debug("serving on %s", self.url)

    async def stop(self) -> None:
        """Close every connection (1001 going away) and peer, and stop listening."""
        server, self._server = self._server, None
        await asyncio.gather(*(self._close_peer(peer) for peer in list(self._peers)), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            server.close()
            await server.wait_closed()
        pool, self._classify_pool = self._classify_pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

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
    def peer_count(self) -> int:
        """Open WebRTC peer connections."""
        return len(self._peers)

    def publish_result(self, result: FrameResult) -> None:
        """Send ``result`` to every client subscribed to its stream; safe from any thread, never blocks."""
        hub = self.hub
        text = wire.encode("result", result=result.to_dict())
        try:
            hub.publish(text, stream=result.stream)
        except RuntimeError:  # the loop closed between the hub's check and the call
            log.debug("result of %r dropped: the server's loop is closed", result.stream)

    def publish_frame(self, stream: str, image: np.ndarray, pts_ms: float) -> None:
        """Hand a decoded frame to every browser watching ``stream`` over WebRTC; any thread, never blocks."""
        with self._tracks_lock:
            tracks = list(self._tracks.get(stream, ()))
        for track in tracks:
            track.push(image, pts_ms)

    def stats(self, client: Client | None = None) -> list[dict[str, Any]]:
        """The streams ``client`` may see: all but the cameras other clients share (``None``: no camera)."""
        private = self._hub.private if self._hub is not None else {}
        return [
            row
            for row in self._stats()
            if (stream := str(row.get("stream"))) not in private or (client is not None and private[stream] is client)
        ]

    # WebRTC

    def _peer_refused(self, connection: _Connection) -> str | None:
        """Why another peer connection is refused now, or ``None``."""
        if len(connection.peers) >= self.config.max_peers_per_client:
            return (
                f"this connection already has {len(connection.peers)} WebRTC peer connections, the most one "
                "client may have; close one first"
            )
        if len(self._peers) >= self.config.max_peers:
            return f"the server already has {len(self._peers)} WebRTC peer connections, its limit; try again later"
        return None

    def _adopt(self, peer: RTCPeerConnection, connection: _Connection, on_close: Callable[[], None]) -> None:
        """Own ``peer``: closed with its WebSocket, when its connection fails, or if ICE has not
        connected within ``ice_timeout_s``; ``on_close`` then runs once."""
        connection.peers.add(peer)
        closers: list[Callable[[], None]] = [lambda: connection.peers.discard(peer), on_close]
        self._peers[peer] = closers

        @peer.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                await self._close_peer(peer)

        async def expire() -> None:
            await asyncio.sleep(self.config.ice_timeout_s)
            if peer.connectionState != "connected":
                timeout = self.config.ice_timeout_s
                log.info("WebRTC peer of %s did not connect within %.1f s; closed", connection.remote, timeout)
                await self._close_peer(peer)

        timer = self._spawn(expire())

        def stop_timer() -> None:
            if timer is not asyncio.current_task():  # not from inside the timer itself
                timer.cancel()

        closers.append(stop_timer)

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task the server keeps until it ends (cancelled by :meth:`stop`)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _close_peer(self, peer: RTCPeerConnection) -> None:
        """Forget ``peer``, run its cleanup and close it; a second call does nothing."""
        for close in self._peers.pop(peer, []):
            try:
                close()
            except Exception:
                log.warning("closing a WebRTC peer's stream failed", exc_info=True)
        await peer.close()

    async def _watch(self, offer: wire.Offer, connection: _Connection) -> str:
        """Answer a browser's offer to watch ``offer.stream`` with a track fed by :meth:`publish_frame`.

        When the first frame leaves, the client gets ``video_start`` with its ``pts_ms``: the first RTP
        timestamp the browser sees stands for it.
        """
        client = connection.client
        stream = offer.stream or ""
        known = {str(row.get("stream")) for row in self.stats(client)}
        if stream not in known:
            return wire.error(wire.WireError("unknown_stream", f"no stream {stream!r}; streams: {sorted(known)}"))
        refused = self._peer_refused(connection)
        if refused is not None:
            return wire.error(wire.WireError("too_many_peers", refused))
        check_offer(offer.sdp, send_video=True)
        track = FrameTrack(
            on_first=lambda pts_ms: client.offer(wire.encode("video_start", stream=stream, pts_ms=pts_ms), None)
        )
        try:
            peer, sdp = await answer_offer(offer.sdp, track, host_addresses=list(self.config.ice_hosts))
        except Exception as exc:
            track.stop()
            return self._unanswerable(exc)
        with self._tracks_lock:
            self._tracks.setdefault(stream, set()).add(track)

        def unwatch() -> None:
            with self._tracks_lock:
                self._tracks.get(stream, set()).discard(track)
            track.stop()

        self._adopt(peer, connection, unwatch)
        return wire.encode("answer", stream=stream, sdp=sdp)

    async def _camera(self, offer: wire.Offer, connection: _Connection) -> str:
        """Receive the browser's camera as a new live stream, seen only by this client (unless
        ``share_cameras``); it ends when the peer or the WebSocket closes."""
        add, remove = self._add_source, self._remove_source
        if add is None or remove is None:
            return wire.error(wire.WireError("unsupported", "this server classifies no browser cameras"))
        refused = self._peer_refused(connection)
        if refused is not None:
            return wire.error(wire.WireError("too_many_peers", refused))
        check_offer(offer.sdp, receive_video=True)
        client = connection.client
        self._cameras += 1
        stream = f"browser-{self._cameras}"
        loop = asyncio.get_running_loop()
        added: list[str] = []

        def on_track(track: MediaStreamTrack) -> None:
            if added:  # one camera per offer
                return
            if not self.config.share_cameras:
                self.hub.private[stream] = client
            add(TrackSource(stream, track, loop))
            added.append(stream)

        def end_camera() -> None:
            self.hub.retire(stream)  # results still in the pipeline reach nobody
            if added:
                self._spawn(asyncio.to_thread(remove, stream))

        try:
            peer, sdp = await answer_offer(
                offer.sdp, None, host_addresses=list(self.config.ice_hosts), on_track=on_track
            )
        except Exception as exc:
            end_camera()
            return self._unanswerable(exc)
        if client.streams is not None:  # None already means every stream, this one included
            client.streams |= {stream}
        self._adopt(peer, connection, end_camera)
        return wire.encode("answer", stream=stream, sdp=sdp)

    @staticmethod
    def _unanswerable(exc: Exception) -> str:
        """The error for an offer that passed :func:`check_offer` yet could not be answered."""
        if isinstance(exc, OSError):
            log.warning("cannot answer a WebRTC offer: %s", exc)
            return wire.error(wire.WireError("unavailable", "the server cannot open a port for WebRTC now"))
        log.info("a WebRTC offer could not be answered: %s: %s", type(exc).__name__, exc)
        return wire.error(wire.WireError("bad_offer", "bad WebRTC offer: it describes no media this server can use"))

    def ws_dropped(self) -> int:
        """Results dropped so far for clients that read too slowly."""
        current = sum(c.dropped for c in self._hub.clients) if self._hub is not None else 0
        return self._dropped_gone + current

    # HTTP

    def _token(self, request: Request, query: str) -> bool | None:
        """Whether the request carries the token: ``None`` if it offers more than one."""
        token = self.config.token
        try:
            authorization = request.headers.get("Authorization")
        except MultipleValuesError:
            return None
        offered: list[str] = parse_qs(query, keep_blank_values=True, max_num_fields=64).get("token", [])
        if authorization and authorization[:7].lower() == "bearer ":
            offered.append(authorization[7:].strip())
        if len(offered) > 1:
            return None
        if token is None:
            return True
        return len(offered) == 1 and hmac.compare_digest(offered[0].encode(), token.encode())

    def _authorize(self, request: Request, query: str) -> Response | None:
        """``None`` if the request may go on, else the response refusing it."""
        try:
            verdict = self._token(request, query)
        except ValueError:  # parse_qs: more than max_num_fields fields
            verdict = None
        if verdict is None:
            return _text(400, "bad request: give the token once, as ?token= or Authorization: Bearer\n")
        if not verdict:
            return _text(401, "unauthorized: pass the server's token\n")
        return None

    def _host_refused(self, request: Request) -> Response | None:
        try:
            hosts = request.headers.get_all("Host")
        except ValueError:
            hosts = []
        if len(hosts) == 1 and host_allowed(hosts[0], self.config.host, self.config.allowed_hosts):
            return None
        shown = hosts[0][:100] if len(hosts) == 1 else f"{len(hosts)} Host headers"
        return _text(
            400,
            f"bad request: Host {shown!r} is not this server's address; to reach it under another name, "
            "add that name to server.allowed_hosts\n",
        )

    def _origin_allowed(self, request: Request) -> bool:
        origins = request.headers.get_all("Origin")
        if not origins:
            return True  # not a browser
        if len(origins) > 1:
            return False
        origin = _normal_origin(origins[0])
        if origin in self.config.allowed_origins:
            return True
        try:
            hosts = request.headers.get_all("Host")
            parts = urlsplit(origin)
        except ValueError:
            return False
        if len(hosts) != 1 or parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        own = _host_port(hosts[0], parts.scheme)
        return bool(own) and _host_port(parts.netloc, parts.scheme) == own

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        raw_path, _, query = request.path.partition("?")
        head = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            return _text(405, "only GET and HEAD\n", {"Allow": "GET, HEAD"})
        refused = self._host_refused(request)
        if refused is not None:
            return refused
        response: Response | None
        if raw_path == "/ws":
            if head:
                return _text(405, "the WebSocket needs GET\n", {"Allow": "GET"})
            refused = self._authorize(request, query)
            if refused is not None:
                return refused
            if not self._origin_allowed(request):
                log.warning("WebSocket from %s refused: Origin not allowed", connection.remote_address)
                return _text(403, "forbidden: this Origin is not allowed\n")
            return None  # go on with the WebSocket handshake
        if raw_path == "/healthz":
            response = _text(200, "ok\n")
        elif raw_path == "/metrics" or raw_path.startswith("/api/"):
            refused = self._authorize(request, query)
            if refused is not None:
                return refused
            if raw_path == "/metrics":
                text = render_metrics(
                    self.stats(),
                    clients=len(self._hub.clients) if self._hub else 0,
                    ws_dropped=self.ws_dropped(),
                    provider=self.provider,
                )
                response = _response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif raw_path == "/api/streams":
                body = json.dumps(self.stats(), separators=(",", ":")).encode()
                response = _response(200, body, "application/json")
            else:
                return _text(404, "not found\n")
        else:
            response = await asyncio.to_thread(self._static, raw_path)
        if head and response.body:
            response = dataclasses.replace(response, body=b"")
        return response

    def _static(self, raw_path: str) -> Response:
        """A file under web_dir, or 404: never outside it, never a directory listing."""
        not_found = _text(404, "not found\n")
        try:
            path = unquote(raw_path, errors="strict")
        except ValueError:  # percent-encoded bytes that are not UTF-8
            return not_found
        if not path.startswith("/") or path.startswith("//") or "\x00" in path or "\\" in path:
            return not_found
        relative = path.lstrip("/") or "index.html"
        parts = relative.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return not_found  # no traversal, no empty segments, no hidden files
        try:
            target = (self._web_root / relative).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return not_found
        if not target.is_relative_to(self._web_root) or not target.is_file():
            return not_found
        try:
            size = target.stat().st_size
            if size > MAX_STATIC_BYTES:
                log.warning("static file %s is over %d bytes; not served", target, MAX_STATIC_BYTES)
                return not_found
            body = target.read_bytes()
        except OSError as exc:
            log.warning("static file %s cannot be read: %s", target, exc)
            return not_found
        content_type = CONTENT_TYPES.get(target.suffix.lower(), "application/octet-stream")
        return _response(200, body, content_type)

    # WebSocket

    async def _handler(self, ws: ServerConnection) -> None:
        hub = self.hub
        connection = _Connection(hub.connect(), ws.remote_address)
        client = connection.client
        log.debug("WebSocket %s open", connection.remote)
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(wire.encode("hello", version=wire.VERSION, streams=self.stats(client)))
            sender = asyncio.create_task(self._send_results(ws, client))
            async for message in ws:
                reply = await self._answer(message, connection)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass  # the close is logged below with its code
        finally:
            hub.disconnect(client)
            self._dropped_gone += client.dropped
            await asyncio.gather(*(self._close_peer(peer) for peer in list(connection.peers)), return_exceptions=True)
            if sender is not None:
                sender.cancel()
                try:
                    await sender
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.warning("WebSocket %s: the sender failed", connection.remote, exc_info=True)
            log.debug("WebSocket %s closed (code %s, %d dropped)", connection.remote, ws.close_code, client.dropped)

    async def _send_results(self, ws: ServerConnection, client: Client) -> None:
        try:
            while True:
                await ws.send(await client.next())
        except ConnectionClosed:
            return

    async def _answer(self, message: str | bytes, connection: _Connection) -> str | None:
        """The reply to one client message (``None``: no reply); a bad message gets an ``error``."""
        try:
            return await self._dispatch(message, connection)
        except wire.WireError as exc:
            connection.complain(f"{exc.code}: {str(exc)[:120]}")
            return wire.error(exc)
        except Exception as exc:  # a bug of ours: the client gets one line, the log one traceback per connection
            connection.complain(type(exc).__name__, failure=True)
            return wire.error(
                wire.WireError("internal", f"the server could not handle this message ({type(exc).__name__})")
            )

    async def _dispatch(self, message: str | bytes, connection: _Connection) -> str | None:
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
            return await self._camera(request, connection)
        return await self._watch(request, connection)

    async def _classify(self, request: wire.Classify) -> str:
        """Answer a classify request on the classify thread, or ``busy`` when enough are waiting."""
        pool = self._classify_pool
        if self.classifier is None or pool is None:
            raise wire.WireError("unavailable", "this server has no classifier for classify requests", request.id)
        if self._classify_pending >= self.config.max_pending_classify:
            raise wire.WireError(
                "busy",
                f"{self._classify_pending} classify requests are already waiting; send this one again later",
                request.id,
            )
        self._classify_pending += 1
        try:
            records = await asyncio.get_running_loop().run_in_executor(
                pool, _classify_records, self.classifier, request, self.config.image_limits
            )
        finally:
            self._classify_pending -= 1
        return wire.encode("classified", id=request.id, records=records)
