"""Offers checked before aiortc sees them: real aiortc offers, broken one line at a time."""

from __future__ import annotations

import asyncio
import random

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from streamer.server.sdp import check_offer
from streamer.server.webrtc import FrameTrack, answer_offer, gather_host_candidates
from streamer.server.wire import WireError


async def _offer(direction: str) -> str:
    client = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        client.addTransceiver("video", direction=direction)
        await gather_host_candidates(client, ["127.0.0.1"])
        await client.setLocalDescription(await client.createOffer())
        return str(client.localDescription.sdp)
    finally:
        await client.close()


@pytest.fixture(scope="module")
def watch_offer() -> str:
    return asyncio.run(_offer("recvonly"))


def _without(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


def _replace(sdp: str, prefix: str, line: str) -> str:
    return "\r\n".join(line if old.startswith(prefix) else old for old in sdp.split("\r\n"))


def test_real_offers_pass(watch_offer: str) -> None:
    check_offer(watch_offer, send_video=True)
    check_offer(asyncio.run(_offer("sendonly")), receive_video=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: "garbage", "does not begin with the line 'v=0'"),
        (lambda s: "v=0\r\n", "no media section"),
        (lambda s: _without(s, "a=fingerprint"), "has no a=fingerprint"),
        (lambda s: _without(s, "a=ice-pwd"), "has no a=ice-ufrag and a=ice-pwd"),
        (lambda s: _without(s, "a=setup"), "has no a=setup"),
        (lambda s: _without(s, "a=mid"), "has no a=mid"),
        (lambda s: _without(s, "a=rtcp-mux"), "has no a=rtcp-mux"),
        (lambda s: _without(s, "a=recvonly"), "has no direction"),
        (lambda s: _without(s, "a=candidate"), "a=end-of-candidates but no a=candidate"),
        (lambda s: s.replace("m=video ", "m=video xx ", 1), "is not 'm=<media> <port> <protocol> <formats>'"),
        (lambda s: s.replace("UDP/TLS/RTP/SAVPF", "x", 1), "is not 'm=<media> <port> <protocol> <formats>'"),
        (lambda s: s.replace("UDP/TLS/RTP/SAVPF", "RTP/AVP", 1), "WebRTC uses UDP/TLS/RTP/SAVPF"),
        (lambda s: _replace(s, "a=candidate", "a=candidate:1 1 udp 99 127.0.0.1 port typ host"), "not a number"),
        (lambda s: _replace(s, "a=candidate", "a=candidate:1 1 udp 99 evil.example 9 typ host"), "mDNS"),
        (lambda s: _replace(s, "a=setup", "a=setup:sideways"), "a=setup is not one of actpass"),
        (lambda s: _replace(s, "a=fingerprint", "a=fingerprint:sha-256"), "a=fingerprint is not '<hash>"),
        (lambda s: _replace(s, "a=rtcp:", "a=rtcp:9 "), "a=rtcp is not '<port>"),
        (lambda s: _replace(s, "a=fmtp:98", "a=fmtp:98 apt=x"), "apt='x', not a number"),
        (lambda s: _replace(s, "a=group:BUNDLE", "a=group:BUNDLE 7"), "names '7', which no a=mid has"),
        (lambda s: s.replace("a=recvonly", "a=sendonly", 1), "no video section can receive"),
        (lambda s: s + "x" * 70_000, "over the 65536"),
        (lambda s: s.replace("a=mid:0", "a=mid:0\r\nnot a line", 1), "is not '<letter>=<value>'"),
    ],
)
def test_broken_offers_say_what_is_wrong(watch_offer: str, change: object, message: str) -> None:
    broken = change(watch_offer)  # type: ignore[operator]
    with pytest.raises(WireError, match="bad WebRTC offer: ") as info:
        check_offer(broken, send_video=True)
    assert info.value.code == "bad_offer"
    assert message in str(info.value)


def test_a_camera_offer_must_send_video(watch_offer: str) -> None:
    with pytest.raises(WireError, match="no video section sends video"):
        check_offer(watch_offer, receive_video=True)


def test_whatever_passes_the_check_aiortc_answers(watch_offer: str) -> None:
    """Offers mangled at random (lines dropped, cut, duplicated, tokens replaced): each one the check lets
    through is answered by aiortc, so no aiortc internals ever reach a client."""
    lines = watch_offer.split("\r\n")
    rng = random.Random(20261201)
    tokens = ["x", "", "-1", "999999", "a:b", "IN", "99", "typ"]

    def mangle() -> str:
        mangled = list(lines)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(mangled))
            action = rng.randrange(4)
            if action == 0:
                del mangled[i]
            elif action == 1:
                words = mangled[i].split(" ")
                words[rng.randrange(len(words))] = rng.choice(tokens)
                mangled[i] = " ".join(words)
            elif action == 2:
                mangled[i] = mangled[i][: rng.randrange(len(mangled[i]) + 1)]
            else:
                mangled.insert(i, rng.choice(mangled))
        return "\r\n".join(mangled)

    async def main() -> tuple[int, int]:
        passed = refused = 0
        for _ in range(150):
            sdp = mangle()
            try:
                check_offer(sdp, send_video=True)
            except WireError:
                refused += 1
                continue
            passed += 1
            track = FrameTrack()
            peer, answer = await answer_offer(sdp, track, host_addresses=["127.0.0.1"])
            track.stop()
            await peer.close()
            assert answer.startswith("v=0")
        return passed, refused

    passed, refused = asyncio.run(main())
    assert passed > 20 and refused > 20, (passed, refused)
