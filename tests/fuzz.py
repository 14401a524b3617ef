"""Random JSON for fuzzing the WebSocket protocol, shared by the in-process and the abuse tests."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["random_json"]

KEYS = ["type", "id", "records", "streams", "sdp", "stream", "top_k", "image", "x", ""]
TYPES = ["ping", "subscribe", "classify", "offer", "PING", "", "result", None, 1]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: scalars, strings, lists, and objects with the protocol's keys (some with a ``type``)."""
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 11, 10**30, rng.randrange(-1000, 1000)])
    if kind == 3:
        return rng.uniform(-1e6, 1e6)
    if kind == 4:
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(12)))
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(12))]
    data = {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}
    if kind >= 7:
        data["type"] = rng.choice(TYPES)
    return data
