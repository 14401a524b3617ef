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
                    start = json.loads(await ws.recv())
                    assert start["type"] == "video_start" and start["stream"] == "cam", start
                    assert start["pts_ms"] % (1000 / 15) < 1e-6 or abs(start["pts_ms"] % (1000 / 15) - 1000 / 15) < 1e-6
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
        ({"stream": None, "sdp": "v=0"}, "unsupported", "this server classifies no browser cameras"),
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


def test_the_browser_camera_is_classified_and_results_come_back() -> None:
    """A client sends its camera (clip frames of a coffee cup) over WebRTC; the pipeline's results come back on /ws."""
    from streamer.pipeline.pipeline import Pipeline
    from streamer.server.webrtc import FrameTrack
    from streamer.tasks import Classifier, ClassifierOptions

    async def main() -> list[dict[str, object]]:
        classifier = Classifier.create_from_options(ClassifierOptions(device="cpu"))
        server: StreamerServer

        def deliver(result: object, frame: object) -> None:
            server.publish_result(result)  # type: ignore[arg-type]

        pipeline = Pipeline(classifier, on_result=deliver, max_frame_age_ms=1000)
        server = StreamerServer(
            ServerConfig(port=0),
            classifier,
            stats=pipeline.stats,
            add_source=pipeline.add,
            remove_source=pipeline.remove,
        )
        pipeline.start()
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
            async with server, asyncio.timeout(30), connect(server.url.replace("http", "ws") + "ws") as ws:
                await ws.recv()  # hello
                client.addTrack(camera)
                await gather_host_candidates(client, ["127.0.0.1"])
                await client.setLocalDescription(await client.createOffer())
                await ws.send(json.dumps({"type": "offer", "stream": None, "sdp": client.localDescription.sdp}))
                answer = json.loads(await ws.recv())
                assert answer["type"] == "answer" and answer["stream"] == "browser-1", answer
                await client.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                while len(results) < 5:
                    message = json.loads(await ws.recv())
                    if message["type"] == "result":
                        results.append(message["result"])
        finally:
            stop.set()
            filming.join(5)
            await client.close()
            await asyncio.to_thread(pipeline.stop)
        return results

    results = asyncio.run(main())
    assert all(r["stream"] == "browser-1" for r in results)
    names = {c["name"] for r in results for c in r["classes"][:2]}  # type: ignore[index, union-attr]
    assert names & {"espresso", "cup", "coffee mug"}, names
