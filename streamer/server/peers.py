"""WebRTC for /ws: a browser watching a stream, and a browser sharing its camera as a stream.

Offers come in as ``offer`` messages on a WebSocket (:class:`Connection`)
and are answered by aiortc with ``iceServers=[]`` (no STUN, no TURN: ICE
candidates on ``ice_hosts`` only). What one client may cost is bounded:
each connection has at most ``max_peers_per_client`` peer connections and
the server ``max_peers``; a peer that has not connected within
``ice_timeout_s`` is closed, and every peer of a WebSocket is closed with
it. A browser's camera becomes stream ``browser-N`` of the runtime, private
to the connection that shares it (unless ``share_cameras``); it ends with
its peer, and the hub then retires its id so late results reach nobody.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection

from streamer.errors import StreamerError
from streamer.server import wire
from streamer.server.hub import Client, Hub
from streamer.server.sdp import check_offer
from streamer.server.webrtc import FrameTrack, answer_offer
from streamer.sources.webrtc import TrackSource

if TYPE_CHECKING:
    from streamer.cluster.front import ClusterRuntime
    from streamer.runtime import Runtime

__all__ = ["Connection", "Peers"]

log = logging.getLogger(__name__)

#: Streams shared by browsers are named this, then a number.
CAMERA_PREFIX = "browser-"


@dataclass(eq=False)
class Connection:
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


@dataclass(frozen=True)
class PeerLimits:
    """Where ICE listens and how many peers may be open, for how long before they connect."""

    ice_hosts: tuple[str, ...]
    ice_timeout_s: float
    max_peers: int
    max_peers_per_client: int
    share_cameras: bool


class Peers:
    """Every open WebRTC peer connection of the server, the tracks watching each stream, and the cameras.

    ``visible(client)`` lists the streams ``client`` may see (``Runtime.stats`` less others' cameras).
    Created on the server's event loop, after its ``hub``.
    """

    def __init__(
        self,
        limits: PeerLimits,
        runtime: Runtime | ClusterRuntime,
        hub: Hub,
        visible: Callable[[Client | None], list[dict[str, Any]]],
    ) -> None:
        self.limits = limits
        self.runtime = runtime
        self.hub = hub
        self.visible = visible
        self._tracks: dict[str, set[FrameTrack]] = {}  # per stream, the WebRTC tracks watching it
        self._tracks_lock = threading.Lock()
        self._peers: dict[RTCPeerConnection, list[Callable[[], None]]] = {}  # every open peer: what its close undoes
        self._tasks: set[asyncio.Task[None]] = set()  # ICE timeouts and camera removals in flight
        self._cameras = 0

    def __len__(self) -> int:
        return len(self._peers)

    def watching(self, stream: str) -> bool:
        """Whether a browser watches ``stream`` now; any thread."""
        with self._tracks_lock:
            return bool(self._tracks.get(stream))

    def publish_frame(self, stream: str, image: Callable[[], np.ndarray], pts_ms: float) -> None:
        """Hand a decoded frame to every browser watching ``stream``; any thread, never blocks. ``image``
        makes the RGB array, called only if someone watches."""
        with self._tracks_lock:
            tracks = list(self._tracks.get(stream, ()))
        if tracks:
            rgb = image()
            for track in tracks:
                track.push(rgb, pts_ms)

    async def close(self) -> None:
        """Close every peer and end what is in flight (the server is stopping)."""
        await asyncio.gather(*(self.close_peer(peer) for peer in list(self._peers)), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close_connection(self, connection: Connection) -> None:
        """Close every peer of ``connection`` (its WebSocket has closed)."""
        await asyncio.gather(*(self.close_peer(peer) for peer in list(connection.peers)), return_exceptions=True)

    async def close_peer(self, peer: RTCPeerConnection) -> None:
        """Forget ``peer``, run its cleanup and close it; a second call does nothing."""
        for close in self._peers.pop(peer, []):
            try:
                close()
            except Exception:
                log.warning("closing a WebRTC peer's stream failed", exc_info=True)
        await peer.close()

    def _refused(self, connection: Connection) -> str | None:
        """Why another peer connection is refused now, or ``None``."""
        if len(connection.peers) >= self.limits.max_peers_per_client:
            return (
                f"this connection already has {len(connection.peers)} WebRTC peer connections, the most one "
                "client may have; close one first"
            )
        if len(self._peers) >= self.limits.max_peers:
            return f"the server already has {len(self._peers)} WebRTC peer connections, its limit; try again later"
        return None

    def _adopt(self, peer: RTCPeerConnection, connection: Connection, on_close: Callable[[], None]) -> None:
        """Own ``peer``: closed with its WebSocket, when its connection fails, or if ICE has not
        connected within ``ice_timeout_s``; ``on_close`` then runs once."""
        connection.peers.add(peer)
        closers: list[Callable[[], None]] = [lambda: connection.peers.discard(peer), on_close]
        self._peers[peer] = closers

        @peer.on("connectionstatechange")  # type: ignore[untyped-decorator]
        async def _state() -> None:
            if peer.connectionState in ("failed", "closed"):
                await self.close_peer(peer)

        async def expire() -> None:
            await asyncio.sleep(self.limits.ice_timeout_s)
            if peer.connectionState != "connected":
                timeout = self.limits.ice_timeout_s
                log.info("WebRTC peer of %s did not connect within %.1f s; closed", connection.remote, timeout)
                await self.close_peer(peer)

        timer = self._spawn(expire())

        def stop_timer() -> None:
            if timer is not asyncio.current_task():  # not from inside the timer itself
                timer.cancel()

        closers.append(stop_timer)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task kept until it ends (cancelled by :meth:`close`)."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def watch(self, offer: wire.Offer, connection: Connection) -> str:
        """Answer a browser's offer to watch ``offer.stream`` with a track fed by :meth:`publish_frame`;
        :class:`~streamer.server.wire.WireError` if it cannot be.

        When the first frame leaves, the client gets ``video_start`` with its ``pts_ms``: the first RTP
        timestamp the browser sees stands for it.
        """
        client = connection.client
        stream = offer.stream or ""
        known = {str(row.get("stream")) for row in self.visible(client)}
        if stream not in known:
            raise wire.WireError("unknown_stream", f"no stream {stream!r}; streams: {sorted(known)}")
        refused = self._refused(connection)
        if refused is not None:
            raise wire.WireError("too_many_peers", refused)
        check_offer(offer.sdp, send_video=True)
        track = FrameTrack(
            on_first=lambda pts_ms: client.offer(wire.encode("video_start", stream=stream, pts_ms=pts_ms), None)
        )
        try:
            peer, sdp = await answer_offer(offer.sdp, track, host_addresses=list(self.limits.ice_hosts))
        except Exception as exc:
            track.stop()
            raise _unanswerable(exc) from None
        with self._tracks_lock:
            self._tracks.setdefault(stream, set()).add(track)

        def unwatch() -> None:
            with self._tracks_lock:
                watching = self._tracks.get(stream)
                if watching is not None:
                    watching.discard(track)
                    if not watching:
                        del self._tracks[stream]
            track.stop()

        self._adopt(peer, connection, unwatch)
        return wire.encode("answer", stream=stream, sdp=sdp)

    def _camera_id(self) -> str:
        """A stream id for a new camera that no stream of the runtime has."""
        taken = {str(row.get("stream")) for row in self.runtime.stats()}
        while True:
            self._cameras += 1
            stream = f"{CAMERA_PREFIX}{self._cameras}"
            if stream not in taken:
                return stream

    async def camera(self, offer: wire.Offer, connection: Connection) -> str:
        """Receive the browser's camera as a new live stream, seen only by this client (unless
        ``share_cameras``); it ends when the peer or the WebSocket closes. A
        :class:`~streamer.server.wire.WireError` if the offer cannot be answered."""
        refused = self._refused(connection)
        if refused is not None:
            raise wire.WireError("too_many_peers", refused)
        check_offer(offer.sdp, receive_video=True)
        client = connection.client
        stream = self._camera_id()
        loop = asyncio.get_running_loop()
        added: list[str] = []
        runtime, hub = self.runtime, self.hub

        def on_track(track: MediaStreamTrack) -> None:
            if added:  # one camera per offer
                return
            if not self.limits.share_cameras:
                hub.private[stream] = client
            try:
                runtime.add_source(TrackSource(stream, track, loop))
            except StreamerError as exc:
                log.warning("the browser camera %s could not be added: %s", stream, exc)
                return
            added.append(stream)

        def end_camera() -> None:
            hub.retire(stream)  # results still in the pipeline reach nobody
            if added:
                self._spawn(_remove_stream(runtime, stream))

        try:
            peer, sdp = await answer_offer(
                offer.sdp, None, host_addresses=list(self.limits.ice_hosts), on_track=on_track
            )
        except Exception as exc:
            end_camera()
            raise _unanswerable(exc) from None
        if client.streams is not None:  # None already means every stream, this one included
            client.streams |= {stream}
        self._adopt(peer, connection, end_camera)
        return wire.encode("answer", stream=stream, sdp=sdp)


async def _remove_stream(runtime: Runtime | ClusterRuntime, stream: str) -> None:
    """Remove a camera's stream from the runtime, off the event loop (stopping a source joins its thread)."""
    try:
        await asyncio.to_thread(runtime.remove_stream, stream)
    except Exception:
        log.warning("removing the browser camera %s failed", stream, exc_info=True)


def _unanswerable(exc: Exception) -> wire.WireError:
    """The error for an offer that passed :func:`check_offer` yet could not be answered."""
    if isinstance(exc, OSError):
        log.warning("cannot answer a WebRTC offer: %s", exc)
        return wire.WireError("unavailable", "the server cannot open a port for WebRTC now")
    log.info("a WebRTC offer could not be answered: %s: %s", type(exc).__name__, exc)
    return wire.WireError("bad_offer", "bad WebRTC offer: it describes no media this server can use")
