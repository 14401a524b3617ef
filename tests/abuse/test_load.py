"""Many clients, slow clients, churning clients and heavy classify requests: the server keeps serving everyone."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

import cv2
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.abuse.conftest import CLIP_STREAM, Server, http_get, jpeg_b64, ping_pong, recv_json
from tests.media import photo


def test_200_concurrent_clients_each_get_hello_and_results(server: Server) -> None:
    clients = 200
    done = 0

    async def main() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        all_in = asyncio.Event()

        async def one() -> tuple[dict[str, Any], dict[str, Any]]:
            nonlocal done
            async with connect(server.ws_url(), open_timeout=60, close_timeout=10) as ws:
                hello = await recv_json(ws, skip=())
                result = await recv_json(ws, timeout=60, skip=("video_start",))
                done += 1
                if done == clients:
                    all_in.set()
                await asyncio.wait_for(all_in.wait(), 90)  # all open at once, then all close
                return hello, result

        async with asyncio.timeout(150):
            return await asyncio.gather(*(one() for _ in range(clients)))

    with server.good_client().receiving("200 clients at once"):
        pairs = server.run(main())
    assert len(pairs) == clients
    for hello, result in pairs:
        assert hello["type"] == "hello" and hello["version"] == 1
        assert result["type"] == "result" and result["result"]["stream"] == CLIP_STREAM
    server.wait_back("200 clients closed")


def _small_socket(port: int) -> socket.socket:
    """A TCP connection to the server with a tiny receive buffer, so what it sends backs up at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


def test_clients_that_never_read_cost_bounded_memory_and_starve_nobody(server: Server) -> None:
    """Ten clients stop reading (and keep sending pings) while results flow; then they go away."""

    async def slow(ws: ClientConnection, until: float) -> int:
        sent = 0
        while time.monotonic() < until and sent < 20_000:
            try:
                await asyncio.wait_for(ws.send('{"type":"ping"}'), 0.5)
            except TimeoutError:  # the server stopped reading: our side is full too
                await asyncio.sleep(0.2)
                continue
            except ConnectionClosed:
                break
            sent += 1
            if sent % 100 == 0:
                await asyncio.sleep(0)
        return sent

    async def main() -> list[int]:
        async with asyncio.timeout(90):
            sockets = [_small_socket(server.port) for _ in range(10)]
            slow_clients = [
                await connect(server.ws_url(), sock=sock, max_queue=1, close_timeout=2, open_timeout=30)
                for sock in sockets
            ]
            sent = await asyncio.gather(*(slow(ws, time.monotonic() + 5) for ws in slow_clients))
            server.probe.assert_peak_under()
            async with connect(server.ws_url(), close_timeout=5) as other:  # a newcomer is served as usual
                assert (await recv_json(other))["type"] == "hello"
                await ping_pong(other)
            for ws in slow_clients[1::2]:
                ws.transport.abort()  # gone without a word
            # the others close politely: the closing handshake can only time out, as nobody reads
            await asyncio.gather(*(ws.close() for ws in slow_clients[::2]))
            return sent

    with server.good_client().receiving("ten clients that never read"):
        sent = server.run(main())
    assert all(count > 0 for count in sent), sent
    server.probe.assert_peak_under()
    server.wait_back("the clients that never read closed")


def test_rapid_connect_and_disconnect(server: Server) -> None:
    """500 connections (bounded by time too) opened and dropped in every way a client can."""
    cycles, workers = 500, 10
    count = 0

    async def cycle(i: int) -> None:
        kind = i % 5
        if kind == 0:  # a polite client: hello, then close
            async with connect(server.ws_url(), close_timeout=5) as ws:
                await recv_json(ws, skip=())
        elif kind == 1:  # closes without reading anything
            ws = await connect(server.ws_url(), close_timeout=5)
            await ws.close()
        elif kind == 2:  # drops the TCP connection right after the handshake
            ws = await connect(server.ws_url(), close_timeout=5)
            ws.transport.abort()
        elif kind == 3:  # half a handshake, then gone
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        else:  # a request, then gone before the response
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET /ws?x={i} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode())
            writer.transport.abort()

    async def main() -> None:
        nonlocal count
        deadline = time.monotonic() + 90

        async def worker(first: int) -> None:
            nonlocal count
            for i in range(first, cycles, workers):
                if time.monotonic() > deadline:
                    return
                async with asyncio.timeout(30):
                    await cycle(i)
                count += 1

        await asyncio.gather(*(worker(w) for w in range(workers)))

    with server.good_client().receiving("500 connections opened and dropped"):
        server.run(main())
    assert count >= 100, f"only {count} cycles in 90 s"
    server.wait_back(f"{count} connections opened and dropped")


