"""Events end to end: a real video through the real detector and tracker, recorded in SQLite, served over REST
and pushed on /ws, with zones counted in /api/streams and /metrics."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from websockets.asyncio.client import connect

from streamer.config import StreamSpec, load_config
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from streamer.tracking.zones import zones_from_config
from tests.server.conftest import SAMPLES, fetch, receive, run, ws_url

RIGHT = [{"name": "right", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], "inertia": 1}]


def _cascade(cache_dir: Path, storage: Path) -> Runtime:
    overrides = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "cascade", "storage.dir": str(storage)}
    return Runtime(load_config(env={}, overrides=overrides))


async def _get_json(server: StreamerServer, path: str) -> tuple[int, Any]:
    status, _, body = await fetch(server, path)
    return status, json.loads(body) if body else None


async def _clip(server: StreamerServer, event_id: str) -> bytes:
    """The event's clip once written (the clip writer works on its own thread), in at most 30 s."""
    for _ in range(300):
        status, _, body = await fetch(server, f"/api/events/{event_id}/clip.mp4")
        if status == 200:
            return body
        assert status == 404, status
        await asyncio.sleep(0.1)
    raise AssertionError(f"no clip for event {event_id}")


def test_events_are_recorded_served_and_pushed(cache_dir: Path, tmp_path: Path) -> None:
    runtime = _cascade(cache_dir, tmp_path / "data")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server, connect(ws_url(server)) as ws:
            assert (await receive(ws))["type"] == "hello"
            spec = StreamSpec(
                id="street",
                source=str(SAMPLES / "street.mp4"),
                realtime=False,
                zones=zones_from_config(RIGHT, "zones"),
            )
            await asyncio.to_thread(runtime.add_stream, spec)
            pushed: list[dict[str, Any]] = []
            counts: dict[str, Any] = {}
            for _ in range(2000):  # every result and event of a 90-frame file, until its events end
                message = await receive(ws, skip=("streams", "pong"))
                if message["type"] == "result":
                    counts = message["result"].get("counts", counts)
                if message["type"] == "event":
                    pushed.append(message["event"])
                    opened = {e["id"] for e in pushed if e["kind"] == "new"}
                    if opened and opened <= {e["id"] for e in pushed if e["kind"] == "end"}:
                        break
            assert {e["kind"] for e in pushed} >= {"new", "end"}, pushed
            assert counts["zones"]["right"], counts

            status, events = await _get_json(server, "/api/events?stream=street")
            assert status == 200 and len(events) == len(opened), events
            assert {e["id"] for e in events} == opened
            assert all(e["end_time"] is not None and e["stream"] == "street" for e in events)
            starts = [e["start_time"] for e in events]
            assert starts == sorted(starts, reverse=True), "newest first"
            labels = {e["label"] for e in events}
            assert "motorbike" in labels, labels
            status, bikes = await _get_json(server, "/api/events?label=motorbike")
            assert status == 200 and bikes and {e["label"] for e in bikes} == {"motorbike"}
            status, right = await _get_json(server, "/api/events?zone=right")
            assert status == 200 and right and all("right" in e["entered_zones"] for e in right)
            assert (await _get_json(server, "/api/events?stream=nowhere"))[1] == []
            status, page = await _get_json(server, "/api/events?limit=1&offset=1")
            assert status == 200 and [e["id"] for e in page] == [events[1]["id"]] if len(events) > 1 else True
            assert (await fetch(server, "/api/events?limit=0"))[0] == 422

            bike = bikes[0]
            status, one = await _get_json(server, f"/api/events/{bike['id']}")
            assert status == 200 and one["id"] == bike["id"] and one["label"] == "motorbike"
            status, headers, jpeg = await fetch(server, f"/api/events/{bike['id']}/snapshot.jpg")
            assert status == 200 and headers["content-type"] == "image/jpeg"
            clean = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert clean is not None and clean.shape[:2] == (426, 640)
            status, _, drawn = await fetch(server, f"/api/events/{bike['id']}/snapshot.jpg?annotated=1")
            annotated = cv2.imdecode(np.frombuffer(drawn, np.uint8), cv2.IMREAD_COLOR)
            assert status == 200 and annotated.shape == clean.shape
            x1, y1, x2, y2 = (int(v) for v in one["box"])
            differs = np.abs(annotated.astype(int) - clean.astype(int)).max(axis=2) > 40
            assert differs[max(y1 - 2, 0) : y2 + 3, max(x1 - 2, 0) : x2 + 3].any(), "the box is drawn"

            status, streams = await _get_json(server, "/api/streams")
            [row] = [r for r in streams if r["stream"] == "street"]
            assert row["zones"][0]["name"] == "right" and row["zones"][0]["polygon"][0] == [0.5, 0.0]
            assert "zones" in row["counts"]
            _, _, metrics = await fetch(server, "/metrics")
            assert 'streamer_zone_objects{class="motorbike",stream="street",zone="right"}' in metrics.decode()

            clip = await _clip(server, bike["id"])
            with av.open(io.BytesIO(clip)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            assert len(frames) >= 10 and frames[0].shape == (426, 640, 3), len(frames)
            with av.open(str(SAMPLES / "street.mp4")) as source:
                first = next(source.decode(video=0)).to_ndarray(format="rgb24")
            assert np.array_equal(frames[0], first), "remuxed from the source's first keyframe, not re-encoded"
            status, headers, part = await fetch(
                server, f"/api/events/{bike['id']}/clip.mp4", headers={"Range": "bytes=100-199"}
            )
            assert status == 206 and part == clip[100:200], (status, headers)
            assert headers["content-range"] == f"bytes 100-199/{len(clip)}"

            assert (await fetch(server, f"/api/events/{bike['id']}", method="DELETE"))[0] == 204
            assert (await fetch(server, f"/api/events/{bike['id']}/clip.mp4"))[0] == 404
            assert (await fetch(server, f"/api/events/{bike['id']}"))[0] == 404
            assert (await fetch(server, f"/api/events/{bike['id']}/snapshot.jpg"))[0] == 404
            assert (await fetch(server, "/api/events/..%2F..%2Fevents.db/snapshot.jpg"))[0] == 404
            assert (await fetch(server, "/api/events/nope/clip.mp4"))[0] == 404
            await asyncio.to_thread(runtime.remove_stream, "street")

    runtime.start()
    try:
        run(main, 240)
    finally:
        runtime.stop()
    assert (tmp_path / "data" / "events.db").is_file()


def test_a_server_without_a_detector_has_no_events(runtime: Runtime) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            status, _, body = await fetch(server, "/api/events")
            assert status == 404 and b"records no events" in body

    run(main, 30)
