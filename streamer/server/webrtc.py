"""Video to and from the browser over WebRTC (aiortc), answering offers made by the page.

``FrameTrack`` is a video track fed from any thread with ``push(image_rgb, pts_ms)``; it keeps only the
newest frame, so a slow peer drops frames instead of queueing them.  Its frames carry the source's
``pts_ms`` on a 90 kHz clock (``pts = round(pts_ms * 90)``, ``time_base = 1/90000``), which is also the
RTP video clock: the RTP timestamps the browser sees are these values plus the sender's random 32-bit
origin, so differences between frames (e.g. ``rtpTimestamp`` in ``requestVideoFrameCallback``) map
one-to-one to differences in ``pts_ms``.

``answer_offer`` answers an SDP offer.  It never uses STUN/TURN servers (aiortc's default configuration
names a public STUN server; we always pass an empty list) and gathers host candidates on exactly the
given addresses.  aioice has no public option for that: ``aioice.Connection.gather_candidates`` takes its
addresses from the module function ``aioice.ice.get_host_addresses``, which enumerates every interface
with ``ifaddr`` and always skips ``127.0.0.1``.  Instead of patching that module function globally,
``gather_host_candidates`` gathers each ICE connection of one peer connection itself, before aiortc
does, through aioice's ``Connection.get_component_candidates(component, addresses)``; aiortc's own
gathering then finds the work done and only marks it complete.  This touches three private attributes
of ``aioice.Connection`` (``_components``, ``_local_candidates``, ``_local_candidates_start/_end``) and
``RTCIceGatherer._connection``; a missing attribute raises ``RuntimeError`` rather than silently
gathering on every interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import threading
from collections.abc import Callable
from typing import Any

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

__all__ = ["PTS_CLOCK_HZ", "FrameTrack", "answer_offer", "gather_host_candidates", "sdp_candidate_addresses"]

log = logging.getLogger(__name__)

PTS_CLOCK_HZ = 90_000
_TIME_BASE = fractions.Fraction(1, PTS_CLOCK_HZ)


class FrameTrack(MediaStreamTrack):  # type: ignore[misc]
    """A video track showing the newest frame pushed to it, from any thread.

    ``on_first(pts_ms)`` is called (on the event loop) with the ``pts_ms`` of
    the first frame sent: the receiver's first RTP timestamp stands for it,
    which lets a page turn RTP timestamps back into ``pts_ms``.
    """

    kind = "video"

    def __init__(self, on_first: Callable[[float], None] | None = None) -> None:
        super().__init__()
        self._on_first = on_first
        self._lock = threading.Lock()
        self._image: np.ndarray | None = None
        self._pts_ms = 0.0
        self._seq = 0  # number of frames pushed
        self._sent_seq = 0  # ``_seq`` of the last frame recv() returned
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def push(self, image_rgb: np.ndarray, pts_ms: float) -> None:
        """Offer a frame (H x W x 3 uint8 RGB); replaces any frame not yet sent.  Thread-safe."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 RGB image, got shape {image_rgb.shape}")
        with self._lock:
            self._image = image_rgb
            self._pts_ms = float(pts_ms)
            self._seq += 1
            loop = self._loop
        self._wake(loop)

    def _wake(self, loop: asyncio.AbstractEventLoop | None) -> None:
        event = self._event
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(event.set)

    async def recv(self) -> av.VideoFrame:
        """The next frame newer than the last one returned, waiting for it if needed."""
        if self._event is None:
            self._event = asyncio.Event()
            with self._lock:
                self._loop = asyncio.get_running_loop()
        event = self._event
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            event.clear()
            with self._lock:
                if self._seq != self._sent_seq and self._image is not None:
                    image, pts_ms, self._sent_seq = self._image, self._pts_ms, self._seq
                    break
            await event.wait()
        if self._on_first is not None:
            on_first, self._on_first = self._on_first, None
            on_first(pts_ms)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = round(pts_ms * PTS_CLOCK_HZ / 1000)
        frame.time_base = _TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        with self._lock:
            loop = self._loop
        self._wake(loop)


def _ice_transports(pc: RTCPeerConnection) -> list[Any]:
    transports: list[Any] = []
    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        if ice not in transports:
            transports.append(ice)
    if pc.sctp is not None and pc.sctp.transport.transport not in transports:
        transports.append(pc.sctp.transport.transport)
    return transports


async def gather_host_candidates(pc: RTCPeerConnection, host_addresses: list[str]) -> None:
    """Gather the ICE host candidates of ``pc``'s current transports on exactly ``host_addresses``.

    Call after the transports exist (``addTransceiver``/``addTrack`` for an offer, ``setRemoteDescription``
    for an answer) and before ``setLocalDescription``, which would otherwise gather on every interface
    but loopback.  Transports already gathered are left alone.  Per connection: no global state is changed.
    """
    if not host_addresses:
        raise ValueError("host_addresses must name at least one local address")
    for ice in _ice_transports(pc):
        gatherer = ice.iceGatherer
        if gatherer.state != "new":
            continue
        try:
            conn = gatherer._connection
            if conn._local_candidates_start:
                continue
            components = sorted(conn._components)
        except AttributeError as exc:  # an aiortc/aioice version with other internals
            raise RuntimeError(f"cannot restrict ICE host addresses with this aiortc/aioice: {exc}") from exc
        conn._local_candidates_start = True
        gathered = await asyncio.gather(
            *(conn.get_component_candidates(component=c, addresses=list(host_addresses)) for c in components)
        )
        for candidates in gathered:
            conn._local_candidates += candidates
        conn._local_candidates_end = True
        if not conn._local_candidates:
            raise OSError(f"could not bind an ICE host candidate on any of {host_addresses}")


def sdp_candidate_addresses(sdp: str) -> list[str]:
    """The connection addresses of the ``a=candidate`` lines of an SDP."""
    addresses = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            if len(fields) >= 5:
                addresses.append(fields[4])
    return addresses


async def answer_offer(
    sdp: str,
    track: FrameTrack | None,
    *,
    host_addresses: list[str],
    on_track: Callable[[MediaStreamTrack], None] | None = None,
) -> tuple[RTCPeerConnection, str]:
    """Answer the SDP offer ``sdp``: send ``track`` (if given), hand incoming video tracks to ``on_track``.

    Returns the peer connection (the caller closes it) and the answer SDP, with every ICE candidate
    gathered (no trickle) on ``host_addresses`` only, and no STUN/TURN servers.
    """
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if on_track is not None:
            callback = on_track

            @pc.on("track")  # type: ignore[untyped-decorator]
            def _on_track(remote: MediaStreamTrack) -> None:
                if remote.kind == "video":
                    callback(remote)

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        if track is not None:
            pc.addTrack(track)
        await gather_host_candidates(pc, host_addresses)
        await pc.setLocalDescription(await pc.createAnswer())  # gathers (already done) and waits for it
        if pc.iceGatheringState != "complete":
            raise RuntimeError(f"ICE gathering did not complete: {pc.iceGatheringState}")
        answer = pc.localDescription
        return pc, answer.sdp
    except BaseException:
        await pc.close()
        raise
