"""WebRTC offers that never connect: their peers end with the connection or the ICE timeout, and are capped.

Each offer is a real aiortc offer (camera or watch, host candidates on
127.0.0.1) without ``a=end-of-candidates``, whose client peer is closed at
once: the server's ICE would wait forever for candidates that never come.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.abuse.conftest import (
    CLIP_STREAM,
    Server,
    assert_error,
    no_browser_streams,
    ping_pong,
    recv_json,
    running_server,
)
from tests.abuse.peers import incomplete, make_offer

ICE_TIMEOUT_S = 3


@pytest.fixture(scope="module")
def server(clip: Path, cache_dir: Path, workdir: Path) -> Iterator[Server]:
    env = {"STREAMER_SERVER_ICE_TIMEOUT_S": str(ICE_TIMEOUT_S)}
    with running_server(str(clip), cache_dir=cache_dir, cwd=workdir, env=env) as running:
        yield running


async def dangling_offers(count: int) -> list[dict[str, Any]]:
    """``count`` offer messages, cameras and watchers in turn, that can never connect."""
    messages = []
    for i in range(count):
        kind = "camera" if i % 2 == 0 else "watch"
        sdp = incomplete(await make_offer(kind))
        messages.append({"type": "offer", "stream": None if kind == "camera" else CLIP_STREAM, "sdp": sdp})
    return messages


async def open_ws(server: Server) -> ClientConnection:
    ws = await connect(server.ws_url(), close_timeout=5)
    assert (await recv_json(ws))["type"] == "hello"
    await ws.send('{"type":"subscribe","streams":[]}')
    return ws


async def offer(ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(message))
    reply: dict[str, Any] = await recv_json(ws, skip=("result", "video_start"))
    return reply


def assert_answered(reply: dict[str, Any]) -> None:
    assert reply["type"] == "answer" and "sdp" in reply, str(reply)[:300]


def test_peers_that_never_connect_end_with_their_connection(server: Server) -> None:
    """20 offers over 5 connections, 4 each; after each connection closes its peers are gone."""

    async def connection(messages: list[dict[str, Any]]) -> None:
        async with asyncio.timeout(60):
            ws = await open_ws(server)
            try:
                for message in messages:
                    assert_answered(await offer(ws, message))
                held = server.probe.sample().udp
                assert held > server.baseline.udp, f"the probe sees no UDP socket of the {len(messages)} peers"
            finally:
                await ws.close()

    with server.good_client().receiving("20 offers that never connect"):
        for round_ in range(5):
            server.run(connection(server.run(dangling_offers(4))))
            server.wait_back(f"connection {round_ + 1} with 4 dangling peers closed", streams_ok=no_browser_streams)


def test_peers_that_never_connect_end_after_the_ice_timeout_on_an_open_connection(server: Server) -> None:
    async def main() -> None:
        messages = await dangling_offers(5)
        async with asyncio.timeout(90):
            ws = await open_ws(server)
            try:
                for message in messages[:4]:
                    assert_answered(await offer(ws, message))
                assert server.probe.sample().udp > server.baseline.udp, "the probe sees the peers' UDP sockets"
                what = f"the ICE timeout ({ICE_TIMEOUT_S} s) with the connection open"
                await asyncio.to_thread(server.wait_back, what, streams_ok=no_browser_streams)
                await ping_pong(ws)  # the connection itself lives on
                assert_answered(await offer(ws, messages[4]))  # its timed-out peers no longer count
            finally:
                await ws.close()

    with server.good_client().receiving("dangling peers on an open connection"):
        server.run(main())
    server.wait_back("the connection closed", streams_ok=no_browser_streams)


def test_open_peers_are_capped_per_connection_and_in_all(clip: Path, cache_dir: Path, workdir: Path) -> None:
    """4 open peers per connection (the default), 6 in all (STREAMER_SERVER_MAX_PEERS=6); closing frees them.

    The ICE timeout is long here, so only closing the connections can end the peers within the wait.
    """
    env = {"STREAMER_SERVER_ICE_TIMEOUT_S": "120", "STREAMER_SERVER_MAX_PEERS": "6"}
    with running_server(str(clip), cache_dir=cache_dir, cwd=workdir, env=env) as capped:

        async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            messages = await dangling_offers(9)
            async with asyncio.timeout(90):
                first, second = await open_ws(capped), await open_ws(capped)
                try:
                    for message in messages[:4]:
                        assert_answered(await offer(first, message))
                    per_client = await offer(first, messages[4])
                    for message in messages[5:7]:
                        assert_answered(await offer(second, message))
                    in_all = await offer(second, messages[7])
                    await ping_pong(first)
                    await ping_pong(second)
                finally:
                    await first.close()
                    await second.close()
                await asyncio.to_thread(capped.wait_back, "both connections closed", streams_ok=no_browser_streams)
                third = await open_ws(capped)
                try:
                    again = await offer(third, messages[8])
                finally:
                    await third.close()
            return per_client, in_all, again

        with capped.good_client().receiving("capped offers"):
            per_client, in_all, again = capped.run(main())
        assert_error(per_client, "too_many_peers")
        assert_error(in_all, "too_many_peers")
        assert_answered(again)
        capped.wait_back("the last connection closed", streams_ok=no_browser_streams)
