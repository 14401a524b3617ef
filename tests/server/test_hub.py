"""The hub with real asyncio clients and a publisher thread."""

from __future__ import annotations

import asyncio
import threading

from streamer.server.hub import Hub


def test_every_client_gets_every_message_in_order() -> None:
    async def main() -> list[list[str]]:
        hub = Hub(asyncio.get_running_loop(), queue_size=100)
        clients = [hub.connect() for _ in range(3)]
        publisher = threading.Thread(target=lambda: [hub.publish(f"m{i}") for i in range(50)])
        publisher.start()
        received = [[await asyncio.wait_for(c.next(), 5) for _ in range(50)] for c in clients]
        publisher.join()
        return received

    received = asyncio.run(main())
    assert all(r == [f"m{i}" for i in range(50)] for r in received)


def test_a_client_that_never_reads_loses_old_messages_only() -> None:
    async def main() -> tuple[int, int, list[str], list[str]]:
        hub = Hub(asyncio.get_running_loop(), queue_size=8)
        stuck, reader = hub.connect(), hub.connect()
        got: list[str] = []
        for i in range(1000):
            hub.publish(f"m{i}")
            got.append(await reader.next())
        tail = [await stuck.next() for _ in range(8)]
        return len(stuck), stuck.dropped, got, tail

    left, dropped, got, tail = asyncio.run(main())
    assert got == [f"m{i}" for i in range(1000)], "the other client is unaffected"
    assert dropped == 992 and left == 0
    assert tail == [f"m{i}" for i in range(992, 1000)], "the slow client keeps the newest"


def test_stream_subscriptions_and_broadcasts() -> None:
    async def main() -> list[str]:
        hub = Hub(asyncio.get_running_loop())
        client = hub.connect()
        client.streams = frozenset({"cam1"})
        hub.publish("from cam2", stream="cam2")
        hub.publish("from cam1", stream="cam1")
        hub.publish("to all")
        hub.disconnect(client)
        hub.publish("after leaving")
        return [await client.next() for _ in range(len(client))]

    assert asyncio.run(main()) == ["from cam1", "to all"]
