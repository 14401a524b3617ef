"""Image bombs in ``classify``: small messages that decode to huge images get a record error, never the memory.

The square bombs are built by hand, never holding their pixels: a 1-bit
grayscale PNG whose single IDAT is zlib fed one all-black row at a time
(filter byte 0), so 20000x20000 and 32000x32000 pictures take tens of KB,
while decoding them in colour would take 1.2 and 3 GB.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect

from tests.abuse.conftest import Server, ping_pong, recv_json, running_server
from tests.media import black_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encoded_png(height: int, width: int) -> bytes:
    ok, data = cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))
    assert ok
    return data.tobytes()


BOMBS = {
    "1x100000": lambda: encoded_png(1, 100_000),
    "100000x1": lambda: encoded_png(100_000, 1),
    "20000x20000": lambda: black_png(20_000, 20_000),
    "32000x32000": lambda: black_png(32_000, 32_000),
}


@pytest.fixture(scope="module")
def servers(clip: Path, cache_dir: Path, workdir: Path) -> Iterator[Callable[[], Server]]:
    """One server for the module, replaced if a bomb took it down, so each bomb is judged on its own."""
    with contextlib.ExitStack() as stack:
        started: list[Server] = []

        def current() -> Server:
            if not started or not started[-1].child.alive():
                started.append(stack.enter_context(running_server(str(clip), cache_dir=cache_dir, cwd=workdir)))
            return started[-1]

        yield current


@pytest.fixture
def server(servers: Callable[[], Server]) -> Server:
    return servers()


def test_the_hand_made_png_is_a_real_png() -> None:
    """The builder makes PNGs that OpenCV decodes to the size they claim (checked on a small one)."""
    data = black_png(1000, 37)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (37, 1000, 3) and not image.any()
    assert len(black_png(20_000, 20_000)) < 200_000, "a bomb: tiny on the wire"


@pytest.mark.parametrize("size", list(BOMBS))
def test_an_image_bomb_gets_a_record_error_and_the_good_image_is_still_classified(
    server: Server, coffee_b64: str, size: str
) -> None:
    bomb = base64.b64encode(BOMBS[size]()).decode()
    assert len(bomb) < 8 * 1024 * 1024, "under the server's 8 MiB image limit: the decoder must refuse it"

    async def main() -> Any:
        async with asyncio.timeout(300), connect(server.ws_url(), close_timeout=5, max_size=None) as ws:
            assert (await recv_json(ws))["type"] == "hello"
            await ws.send('{"type":"subscribe","streams":[]}')
            records = [{"image": bomb}, {"image": coffee_b64}]
            await ws.send(json.dumps({"type": "classify", "id": "b1", "records": records}))
            reply = await recv_json(ws, timeout=240)
            await ping_pong(ws)
            return reply

    with server.good_client().receiving(f"a {size} image bomb"):
        reply = server.run(main())
    assert reply["type"] == "classified" and reply["id"] == "b1", str(reply)[:500]
    bombed, good = reply["records"]
    assert set(bombed) == {"error"}, f"the {size} image was not refused: {str(bombed)[:300]}"
    assert "pixels" in bombed["error"] and "limit" in bombed["error"], bombed
    assert good["best_label"]["name"] == "espresso", good
    server.probe.assert_peak_under()
    server.wait_back(f"a {size} image bomb")
