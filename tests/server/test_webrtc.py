"""WebRTC with real aiortc peers on 127.0.0.1: frames pushed from a thread reach the other side."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from streamer.server.webrtc import FrameTrack, answer_offer, gather_host_candidates, sdp_candidate_addresses
from tests.media import clip_frame, photo

LOOPBACK = ["127.0.0.1"]
FPS = 15
SIZE = (320, 240)


@contextmanager
def pushing(track: FrameTrack, frames: int = 300) -> Iterator[None]:
    """A thread pushing clip frames to ``track`` at ``FPS``, frame ``i`` at ``pts_ms = i * 1000 / FPS``."""
    picture = photo()
    stop = threading.Event()

    def run() -> None:
        start = time.monotonic()
        for i in range(frames):
            if stop.is_set():
                return
            track.push(clip_frame(picture, i % 60, 60, SIZE), i * 1000 / FPS)
            stop.wait(max(0.0, start + (i + 1) / FPS - time.monotonic()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


async def collect(track: MediaStreamTrack, count: int) -> list[av.VideoFrame]:
    return [await track.recv() for _ in range(count)]


def check_pts(frames: list[av.VideoFrame]) -> None:
    """Received pts follow the sender's ``round(pts_ms * 90)``: whole source frames of 6000 ticks apart.

    aiortc's receiver counts pts from the first RTP timestamp, and its FFmpeg VP8 decoder may round by a tick.
    """
    tick = round(1000 / FPS * 90)
    for a, b in itertools.pairwise(frames):
        delta = b.pts - a.pts
        assert delta > 0, (a.pts, b.pts)
        assert abs(delta - tick * round(delta / tick)) <= 1, delta


def test_frame_track_keeps_only_the_newest_frame() -> None:
    async def main() -> tuple[av.VideoFrame, bool, av.VideoFrame]:
        track = FrameTrack()
        image = clip_frame(photo(), 0, 2, SIZE)
        for i in range(3):
            track.push(image, 100.0 + i)
        first = await asyncio.wait_for(track.recv(), 2)
        try:
            await asyncio.wait_for(track.recv(), 0.2)  # nothing newer than the frame just sent
            waited = False
        except TimeoutError:
            waited = True
        threading.Timer(0.05, track.push, (image, 500.5)).start()
        second = await asyncio.wait_for(track.recv(), 2)
        track.stop()
        return first, waited, second

    first, waited, second = asyncio.run(main())
    assert (first.width, first.height, first.format.name) == (320, 240, "rgb24")
    assert first.pts == 102 * 90 and first.time_base == pytest.approx(1 / 90000)
    assert waited
    assert second.pts == round(500.5 * 90)


def test_host_addresses_required() -> None:
    async def main() -> None:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            with pytest.raises(ValueError):
                await gather_host_candidates(pc, [])
        finally:
            await pc.close()

    asyncio.run(main())


def test_server_sends_pushed_frames_to_client() -> None:
    async def main() -> tuple[list[av.VideoFrame], str, str]:
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        server: RTCPeerConnection | None = None
        track = FrameTrack()
        received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        client.on("track", lambda t: received.done() or received.set_result(t))
        try:
            client.addTransceiver("video", direction="recvonly")
            await gather_host_candidates(client, LOOPBACK)
            await client.setLocalDescription(await client.createOffer())
            offer = client.localDescription.sdp
            with pushing(track):
                async with asyncio.timeout(10):
                    server, answer = await answer_offer(offer, track, host_addresses=LOOPBACK)
                    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                    frames = await collect(await received, 12)
            return frames, offer, answer
        finally:
            await client.close()
            if server is not None:
                await server.close()

    frames, offer, answer = asyncio.run(main())
    assert sdp_candidate_addresses(offer) and set(sdp_candidate_addresses(offer)) == {"127.0.0.1"}
    assert sdp_candidate_addresses(answer) and set(sdp_candidate_addresses(answer)) == {"127.0.0.1"}
    assert "a=sendonly" in answer
    assert all((f.width, f.height) == SIZE for f in frames)
    check_pts(frames)
    # A real picture came through (not a blank frame): the clip's texture survives VP8.
    assert float(np.std(frames[-1].to_ndarray(format="rgb24"))) > 20


def test_server_receives_client_video() -> None:
    async def main() -> tuple[list[av.VideoFrame], str]:
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        server: RTCPeerConnection | None = None
        track = FrameTrack()
        incoming: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        try:
            client.addTransceiver(track, direction="sendonly")
            await gather_host_candidates(client, LOOPBACK)
            await client.setLocalDescription(await client.createOffer())
            with pushing(track):
                async with asyncio.timeout(10):
                    server, answer = await answer_offer(
                        client.localDescription.sdp,
                        None,
                        host_addresses=LOOPBACK,
                        on_track=lambda t: incoming.done() or incoming.set_result(t),
                    )
                    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
                    frames = await collect(await incoming, 12)
            return frames, answer
        finally:
            await client.close()
            if server is not None:
                await server.close()

    frames, answer = asyncio.run(main())
    assert set(sdp_candidate_addresses(answer)) == {"127.0.0.1"}
    assert "a=recvonly" in answer
    assert all((f.width, f.height) == SIZE for f in frames)
    check_pts(frames)
