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
``Authorization: Bearer ...``. A non-loopback ``host`` needs one.
"""

from __future__ import annotations

import asyncio
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
from aiortc import MediaStreamTrack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers, MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from streamer.errors import ConfigError, ImageError, StreamerError
from streamer.results import FrameResult
from streamer.server import wire
from streamer.server.hub import Client, Hub
from streamer.server.webrtc import FrameTrack, answer_offer
from streamer.sources.base import Source
from streamer.sources.images import decode_image
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
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    web_dir: Path = field(default_factory=lambda: WEB_DIR)
    allowed_origins: tuple[str, ...] = ()
    queue_size: int = 64
    max_message_bytes: int = wire.MAX_MESSAGE_BYTES
    ice_hosts: tuple[str, ...] = ("127.0.0.1",)

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
        for origin in self.allowed_origins:
            if not isinstance(origin, str) or not origin.startswith(("http://", "https://")):
                raise ConfigError(
                    f"allowed_origins: {origin!r} is not an origin; write it as 'https://host:port' (scheme and host)"
                )
        object.__setattr__(self, "web_dir", Path(self.web_dir))
        object.__setattr__(self, "allowed_origins", tuple(_normal_origin(o) for o in self.allowed_origins))


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


def _classify_records(classifier: Classifier, lock: threading.Lock, request: wire.Classify) -> list[dict[str, Any]]:
    """Answer each record of ``request``, in order; runs on a worker thread."""
    answers: list[dict[str, Any]] = []
    with lock:
        for index, record in enumerate(request.records):
            if record.image is None:
                answers.append({"error": record.error or f"record {index}: no image"})
                continue
            start = time.perf_counter()
            try:
                result = classifier.process([decode_image(record.image, f"record {index}")])[0]
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


class StreamerServer:
    """Serves the web page, the API, the metrics and the WebSocket of results.

    ``classifier`` answers ``classify`` requests (``None``: they get an
    ``unavailable`` error). ``stats`` gives the pipeline's per-stream stats
    (``Pipeline.stats``). ``provider`` names the execution provider for
    ``/metrics`` (``None``: the classifier's, else ``unknown``).
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
        self._classify_lock = threading.Lock()
        self._hub: Hub | None = None
        self._server: Server | None = None
        self._port = self.config.port
        self._dropped_gone = 0  # results dropped for clients that have disconnected
        self._web_root = self.config.web_dir.resolve()
        self._tracks: dict[str, set[FrameTrack]] = {}  # per stream, the WebRTC tracks watching it
        self._tracks_lock = threading.Lock()
        self._peers: set[Any] = set()  # open RTCPeerConnections, closed on stop
        self._add_source, self._remove_source = add_source, remove_source
        self._cameras = 0

    # lifecycle

    async def start(self) -> None:
        """Bind and start serving; ``url`` then has the real port."""
        if self._server is not None:
            raise RuntimeError("this server is already started")
        self._hub = Hub(asyncio.get_running_loop(), queue_size=self.config.queue_size)
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
        """Close every connection (1001 going away) and stop listening."""
        server, self._server = self._server, None
        peers, self._peers = self._peers, set()
        await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
        if server is None:
            return
        server.close()
        await server.wait_closed()

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

    async def _watch(self, offer: wire.Offer, client: Client) -> str:
        """Answer a browser's offer to watch ``offer.stream`` with a track fed by :meth:`publish_frame`.

        When the first frame leaves, the client gets ``video_start`` with its ``pts_ms``: the first RTP
        timestamp the browser sees stands for it.
        """
        stream = offer.stream or ""
        known = {str(row.get("stream")) for row in self._stats()}
        if stream not in known:
            return wire.error(wire.WireError("unknown_stream", f"no stream {stream!r}; streams: {sorted(known)}"))
        track = FrameTrack(
            on_first=lambda pts_ms: client.offer(wire.encode("video_start", stream=stream, pts_ms=pts_ms), None)
        )
        try:
            peer, sdp = await answer_offer(offer.sdp, track, host_addresses=list(self.config.ice_hosts))
        except Exception as exc:  # aiortc raises plain ValueError/RuntimeError on a bad SDP
            track.stop()
            return wire.error(wire.WireError("bad_offer", f"cannot answer this WebRTC offer: {exc}"[:300]))
        with self._tracks_lock:
            self._tracks.setdefault(stream, set()).add(track)
        self._peers.add(peer)

        @peer.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                with self._tracks_lock:
                    self._tracks.get(stream, set()).discard(track)
                track.stop()
                self._peers.discard(peer)
                await peer.close()

        return wire.encode("answer", stream=stream, sdp=sdp)

    async def _camera(self, offer: wire.Offer, client: Client) -> str:
        """Receive the browser's camera as a new live stream; this client gets its results."""
        add, remove = self._add_source, self._remove_source
        if add is None or remove is None:
            return wire.error(wire.WireError("unsupported", "this server classifies no browser cameras"))
        self._cameras += 1
        stream = f"browser-{self._cameras}"
        loop = asyncio.get_running_loop()

        def on_track(track: MediaStreamTrack) -> None:
            add(TrackSource(stream, track, loop))

        try:
            peer, sdp = await answer_offer(
                offer.sdp, None, host_addresses=list(self.config.ice_hosts), on_track=on_track
            )
        except Exception as exc:  # aiortc raises plain ValueError/RuntimeError on a bad SDP
            return wire.error(wire.WireError("bad_offer", f"cannot answer this WebRTC offer: {exc}"[:300]))
        self._peers.add(peer)
        if client.streams is not None:  # None already means every stream, this one included
            client.streams |= {stream}

        @peer.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                self._peers.discard(peer)
                await asyncio.to_thread(remove, stream)
                await peer.close()

        return wire.encode("answer", stream=stream, sdp=sdp)

    def ws_dropped(self) -> int:
        """Results dropped so far for clients that read too slowly."""
        current = sum(c.dropped for c in self._hub.clients) if self._hub is not None else 0
        return self._dropped_gone + current

    # HTTP

    def _authorized(self, request: Request, query: str) -> bool:
        token = self.config.token
        if token is None:
            return True
        expected = token.encode()
        offered: list[str] = parse_qs(query).get("token", [])
        try:
            authorization = request.headers.get("Authorization")
        except MultipleValuesError:
            return False
        if authorization and authorization[:7].lower() == "bearer ":
            offered.append(authorization[7:].strip())
        ok = False
        for candidate in offered:
            ok |= hmac.compare_digest(candidate.encode(), expected)
        return ok

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
        response: Response | None
        if raw_path == "/ws":
            if head:
                return _text(405, "the WebSocket needs GET\n", {"Allow": "GET"})
            if not self._authorized(request, query):
                return _text(401, "unauthorized: pass the server's token\n")
            if not self._origin_allowed(request):
                log.warning("WebSocket from %s refused: Origin not allowed", connection.remote_address)
                return _text(403, "forbidden: this Origin is not allowed\n")
            return None  # go on with the WebSocket handshake
        if raw_path == "/healthz":
            response = _text(200, "ok\n")
        elif raw_path == "/metrics" or raw_path.startswith("/api/"):
            if not self._authorized(request, query):
                return _text(401, "unauthorized: pass the server's token\n")
            if raw_path == "/metrics":
                text = render_metrics(
                    self._stats(),
                    clients=len(self._hub.clients) if self._hub else 0,
                    ws_dropped=self.ws_dropped(),
                    provider=self.provider,
                )
                response = _response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
            elif raw_path == "/api/streams":
                body = json.dumps(self._stats(), separators=(",", ":")).encode()
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
        client = hub.connect()
        peer = ws.remote_address
        log.debug("WebSocket %s open", peer)
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(wire.encode("hello", version=wire.VERSION, streams=self._stats()))
            sender = asyncio.create_task(self._send_results(ws, client))
            async for message in ws:
                reply = await self._answer(message, client)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass  # the close is logged below with its code
        finally:
            hub.disconnect(client)
            self._dropped_gone += client.dropped
            if sender is not None:
                sender.cancel()
                try:
                    await sender
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.warning("WebSocket %s: the sender failed", peer, exc_info=True)
            log.debug("WebSocket %s closed (code %s, %d dropped)", peer, ws.close_code, client.dropped)

    async def _send_results(self, ws: ServerConnection, client: Client) -> None:
        try:
            while True:
                await ws.send(await client.next())
        except ConnectionClosed:
            return

    async def _answer(self, message: str | bytes, client: Client) -> str | None:
        try:
            request = wire.decode(message)
        except wire.WireError as exc:
            return wire.error(exc)
        if isinstance(request, wire.Ping):
            return wire.encode("pong")
        if isinstance(request, wire.Subscribe):
            client.streams = None if request.streams is None else frozenset(request.streams)
            return None
        if isinstance(request, wire.Classify):
            if self.classifier is None:
                return wire.error(
                    wire.WireError("unavailable", "this server has no classifier for classify requests", request.id)
                )
            records = await asyncio.to_thread(_classify_records, self.classifier, self._classify_lock, request)
            return wire.encode("classified", id=request.id, records=records)
        if request.stream is None:
            return await self._camera(request, client)
        return await self._watch(request, client)
