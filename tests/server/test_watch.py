"""WebRTC signalled on /ws: a real aiortc client watching a real stream of the runtime, or sending its camera."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect

from streamer.config import StreamSpec
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from streamer.server.webrtc import FrameTrack, gather_host_candidates, sdp_candidate_addresses
from tests.media import clip_frame, make_clip, photo
from tests.server.conftest import added_stream


@pytest.fixture
def cam(runtime: Runtime, tmp_path: Path) -> Iterator[Runtime]:
    """The session's runtime with stream "cam": a 320x240 clip at 15 fps, looping in real time."""
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15)
    with added_stream(runtime, StreamSpec(id="cam", source=str(clip), loop=True)):
        yield runtime


async def _quiet(ws: ClientConnection) -> None:
    """Subscribe ``ws`` to no stream's results, and read past those already on their way (up to a pong)."""
    await ws.send('{"type": "subscribe", "streams": []}')
    await ws.send('{"type": "ping"}')
    while json.loads(await ws.recv())["type"] != "pong":
        pass


async def _next(ws: ClientConnection, kind: str, *, not_of: str | None = None) -> dict[str, Any]:
    """The next message of type ``kind``, past results of other streams (late ones of an earlier test's stream);
    a result of stream ``not_of`` fails."""
    while True:
        message: dict[str, Any] = json.loads(await ws.recv())
        if message["type"] == kind:
            return message
        assert message["type"] == "result" and message["result"]["stream"] != not_of, message


async def _offer(client: RTCPeerConnection) -> str:
    client.addTransceiver("video", direction="recvonly")
    await gather_host_candidates(client, ["127.0.0.1"])
    await client.setLocalDescription(await client.createOffer())
    return str(client.localDescription.sdp)


def test_a_browser_style_client_watches_a_stream_and_gets_its_frames(cam: Runtime) -> None:
    """The stream's decoded frames reach the client through the runtime's frame subscription."""

    async def main() -> tuple[int, tuple[int, int], str]:
        async with StreamerServer(ServerConfig(port=0), cam) as server:
            client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
            client.on("track", lambda t: received.done() or received.set_result(t))
            try:
                async with asyncio.timeout(30), connect(server.url.replace("http", "ws") + "ws") as ws:
                    assert json.loads(await ws.recv())["type"] == "hello"
                    await _quiet(ws)
                    await ws.send(json.dumps({"type": "offer", "stream": "cam", "sdp": await _offer(client)}))
                    answer = json.loads(await ws.recv())
                    assert answer["type"] == "answer" and answer["stream"] == "cam", answer
                    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                    track = await received
                    frames = [await track.recv() for _ in range(10)]
                    start = json.loads(await ws.recv())
                    assert start["type"] == "video_start" and start["stream"] == "cam", start
                    frame_ms = 1000 / 15
                    assert min(start["pts_ms"] % frame_ms, frame_ms - start["pts_ms"] % frame_ms) < 1e-3, start
            finally:
                await client.close()
        return len(frames), (frames[-1].width, frames[-1].height), answer["sdp"]

    count, size, sdp = asyncio.run(main())
    assert count == 10 and size == (320, 240)
    assert set(sdp_candidate_addresses(sdp)) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("offer", "code", "text"),
    [
        ({"stream": "garage", "sdp": "v=0"}, "unknown_stream", "no stream 'garage'; streams: ['cam']"),
        ({"stream": "cam", "sdp": "not sdp at all"}, "bad_offer", "it does not begin with the line 'v=0'"),
        ({"stream": None, "sdp": "v=0"}, "bad_offer", "bad WebRTC offer"),
    ],
)
def test_bad_offers_get_an_error_and_the_connection_lives(
    cam: Runtime, offer: dict[str, object], code: str, text: str
) -> None:
    async def main() -> tuple[dict[str, object], dict[str, object]]:
        async with (
            StreamerServer(ServerConfig(port=0), cam) as server,
            asyncio.timeout(20),
            connect(server.url.replace("http", "ws") + "ws") as ws,
        ):
            await ws.recv()
            await _quiet(ws)
            await ws.send(json.dumps({"type": "offer", **offer}))
            reply = json.loads(await ws.recv())
            await ws.send('{"type": "ping"}')
            return reply, json.loads(await ws.recv())

    reply, pong = asyncio.run(main())
    assert reply["type"] == "error" and reply["code"] == code and text in str(reply["message"])
    assert pong == {"type": "pong"}


