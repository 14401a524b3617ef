"""The hub with real asyncio clients and a publisher thread."""

from __future__ import annotations

import asyncio
import threading

from streamer.server.hub import RETIRED, Hub


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


def test_a_private_stream_reaches_its_owner_only_and_nobody_once_retired() -> None:
    async def main() -> tuple[list[int], list[int], int]:
        hub = Hub(asyncio.get_running_loop(), queue_size=100)
        owner, other = hub.connect(), hub.connect()
        hub.private["browser-1"] = owner
        hub.publish("camera", stream="browser-1")
        hub.publish("street", stream="street.mp4")
        hub.retire("browser-1")
        hub.publish("late", stream="browser-1")  # a result still in the pipeline when the camera ended
        sizes = [len(owner), len(other)]
        got = [[await c.next() for _ in range(n)] for c, n in ((owner, sizes[0]), (other, sizes[1]))]
        for i in range(RETIRED + 5):  # the memory of ended streams is bounded
            hub.private[f"browser-{i + 2}"] = owner
            hub.retire(f"browser-{i + 2}")
        return sizes, [len(g) for g in got] if got == [["camera", "street"], ["street"]] else [], len(hub.private)

    sizes, checked, remembered = asyncio.run(main())
    assert sizes == [2, 1] and checked == [2, 1]
    assert remembered == RETIRED
