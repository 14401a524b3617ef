"""A camera group in this process (what a Ray actor runs): real clips, the real detector and tracker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.cluster.group import CameraGroup
from streamer.config import StreamSpec, load_config
from streamer.events import Event
from streamer.results import FrameResult
from tests.media import make_clip


@pytest.fixture(scope="module")
def group(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CameraGroup]:
    overrides = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "detect", "threads": 1}
    config = load_config(env={}, overrides=overrides)
    group = CameraGroup(config)
    try:
        yield group
    finally:
        group.close()


def _take_until(
    group: CameraGroup, enough: Any, after: int = 0, watched: tuple[str, ...] = ()
) -> tuple[list[Any], int, dict[str, Any]]:
    """Take batches (bounded: 90 s) until ``enough(items)``; the items, the last number and the frames seen."""
    items: list[Any] = []
    frames: dict[str, Any] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not enough(items):
        batch = group.take(after, watched, timeout=0.5)
        after = batch.last
        items.extend(item for _, item in batch.items)
        frames.update(batch.frames)
    return items, after, frames


def test_a_group_sends_results_events_with_snapshots_and_frames_of_watched_streams_only(
    group: CameraGroup, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=45, fps=15, size=(320, 240))
    for name in ("cam", "door"):
        group.add(StreamSpec(id=name, source=str(clip), loop=True), first_track_id=100 if name == "door" else 1)
    assert sorted(spec.id for spec in group.specs()) == ["cam", "door"]

    def enough(items: list[Any]) -> bool:
        tracked = {
            item[1].stream
            for item in items
            if item[0] == "result" and any(o.track_id is not None for o in item[1].objects)
        }
        return tracked == {"cam", "door"} and any(item[0] == "event" and item[2] is not None for item in items)

    items, after, frames = _take_until(group, enough, watched=("cam",))
    results = [item[1] for item in items if item[0] == "result"]
    events: list[tuple[Event, Any]] = [(item[1], item[2]) for item in items if item[0] == "event"]
    assert {r.stream for r in results} == {"cam", "door"} and all(isinstance(r, FrameResult) for r in results)
    assert events, "the collage's objects are tracked into events"
    for event, snapshot in events:
        if event.snapshot:
            assert isinstance(snapshot, bytes) and snapshot.startswith(b"\xff\xd8\xff"), "the snapshot, as JPEG"
            decoded = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
            assert decoded.shape == (240, 320, 3)
        else:
            assert snapshot is None, "frames travel only for snapshots"
    assert set(frames) == {"cam"}, "frames of the watched stream only"
    index, pts_ms, image = frames["cam"]
    assert image.shape == (240, 320, 3) and pts_ms >= 0 and index >= 0
    door_ids = {o.track_id for r in results if r.stream == "door" for o in r.objects if o.track_id is not None}
    assert door_ids and min(door_ids) >= 100, "a moved stream's track ids start where the front says"

    opened = {event.id for event, _ in events if event.after.stream == "cam"} - {
        event.id for event, _ in events if event.kind == "end"
    }
    still_open = {event.id for event in group.open_events() if event.after.stream == "cam"}
    assert still_open, "a new front learns the open events from the group"
    assert group.remove("cam") and not group.remove("cam")
    items, _, _ = _take_until(
        group,
        lambda got: (opened | still_open) <= {i[1].id for i in got if i[0] == "event" and i[1].kind == "end"},
        after,
    )
    ended = {item[1].id for item in items if item[0] == "event" and item[1].kind == "end"}
    assert opened | still_open <= ended, "removing a stream ends its open events"
    assert [spec.id for spec in group.specs()] == ["door"]
    assert [row["stream"] for row in group.stats()] == ["door"]
    group.remove("door")