# --- heavy classify requests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_images() -> list[str]:
    """Three real photographs at 3000x2000 (6 megapixels each), as base64 JPEG."""
    images = [
        cv2.resize(photo(name), (3000, 2000), interpolation=cv2.INTER_CUBIC)
        for name in ("coffee", "chelsea", "astronaut")
    ]
    assert all(image.shape == (2000, 3000, 3) for image in images)
    return [jpeg_b64(image) for image in images]


def test_classify_load_never_blocks_the_page_the_api_or_the_results(server: Server, large_images: list[str]) -> None:
    """Seven clients send 3 large photos per request for a while; meanwhile every HTTP request is answered."""
    clients, seconds = 7, 6.0
    stop = threading.Event()
    http_failures: list[str] = []
    http_ok = 0

    def poll_http() -> None:
        nonlocal http_ok
        end = time.monotonic() + 120  # a hard bound, should stop never be set
        while not stop.is_set() and time.monotonic() < end:
            for path in ("/index.html", "/healthz", "/api/streams"):
                try:
                    reply = http_get(server.port, path, timeout=5)
                except OSError as exc:  # a timeout is an OSError too
                    http_failures.append(f"GET {path}: {type(exc).__name__}: {exc}")
                    continue
                if reply.status != 200:
                    http_failures.append(f"GET {path}: {reply.status}")
                else:
                    http_ok += 1
            stop.wait(0.1)

    async def classifying(index: int, until: float) -> list[tuple[str, dict[str, Any]]]:
        """Keep two requests in flight until ``until``, then collect the replies still owed."""
        answered: list[tuple[str, dict[str, Any]]] = []
        pending: set[str] = set()
        records = [{"image": image} for image in large_images]
        async with connect(server.ws_url(), close_timeout=5, max_size=None) as ws:
            assert (await recv_json(ws))["type"] == "hello"
            await ws.send('{"type":"subscribe","streams":[]}')
            sent = 0
            while pending or time.monotonic() < until:
                while len(pending) < 2 and time.monotonic() < until:
                    request_id = f"load-{index}-{sent}"
                    sent += 1
                    pending.add(request_id)
                    await ws.send(json.dumps({"type": "classify", "id": request_id, "records": records}))
                reply = await recv_json(ws, timeout=120)
                request_id = str(reply.get("id"))
                assert request_id in pending, f"a reply to no request in flight: {str(reply)[:300]}"
                pending.discard(request_id)
                answered.append((request_id, reply))
            await ping_pong(ws, timeout=120)  # nothing else was owed: exactly one reply per request
        return answered

    async def main() -> list[list[tuple[str, dict[str, Any]]]]:
        async with asyncio.timeout(240):
            poller = asyncio.create_task(asyncio.to_thread(poll_http))
            try:
                until = time.monotonic() + seconds
                return await asyncio.gather(*(classifying(i, until) for i in range(clients)))
            finally:
                stop.set()
                await poller

    with server.good_client().receiving("seven clients classifying large photos"):
        answers = server.run(main())
    assert not http_failures, f"{len(http_failures)} HTTP requests failed under classify load: {http_failures[:6]}"
    assert http_ok >= 3
    classified = 0
    for replies in answers:
        assert replies, "every client sent at least one request"
        for request_id, reply in replies:
            assert reply.get("id") == request_id, f"{request_id} answered with {str(reply)[:300]}"
            if reply["type"] == "error":
                assert reply["code"] == "busy", reply
                continue
            assert reply["type"] == "classified", reply
            assert len(reply["records"]) == 3
            for record in reply["records"]:
                assert "error" not in record and record["best_label"]["name"], record
            classified += 1
    assert classified >= 1, "at least one request was classified"
    first = next(r for replies in answers for _, r in replies if r["type"] == "classified")
    assert first["records"][0]["best_label"]["name"] in {"espresso", "cup", "coffee mug"}, first["records"][0]
    server.probe.assert_peak_under()
    server.wait_back("the classifying clients closed")
