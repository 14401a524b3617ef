"""Watching a server-side stream over WebRTC, signalled on /ws: a real aiortc client, a real server."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from websockets.asyncio.client import connect

from streamer.server.app import ServerConfig, StreamerServer
from streamer.server.webrtc import gather_host_candidates, sdp_candidate_addresses
from tests.media import clip_frame, photo


def _stats() -> list[dict[str, object]]:
    return [{"stream": "cam", "state": "live"}]


async def _offer(client: RTCPeerConnection) -> str:
    client.addTransceiver("video", direction="recvonly")
    await gather_host_candidates(client, ["127.0.0.1"])
    await client.setLocalDescription(await client.createOffer())
    return str(client.localDescription.sdp)


def test_a_browser_style_client_watches_a_stream_and_gets_its_frames() -> None:
    async def main() -> tuple[int, tuple[int, int], str]:
        stop = threading.Event()
        async with StreamerServer(ServerConfig(port=0), stats=_stats) as server:

            def feed() -> None:  # what the pipeline does with every decoded frame of "cam"
                picture, start = photo(), time.monotonic()
                for i in range(600):
                    if stop.wait(max(0.0, start + i / 15 - time.monotonic())):
                        return
                    server.publish_frame("cam", clip_frame(picture, i % 60, 60, (320, 240)), i * 1000 / 15)

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            received: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
            client.on("track", lambda t: received.done() or received.set_result(t))
            try:
                async with asyncio.timeout(20), connect(server.url.replace("http", "ws") + "ws") as ws:
                    assert json.loads(await ws.recv())["type"] == "hello"
                    await ws.send(json.dumps({"type": "offer", "stream": "cam", "sdp": await _offer(client)}))
                    answer = json.loads(await ws.recv())
                    assert answer["type"] == "answer" and answer["stream"] == "cam", answer
                    await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                    track = await received
                    frames = [await track.recv() for _ in range(10)]
            finally:
                stop.set()
                feeder.join(5)
                await client.close()
        return len(frames), (frames[-1].width, frames[-1].height), answer["sdp"]

    count, size, sdp = asyncio.run(main())
    assert count == 10 and size == (320, 240)
    assert set(sdp_candidate_addresses(sdp)) == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("offer", "code", "text"),
    [
        ({"stream": "garage", "sdp": "v=0"}, "unknown_stream", "no stream 'garage'; streams: ['cam']"),
        ({"stream": "cam", "sdp": "not sdp at all"}, "bad_offer", "cannot answer this WebRTC offer"),
        ({"stream": None, "sdp": "v=0"}, "unsupported", "browser's camera is not available yet"),
    ],
)
def test_bad_offers_get_an_error_and_the_connection_lives(offer: dict[str, object], code: str, text: str) -> None:
    async def main() -> tuple[dict[str, object], dict[str, object]]:
        async with (
            StreamerServer(ServerConfig(port=0), stats=_stats) as server,
            asyncio.timeout(20),
            connect(server.url.replace("http", "ws") + "ws") as ws,
        ):
            await ws.recv()
            await ws.send(json.dumps({"type": "offer", **offer}))
            reply = json.loads(await ws.recv())
            await ws.send('{"type": "ping"}')
            return reply, json.loads(await ws.recv())

    reply, pong = asyncio.run(main())
    assert reply["type"] == "error" and reply["code"] == code and text in str(reply["message"])
    assert pong == {"type": "pong"}