def test_the_browser_camera_is_classified_and_results_come_back(runtime: Runtime) -> None:
    """A client sends its camera (clip frames of a coffee cup) over WebRTC; the runtime's results come back on /ws."""

    async def main() -> list[dict[str, object]]:
        server = StreamerServer(ServerConfig(port=0), runtime)
        camera = FrameTrack()
        stop = threading.Event()

        def film() -> None:
            picture, start = photo("coffee"), time.monotonic()
            for i in range(600):
                if stop.wait(max(0.0, start + i / 15 - time.monotonic())):
                    return
                camera.push(clip_frame(picture, i % 60, 60, (320, 240)), i * 1000 / 15)

        filming = threading.Thread(target=film, daemon=True)
        filming.start()
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        results: list[dict[str, object]] = []
        try:
            async with server, asyncio.timeout(60):
                ws_url = server.url.replace("http", "ws") + "ws"
                async with connect(ws_url) as ws, connect(ws_url) as other:
                    await ws.recv()  # hello
                    await other.recv()
                    client.addTrack(camera)
                    await gather_host_candidates(client, ["127.0.0.1"])
                    await client.setLocalDescription(await client.createOffer())
                    await ws.send(json.dumps({"type": "offer", "stream": None, "sdp": client.localDescription.sdp}))
                    answer = await _next(ws, "answer")
                    assert answer["type"] == "answer" and answer["stream"] == "browser-1", answer
                    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                    while len(results) < 5:
                        message = json.loads(await ws.recv())
                        if message["type"] == "result" and message["result"]["stream"] == "browser-1":
                            results.append(message["result"])
                    # the camera is private to the connection that shares it
                    assert [row["stream"] for row in runtime.stats()] == ["browser-1"]
                    assert server.stats() == [] and server.stats(server.hub.private["browser-1"]) != []
                    async with connect(ws_url) as late:
                        assert json.loads(await late.recv())["streams"] == []
                    await other.send(json.dumps({"type": "offer", "stream": "browser-1", "sdp": "v=0"}))
                    refused = await _next(other, "error", not_of="browser-1")
                    assert refused["code"] == "unknown_stream", refused
                    await other.send('{"type": "ping"}')
                    assert await _next(other, "pong", not_of="browser-1") == {"type": "pong"}
                # its stream ends with the WebSocket that shared it
                async with asyncio.timeout(10):
                    while runtime.stats() or server.peer_count:
                        await asyncio.sleep(0.05)
        finally:
            stop.set()
            filming.join(5)
            await client.close()
        return results

    results = asyncio.run(main())
    assert all(r["stream"] == "browser-1" for r in results)
    names = {c["name"] for r in results for c in r["classes"][:2]}  # type: ignore[index, union-attr]
    assert names & {"espresso", "cup", "coffee mug"}, names


def test_peers_that_never_connect_are_capped_and_closed(cam: Runtime) -> None:
    """Offers whose ICE never completes: at most max_peers_per_client at once; each closed after the ICE timeout,
    and all of a connection's peers closed with it."""

    async def offer_sdp() -> str:
        client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sdp = await _offer(client)
        await client.close()  # nobody will ever answer the server's checks
        return "\r\n".join(line for line in sdp.split("\r\n") if line != "a=end-of-candidates")

    async def main() -> None:
        config = ServerConfig(port=0, ice_timeout_s=1.0, max_peers_per_client=2, max_peers=3)
        async with StreamerServer(config, cam) as server, asyncio.timeout(30):
            url = server.url.replace("http", "ws") + "ws"
            offer = json.dumps({"type": "offer", "stream": "cam", "sdp": await offer_sdp()})
            async with connect(url) as first, connect(url) as second:
                for ws in (first, second):
                    await ws.recv()
                    await _quiet(ws)  # answers only, no results
                codes = []
                for ws in (first, first, first, second, second):
                    await ws.send(offer)
                    reply = json.loads(await ws.recv())
                    codes.append(reply.get("code", reply["type"]))
                assert codes == ["answer", "answer", "too_many_peers", "answer", "too_many_peers"]
                assert server.peer_count == 3
                while server.peer_count:  # the ICE timeout closes them
                    await asyncio.sleep(0.05)
        patient = ServerConfig(port=0, ice_timeout_s=3600)
        async with StreamerServer(patient, cam) as server, asyncio.timeout(30):
            async with connect(server.url.replace("http", "ws") + "ws") as ws:
                await ws.recv()
                await _quiet(ws)
                for _ in range(2):
                    await ws.send(offer)
                    assert json.loads(await ws.recv())["type"] == "answer"
                assert server.peer_count == 2
            while server.peer_count:  # closed with their WebSocket, long before the ICE timeout
                await asyncio.sleep(0.05)

    asyncio.run(main())
