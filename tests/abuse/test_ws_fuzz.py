"""Malformed /ws messages: each gets one ``error`` and the connection lives; only an oversize one closes it (1009)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.abuse.conftest import Server, assert_error, ping_pong, recv_json
from tests.fuzz import random_json

SEED = 20240611
Payload = str | bytes

#: Values of every JSON kind, for fields that want another one.
ANY_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 1e308, 10**30, "", "x", [], {}, [1], {"a": 1}, [[]]]


def _non(*kinds: type) -> list[Any]:
    """The values of ``ANY_VALUES`` that are none of ``kinds`` (a bool is no int here)."""
    return [v for v in ANY_VALUES if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds)]


def wrong_types() -> list[tuple[Payload, str]]:
    """Every field of every message type with a value of the wrong type; (message, the reply type it must get).

    A record of a classify request with a bad image is answered inside ``classified`` (the other records still
    count), so those cases expect ``classified``; every other case expects ``error``.
    """
    cases: list[tuple[Payload, str]] = []

    def add(message: dict[str, Any], reply: str = "error") -> None:
        cases.append((json.dumps(message), reply))

    for value in _non(str):  # the type itself
        add({"type": value})
    add({"no_type": "ping"})
    for text in ["1", "null", "[]", '"ping"', "true", "[{}]"]:  # JSON, but not an object
        cases.append((text, "error"))
    for kind in ["pong", "hello", "PING", " ping", "result", "classified", "", "é", "x" * 1000, "offer\x00"]:
        add({"type": kind})
    for value in [*_non(list, type(None)), [1], [None], [[]], [{}], ["ok", 2]]:
        add({"type": "subscribe", "streams": value})
    classify: dict[str, Any] = {"type": "classify", "id": "c1", "records": [{"image": "AAAA"}]}
    for value in _non(str):
        add({**classify, "id": value})
    add({k: v for k, v in classify.items() if k != "id"})
    for value in [*_non(list), [], [{"image": "AAAA"}] * 11]:
        add({**classify, "records": value})
    add({k: v for k, v in classify.items() if k != "records"})
    for value in [*_non(int), 0, -1, 101, 10**30]:
        add({**classify, "top_k": value})
    for value in _non(dict):  # a record that is no object
        add({**classify, "records": [value]}, "classified")
    for value in _non(str):  # an image that is no text
        add({**classify, "records": [{"image": value}]}, "classified")
    for text in ["not base64!", "QUJD", "", "data:image/png;base64,@@@@"]:  # text that is no image
        add({**classify, "records": [{"image": text}]}, "classified")
    offer: dict[str, Any] = {"type": "offer", "stream": "nowhere", "sdp": "v=0"}
    for value in _non(str, type(None)):
        add({**offer, "stream": value})
    for value in _non(str):
        add({**offer, "sdp": value})
    add({k: v for k, v in offer.items() if k != "sdp"})
    return cases


def deep_nesting() -> list[tuple[Payload, str]]:
    depth = 100_000
    return [
        ("[" * depth, "error"),
        ("{" * depth, "error"),
        ('{"a":' * depth, "error"),
        ("[" * depth + "]" * depth, "error"),
        ('{"type":"subscribe","streams":' + "[" * depth + "]" * depth + "}", "error"),
        ('{"type":"classify","id":"d","records":[' + "[" * depth + "]" * depth + "]}", "error"),
        ('{"type":' + '{"a":' * depth + "1" + "}" * depth + "}", "error"),
    ]


def random_binary(rng: random.Random, count: int) -> list[tuple[Payload, str]]:
    return [(rng.randbytes(rng.choice([0, 1, 7, 100, 1000, 4096])), "error") for _ in range(count)]


def random_text(rng: random.Random, count: int) -> list[tuple[Payload, str]]:
    alphabet = '{}[]":,.-+eE0123456789 \\/truefalsnul\t\n' + "abcxyzé€😀\u2028\x7f"
    cases: list[tuple[Payload, str]] = []
    for _ in range(count):
        size = rng.choice([0, 1, 2, 5, 20, 100, 1000])
        if rng.random() < 0.5:
            text = "".join(rng.choice(alphabet) for _ in range(size))
        else:  # any code point but surrogates
            text = "".join(
                chr(rng.choice([rng.randrange(0xD800), rng.randrange(0xE000, 0x110000)])) for _ in range(size)
            )
        cases.append((text, "error"))  # never a valid message: no valid message is made of these at random
    return cases


def random_objects(rng: random.Random, count: int) -> list[tuple[Payload, str]]:
    """JSON objects with random keys and values whose ``type`` is never a known one."""
    cases: list[tuple[Payload, str]] = []
    for _ in range(count):
        message = {f"k{rng.randrange(50)}": random_json(rng, 1) for _ in range(rng.randrange(6))}
        for key in ("id", "records", "streams", "stream", "sdp", "top_k"):
            if rng.random() < 0.2:
                message[key] = random_json(rng, 2)
        if rng.random() < 0.7:
            message["type"] = rng.choice([None, 1, "", "Ping", "subscribe ", "offer2", random_json(rng, 3), "x" * 50])
        cases.append((json.dumps(message), "error"))
    return cases


def _check(reply: Any, expected: str, payload: Payload) -> None:
    shown = repr(payload[:120])
    if expected == "error":
        assert isinstance(reply, dict) and reply.get("type") == "error", f"{shown} got {str(reply)[:300]}"
        assert_error(reply)
    else:
        assert isinstance(reply, dict) and reply.get("type") == "classified", f"{shown} got {str(reply)[:300]}"
        assert reply["id"] == "c1" and "error" in reply["records"][0], reply


async def _exchange(server: Server, cases: list[tuple[Payload, str]]) -> None:
    """Send each case on one connection, one reply each, in order; a ping at the end gets a pong."""
    async with asyncio.timeout(180), connect(server.ws_url(), close_timeout=5) as ws:
        assert (await recv_json(ws))["type"] == "hello"
        await ws.send('{"type":"subscribe","streams":[]}')  # no results: only replies come back
        for payload, expected in cases:
            await ws.send(payload)
            _check(await recv_json(ws), expected, payload)
        await ping_pong(ws)


def test_malformed_messages_each_get_one_error_and_the_connection_lives(server: Server) -> None:
    rng = random.Random(SEED)
    groups = {
        "wrong field types": wrong_types(),
        "deep nesting": deep_nesting(),
        "random binary frames": random_binary(rng, 220),
        "random text": random_text(rng, 330),
        "random objects": random_objects(rng, 330),
    }
    assert 950 <= sum(len(cases) for cases in groups.values()) <= 1100
    good = server.good_client()
    for name, cases in groups.items():
        with good.receiving(name):
            server.run(_exchange(server, cases))
    server.wait_back("the fuzzing connections closed")


BIG_NUMBER = '{"type":"classify","id":"x","top_k":' + "9" * 5000 + ',"records":[]}'


def test_a_5000_digit_number_is_bad_json_and_logged_at_most_once(server: Server) -> None:
    async def main() -> list[Any]:
        replies = []
        async with asyncio.timeout(60), connect(server.ws_url(), close_timeout=5) as ws:
            assert (await recv_json(ws))["type"] == "hello"
            await ws.send('{"type":"subscribe","streams":[]}')
            for _ in range(50):
                await ws.send(BIG_NUMBER)
                replies.append(await recv_json(ws))
            await ping_pong(ws)
        await asyncio.sleep(1)  # a summary logged when the connection ends has been written by now
        return replies

    offset = server.child.stderr_size()
    with server.good_client().receiving("50 messages with a 5,000-digit number"):
        replies = server.run(main())
    for reply in replies:
        assert_error(reply, "bad_json")
    logged = server.child.stderr_since(offset)
    assert "Traceback" not in logged, logged[-3000:]
    words = ("digit", "bad_json", "not JSON", "4300", replies[0]["message"][:40])
    about = [line for line in logged.splitlines() if any(w in line for w in words)]
    assert len(about) <= 1, f"{len(about)} log lines about one connection's bad messages:\n" + "\n".join(about[:5])
    assert len(logged) < 2000, f"stderr grew by {len(logged)} characters for 50 bad messages:\n{logged[:2000]}"


def test_a_message_over_16_mib_closes_the_connection_with_1009(server: Server) -> None:
    async def main() -> tuple[int | None, Any]:
        async with asyncio.timeout(60):
            ws = await connect(server.ws_url(), close_timeout=5)
            try:
                assert (await recv_json(ws))["type"] == "hello"
                await ws.send('{"type":"subscribe","streams":[]}')
                try:
                    await ws.send('{"type":"ping","pad":"' + "x" * (16 * 1024 * 1024) + '"}')
                    while True:
                        await ws.recv()
                except ConnectionClosed:
                    pass
                await ws.wait_closed()
                code = ws.close_code
            finally:
                if not ws.transport.is_closing():
                    ws.transport.abort()
            async with connect(server.ws_url(), close_timeout=5) as other:  # the server itself is fine
                hello = await recv_json(other)
                await ping_pong(other)
            return code, hello

    with server.good_client().receiving("a 16 MiB message"):
        code, hello = server.run(main())
    assert code == 1009
    assert hello["type"] == "hello"
    server.wait_back("the oversize connection closed")
