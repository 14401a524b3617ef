"""Event API abuse against a real detecting server process: odd queries, odd ids, and no harm done.

Every answer is a clean 200, 404 or 422, never a 500 or a file outside the event store; the good client
keeps its results and the module's checks (memory, no traceback) hold.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.abuse.conftest import Server, http_get, running_server


@pytest.fixture(scope="module")
def detecting(clip: Path, cache_dir: Path, workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    storage = tmp_path_factory.mktemp("abuse-events")
    env = {"STREAMER_STORAGE_DIR": str(storage)}
    with running_server(str(SAMPLES_STREET), cache_dir=cache_dir, cwd=workdir, args=("--detect",), env=env) as server:
        deadline = time.monotonic() + 60  # the looping file's objects become events within seconds
        while time.monotonic() < deadline:
            reply = http_get(server.port, "/api/events")
            if reply.status == 200 and json.loads(reply.body):
                break
            time.sleep(0.5)
        yield server


SAMPLES_STREET = Path(__file__).resolve().parents[2] / "samples" / "street.mp4"
ODD = [
    "' OR 1=1 --",
    "%",
    "_",
    '"); DROP TABLE events; --',
    "\u202e\u0000",
    "x" * 10_000,
    "../../etc/passwd",
    '["right"]',
]


@pytest.mark.parametrize("key", ["stream", "label", "zone"])
def test_odd_filters_match_nothing_and_harm_nothing(detecting: Server, key: str) -> None:
    with detecting.good_client().receiving(f"odd {key} filters"):
        for value in ODD:
            reply = http_get(detecting.port, f"/api/events?{key}={quote(value)}")
            assert reply.status == 200, (value[:40], reply.status, reply.body[:200])
            assert json.loads(reply.body) == [], value[:40]
    everything = json.loads(http_get(detecting.port, "/api/events").body)
    assert everything, "the table is still there, with its events"


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=-1", "limit=abc", "offset=-5", "offset=10000000", "after=soon"]
)
def test_out_of_range_paging_is_422(detecting: Server, query: str) -> None:
    reply = http_get(detecting.port, f"/api/events?{query}")
    assert reply.status == 422, (query, reply.status)
    assert b"detail" in reply.body


def test_odd_ids_are_not_found(detecting: Server) -> None:
    ids = ["nope", "..", "%2e%2e", "..%2F..%2Fevents.db", "0" * 31, "0" * 33, "G" * 32, "a" * 5000, "%00" * 3]
    with detecting.good_client().receiving("odd event ids"):
        for event_id in ids:
            for tail in ("", "/snapshot.jpg", "/snapshot.jpg?annotated=1", "/clip.mp4"):
                reply = http_get(detecting.port, f"/api/events/{event_id}{tail}")
                assert reply.status == 404, (event_id[:40], tail, reply.status)
                assert not reply.body.startswith(b"\xff\xd8") and b"SQLite" not in reply.body
