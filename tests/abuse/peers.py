"""WebRTC client parts for the abuse suite: aiortc peers on 127.0.0.1, as a browser would make them.

Call order::

    pc = new_peer()
    sdp = await camera_offer(pc)       # or watch_offer(pc): a complete offer, host candidates on 127.0.0.1 only
    sdp = incomplete(sdp)              # the same without "a=end-of-candidates": ICE waits for more, forever
    ...
    await pc.close()
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import av
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack

from streamer.server.webrtc import gather_host_candidates
from tests.media import clip_frame, photo

LOOPBACK = ["127.0.0.1"]


class CameraTrack(VideoStreamTrack):
    """A camera filming a coffee cup: clip frames of a real photograph (numpy RGB), paced by aiortc."""

    def __init__(self, size: tuple[int, int] = (320, 240)) -> None:
        super().__init__()
        self._picture = photo("coffee")
        self._size = size
        self._index = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = clip_frame(self._picture, self._index % 60, 60, self._size)
        self._index += 1
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def new_peer() -> RTCPeerConnection:
    """A peer connection that never asks a STUN or TURN server."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _offer(pc: RTCPeerConnection) -> str:
    await gather_host_candidates(pc, LOOPBACK)  # never any address but loopback
    await pc.setLocalDescription(await pc.createOffer())
    return str(pc.localDescription.sdp)


async def camera_offer(pc: RTCPeerConnection) -> str:
    """An offer sending a camera (one sendonly video track), as the page's "Use my camera" makes."""
    pc.addTransceiver(CameraTrack(), direction="sendonly")
    return await _offer(pc)


async def watch_offer(pc: RTCPeerConnection) -> str:
    """An offer to receive one video track, as the page makes to watch a stream."""
    pc.addTransceiver("video", direction="recvonly")
    return await _offer(pc)


def incomplete(sdp: str) -> str:
    """``sdp`` without its ``a=end-of-candidates`` lines: the answerer's ICE waits for candidates that never come."""
    lines = [line for line in sdp.splitlines() if line.strip() != "a=end-of-candidates"]
    assert len(lines) < len(sdp.splitlines()), "aiortc's offer had no end-of-candidates to strip"
    return "\r\n".join(lines) + "\r\n"


def without_fingerprints(sdp: str) -> str:
    lines = [line for line in sdp.splitlines() if not line.startswith("a=fingerprint")]
    assert len(lines) < len(sdp.splitlines())
    return "\r\n".join(lines) + "\r\n"


def bad_media_port(sdp: str) -> str:
    changed, count = re.subn(r"^(m=\w+ )\d+", r"\1xx", sdp, flags=re.MULTILINE)
    assert count
    return changed


def bad_candidate(sdp: str) -> str:
    changed, count = re.subn(
        r"^a=candidate:.*$", "a=candidate:1 1 udp notanumber 127.0.0.1 xx typ host", sdp, count=1, flags=re.MULTILINE
    )
    assert count
    return changed


async def make_offer(kind: str) -> str:
    """A complete offer (``camera`` or ``watch``) from a peer that is closed again at once."""
    pc = new_peer()
    try:
        return await (camera_offer(pc) if kind == "camera" else watch_offer(pc))
    finally:
        await pc.close()


@asynccontextmanager
async def closing(*peers: RTCPeerConnection) -> AsyncIterator[None]:
    """Close ``peers`` on the way out, whatever happens."""
    try:
        yield
    finally:
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
