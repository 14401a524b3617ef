"""WebRTC offers on /ws: garbage SDP gets a clear ``bad_offer``; a browser's camera stays private to its owner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from websockets.asyncio.client import ClientConnection, connect

from tests.abuse.conftest import CLIP_STREAM, Server, assert_error, no_browser_streams, ping_pong, recv_json
from tests.abuse.peers import (
    bad_candidate,
    bad_media_port,
    camera_offer,
    closing,
    make_offer,
    new_peer,
    watch_offer,
    without_fingerprints,
)

#: aiortc's own words, which mean nothing to a client (and show an internal failure).
INTERNALS = ("None is not in list", "invalid literal for int()", "Traceback", "object has no attribute")

GARBAGE: dict[str, tuple[Callable[[str], str], str]] = {
    # name: (what to make of a real offer, a word the error must contain; "" for any)
    "garbage": (lambda sdp: "garbage", ""),
    "v=0 only": (lambda sdp: "v=0\r\n", ""),
    "m= port xx": (bad_media_port, ""),
    "no fingerprint": (without_fingerprints, "fingerprint"),
    "malformed candidate": (bad_candidate, ""),
}


class Reader:
    """Every message a connection receives, read on a task; ``next_of(types)`` waits for the next such one."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self._seen = 0
        self._arrived = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            self.messages.append(json.loads(text))
            self._arrived.set()

    async def next_of(self, *types: str, timeout: float = 30.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for i in range(self._seen, len(self.messages)):
                    if self.messages[i].get("type") in types:
                        self._seen = i + 1
                        return self.messages[i]
                self._seen = len(self.messages)
                self._arrived.clear()
                await self._arrived.wait()

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def test_a_browser_camera_is_seen_by_its_owner_only(server: Server) -> None:
    """A shares a camera over real WebRTC (ICE on 127.0.0.1) and gets its results; B, there all along, never sees it.

    Runs first in this module: a garbage offer the server wrongly accepts would leave a camera behind.
    """

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        camera = new_peer()
        async with asyncio.timeout(120), closing(camera), connect(server.ws_url(), close_timeout=5) as b:
            b_messages = Reader(b)
            seen["b_hello"] = await b_messages.next_of("hello")
            a = await connect(server.ws_url(), close_timeout=5)
            try:
                assert (await recv_json(a))["type"] == "hello"
                await a.send(json.dumps({"type": "offer", "stream": None, "sdp": await camera_offer(camera)}))
                answer = await recv_json(a)
                assert answer["type"] == "answer", answer
                stream = seen["stream"] = answer["stream"]
                assert str(stream).startswith("browser-"), answer
                await camera.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
                own: list[dict[str, Any]] = []
                while len(own) < 3:  # A's results for its own camera
                    message = await recv_json(a, timeout=60, skip=())
                    if message["type"] == "result" and message["result"]["stream"] == stream:
                        own.append(message["result"])
                seen["own"] = own
                seen["udp"] = server.probe.sample().udp  # the camera's peer, seen by the probe
                async with connect(server.ws_url(), close_timeout=5) as c:  # C comes after the camera is live
                    seen["c_hello"] = await recv_json(c)
                seen["api"] = await asyncio.to_thread(server.probe.streams)
                watch = new_peer()
                async with closing(watch):
                    offer = await watch_offer(watch)
                    await b.send(json.dumps({"type": "offer", "stream": stream, "sdp": offer}))
                    seen["b_watch"] = await b_messages.next_of("answer", "error")
            finally:
                await a.close()  # the camera's peer is still open on this side: the server must end it
            try:  # judged last: what B saw comes first
                await asyncio.to_thread(server.wait_back, "the camera's owner left", streams_ok=no_browser_streams)
            except AssertionError as exc:
                seen["not_ended"] = str(exc)
            await b.send('{"type":"ping"}')
            await b_messages.next_of("pong")
            await b_messages.stop()
            seen["b_all"] = b_messages.messages
        return seen

    with server.good_client().receiving("a browser camera shared"):
        seen = server.run(main())
    stream = seen["stream"]
    assert all(r["classes"] for r in seen["own"])
    assert seen["udp"] > server.baseline.udp, "the probe saw no UDP socket of the camera's peer"
    for name in ("b_hello", "c_hello"):
        listed = [row.get("stream") for row in seen[name]["streams"]]
        assert CLIP_STREAM in listed, listed
        assert stream not in listed, f"{name}: another client's hello lists the camera {stream}: {listed}"
    # B's messages but the error answering its own watch offer (which may name what B asked for)
    leaked = [m for m in seen["b_all"] if m.get("type") != "error" and stream in json.dumps(m)]
    assert not leaked, f"B got {len(leaked)} messages about A's camera {stream}, e.g. {str(leaked[0])[:300]}"
    assert stream not in [row.get("stream") for row in seen["api"]], f"/api/streams lists {stream}: {seen['api']}"
    assert_error(seen["b_watch"], "unknown_stream")
    assert "not_ended" not in seen, f"the camera did not end with its owner's connection: {seen.get('not_ended')}"


@pytest.mark.parametrize("kind", ["camera", "watch"])
@pytest.mark.parametrize("name", list(GARBAGE))
def test_garbage_sdp_gets_bad_offer_saying_what_is_wrong(server: Server, name: str, kind: str) -> None:
    mangle, word = GARBAGE[name]

    async def main() -> Any:
        sdp = mangle(await make_offer(kind))
        async with asyncio.timeout(60), connect(server.ws_url(), close_timeout=5) as ws:
            assert (await recv_json(ws))["type"] == "hello"
            await ws.send('{"type":"subscribe","streams":[]}')
            stream = None if kind == "camera" else CLIP_STREAM
            await ws.send(json.dumps({"type": "offer", "stream": stream, "sdp": sdp}))
            reply = await recv_json(ws)
            await ping_pong(ws)  # the connection lives on
            return reply

    with server.good_client().receiving(f"a {kind} offer with {name}"):
        reply = server.run(main())
    assert_error(reply, "bad_offer")
    message = reply["message"]
    assert len(message) > len("cannot answer this WebRTC offer: "), f"the error does not say what is wrong: {message}"
    assert not any(text in message for text in INTERNALS), f"the error shows aiortc's internals: {message}"
    assert word.lower() in message.lower(), f"the error should mention {word!r}: {message}"
    assert no_browser_streams(server.probe.streams())
    server.wait_back(f"a {kind} offer with {name}", streams_ok=no_browser_streams)
    assert "Task exception was never retrieved" not in server.child.stderr()
