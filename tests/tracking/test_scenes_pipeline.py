"""Objects over time end to end: clips made now from real photographs with known trajectories, encoded to H.264,
run through the real detector, tracker, zones, event store and clip writer; checked against the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from streamer.config import StreamSpec, load_config
from streamer.evaluation.tracking import identity_metrics
from streamer.events.store import EventStore
from streamer.results import FrameResult
from streamer.runtime import Runtime
from streamer.tracking.zones import Line, Zone, ZoneState
from streamer.vision.nms import iou_matrix
from tests.tracking.scenes import ImageScene, crossing_scene, exit_return_scene, gap_scene

GOP = 15
RIGHT = Zone(name="right", polygon=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)), inertia=1)
MIDDLE = Line(name="middle", start=(0.5, 0.0), end=(0.5, 1.0))
NAMES = {"cat": "cat", "person": "person", "motorcycle": "motorbike"}  # the scenes' words -> the detector's


def encode(scene: ImageScene, path: Path, fps: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = 640, 480
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(GOP), "bf": "0", "crf": "18"}
        for image in scene.frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def run_scene(scene: ImageScene, name: str, fps: int, tmp_path: Path, storage: Path, cache_dir: Path) -> list[Any]:
    """The scene through a runtime (detector, tracker, zones, events, clips); its results by frame."""
    path = encode(scene, tmp_path / f"{name}.mp4", fps)
    overrides = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "detect", "storage.dir": str(storage)}
    runtime = Runtime(load_config(env={}, overrides=overrides), lossless=True)
    results: dict[int, FrameResult] = {}
    runtime.subscribe(lambda result, frame: results.__setitem__(result.frame, result))
    runtime.add_stream(StreamSpec(id=name, source=str(path), realtime=False, zones=(RIGHT,), lines=(MIDDLE,)))
    runtime.start()
    try:
        assert runtime.wait(120), "the file ends"
    finally:
        runtime.stop()
    return [results.get(i) for i in range(len(scene.frames))]


def tracked(results: list[Any]) -> list[list[tuple[int, np.ndarray]]]:
    return [
        [] if r is None else [(o.track_id, np.array(o.box)) for o in r.objects if o.track_id is not None]
        for r in results
    ]


def truth_counts(scene: ImageScene) -> dict[str, Any]:
    """The zone and line counts the true trajectories make, by the same rules."""
    state = ZoneState([RIGHT], [MIDDLE])
    for time_s, objects in zip(scene.times, scene.truth, strict=True):
        ids = np.array([i for i, _ in objects], np.int64)
        boxes = np.array([box for _, box in objects]).reshape(-1, 4)
        state.update(time_s, 640, 480, ids, [NAMES[scene.labels[i]] for i, _ in objects], boxes)
    return state.counts()


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[ImageScene, list[Any], Path]:
    tmp = tmp_path_factory.mktemp("crossing")
    scene = crossing_scene()
    return scene, run_scene(scene, "crossing", 30, tmp, tmp / "data", cache_dir), tmp / "data"


def test_two_objects_crossing_keep_their_identities(crossing: tuple[ImageScene, list[Any], Path]) -> None:
    scene, results, _ = crossing
    metrics = identity_metrics(scene.truth, tracked(results))
    print(f"crossing: IDF1 {metrics.idf1:.3f}, {metrics.id_switches} ID switches, pairs {metrics.id_pairs}")
    assert metrics.id_switches == 0 and metrics.idf1 >= 0.8, metrics
    assert len(set(metrics.id_pairs.values())) == 2, "one track each"


def test_zone_entries_and_line_crossings_equal_the_truth(crossing: tuple[ImageScene, list[Any], Path]) -> None:
    scene, results, storage = crossing
    expected = truth_counts(scene)
    last = next(r for r in reversed(results) if r is not None)
    assert last.counts["lines"] == expected["lines"], (last.counts, expected)
    assert sum(n for d in expected["lines"]["middle"].values() for n in d.values()) == 2, "both crossed"
    store = EventStore(storage)
    try:
        events = store.query(stream="crossing")
    finally:
        store.close()
    entered = {event["label"]: set(event["entered_zones"]) for event in events}
    assert entered == {"cat": {"right"}, "person": {"right"}}, events


def test_events_survive_the_process_and_their_snapshots_show_the_object(
    crossing: tuple[ImageScene, list[Any], Path],
) -> None:
    scene, results, storage = crossing
    env = {**os.environ, "STREAMER_STORAGE_DIR": str(storage)}
    listed = subprocess.run(
        [sys.executable, "-m", "streamer", "events", "--stream", "crossing", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(e["label"] for e in events) == ["cat", "person"] and all(e["end_time"] for e in events)
    store = EventStore(storage)
    try:
        for event in events:
            jpeg = store.snapshot(event["id"])
            assert jpeg is not None
            snapshot = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            errors = [np.abs(snapshot.astype(int) - frame.astype(int)).mean() for frame in scene.frames]
            index = int(np.argmin(errors))
            assert errors[index] < 6, "the snapshot is a frame of the video, clean"
            truth_id = 1 if event["label"] == "cat" else 2
            [true_box] = [box for i, box in scene.truth[index] if i == truth_id]
            overlap = iou_matrix(np.array([event["snapshot"]["box"]]), true_box[None])[0, 0]
            assert overlap > 0.5, (event["label"], index, event["snapshot"]["box"], true_box.tolist())
            clip = store.clip_path(event["id"])
            assert clip is not None
            with av.open(str(clip)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
            small = np.stack([cv2.resize(f, (80, 60), interpolation=cv2.INTER_AREA) for f in scene.frames]).astype(int)
            shown = [
                int(
                    np.abs(small - cv2.resize(frame, (80, 60), interpolation=cv2.INTER_AREA).astype(int))
                    .mean(axis=(1, 2, 3))
                    .argmin()
                )
                for frame in frames
            ]
            assert shown == list(range(shown[0], shown[0] + len(shown))), "every frame, in order"
            seen = [i for i, r in enumerate(results) if r and event["track_id"] in r.objects.track_ids.tolist()]
            pre, post = 5 * 30, 5 * 30  # [storage] pre_capture_s and post_capture_s, in frames at 30 fps
            assert shown[0] == max(seen[0] - pre, 0) // GOP * GOP, "pre-capture from the keyframe before, one GOP"
            assert shown[-1] == min(seen[-1] + post, len(scene.frames) - 1), "the event and the post-capture"
    finally:
        store.close()


def test_a_detector_gap_keeps_the_id(tmp_path: Path, cache_dir: Path) -> None:
    scene = gap_scene()
    results = run_scene(scene, "gap", 15, tmp_path, tmp_path / "data", cache_dir)
    metrics = identity_metrics(scene.truth, tracked(results))
    print(f"gap: IDF1 {metrics.idf1:.3f}, {metrics.id_switches} ID switches")
    assert metrics.id_switches == 0 and metrics.idf1 >= 0.8, metrics


def test_an_object_gone_longer_than_max_lost_comes_back_as_a_new_track(tmp_path: Path, cache_dir: Path) -> None:
    scene = exit_return_scene()
    results = run_scene(scene, "exit", 15, tmp_path, tmp_path / "data", cache_dir)
    ended = [track for r in results if r is not None for track in r.ended]
    before = {o.track_id for r in results[:17] if r is not None for o in r.objects if o.track_id is not None}
    after = {o.track_id for r in results[45:] if r is not None for o in r.objects if o.track_id is not None}
    assert before and after and not before & after, (before, after)
    assert set(ended) >= before, "each track it had before it left ended, once"
    assert len(ended) == len(set(ended))
