"""The tracker on hand-made boxes with explicit times, and on synthetic box scenes against their truth."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.errors import ConfigError, RunningModeError
from streamer.evaluation.tracking import identity_metrics
from streamer.tracking import Tracker, TrackerConfig, TrackUpdate
from tests.tracking.scenes import ImageScene, box_scene, crossing_scene, exit_return_scene, gap_scene


def dets(
    *boxes: tuple[float, float, float, float], scores: list[float] | None = None, classes: list[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays for ``update``: boxes, scores (0.9 each by default), class ids (0 by default)."""
    array = np.array(boxes, np.float64).reshape(-1, 4)
    score = np.array(scores if scores is not None else [0.9] * len(boxes), np.float64)
    kind = np.array(classes if classes is not None else [0] * len(boxes), np.int64)
    return array, score, kind


def box(x: float, y: float = 100.0, size: float = 50.0) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


def run(tracker: Tracker, frames: list[tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> list[TrackUpdate]:
    return [tracker.update(*d, time_s=t) for t, d in frames]


def test_a_track_is_confirmed_after_min_hits_and_keeps_its_id() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3))
    updates = run(tracker, [(i * 0.1, dets(box(100 + 5 * i))) for i in range(5)])
    assert [u.track_ids.tolist() for u in updates] == [[1]] * 5
    assert [bool(u.confirmed[0]) for u in updates] == [False, False, True, True, True]
    assert [u.new for u in updates] == [(), (), (1,), (), ()]
    assert tracker.active == 1


def test_min_hits_1_confirms_at_once() -> None:
    update = Tracker(TrackerConfig(min_hits=1)).update(*dets(box(0), box(200)), time_s=0.0)
    assert update.track_ids.tolist() == [1, 2]
    assert update.confirmed.tolist() == [True, True]
    assert update.new == (1, 2)


def test_a_tentative_track_that_misses_dies_unreported_and_its_id_is_not_reused() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3))
    tracker.update(*dets(box(100)), time_s=0.0)
    tracker.update(*dets(box(102)), time_s=0.1)
    gone = tracker.update(*dets(), time_s=0.2)
    assert gone.ended == () and gone.missed == () and tracker.active == 0
    back = tracker.update(*dets(box(104)), time_s=0.3)
    assert back.track_ids.tolist() == [2]


def test_a_confirmed_track_coasts_through_a_gap_shorter_than_max_lost_then_ends_after_it() -> None:
    tracker = Tracker(TrackerConfig(min_hits=2, max_lost_s=0.5))
    run(tracker, [(i * 0.1, dets(box(100 + 10 * i))) for i in range(4)])  # moving 100 px/s
    lost = run(tracker, [(0.4, dets()), (0.5, dets()), (0.6, dets())])
    assert [u.missed for u in lost] == [(1,), (1,), (1,)]
    assert all(u.ended == () for u in lost)
    again = tracker.update(*dets(box(170)), time_s=0.7)  # where the prediction has moved it
    assert again.track_ids.tolist() == [1] and again.missed == ()
    run(tracker, [(0.8, dets()), (1.1, dets())])
    assert tracker.active == 1
    ended = tracker.update(*dets(), time_s=1.21)  # unseen for 0.51 s > 0.5 s
    assert ended.ended == (1,) and ended.missed == () and tracker.active == 0


def test_a_track_comes_back_after_frames_skipped_because_prediction_uses_elapsed_time() -> None:
    config = TrackerConfig(min_hits=1, match_iou=0.3)
    frames = [(i * 0.1, dets(box(100 + 20 * i))) for i in range(5)]  # 200 px/s, 50 px boxes
    tracker = Tracker(config)
    run(tracker, frames)
    far = tracker.update(*dets(box(100 + 20 * 9)), time_s=0.9)  # 4 frames skipped: 80 px on
    assert far.track_ids.tolist() == [1]
    # The same jump as if only one frame had passed is not where the track is predicted to be.
    tracker = Tracker(config)
    run(tracker, frames)
    wrong = tracker.update(*dets(box(100 + 20 * 9)), time_s=0.5)
    assert wrong.track_ids.tolist() == [2] and wrong.missed == (1,)


def test_equal_and_backward_times_count_as_no_time_passing() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_lost_s=0.5))
    run(tracker, [(i * 0.1, dets(box(100 + 10 * i))) for i in range(4)])
    same = run(tracker, [(0.3, dets(box(130))), (0.3, dets(box(130))), (0.1, dets(box(130)))])
    assert [u.track_ids.tolist() for u in same] == [[1], [1], [1]]
    later = tracker.update(*dets(), time_s=0.75)  # 0.45 s after the latest time seen (0.3): not yet
    assert later.ended == () and later.missed == (1,)
    assert tracker.update(*dets(), time_s=0.81).ended == (1,)


def test_detections_only_match_tracks_of_their_class() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update(*dets(box(100), classes=[3]), time_s=0.0)
    other = tracker.update(*dets(box(100), classes=[5]), time_s=0.1)
    assert other.track_ids.tolist() == [2] and other.missed == (1,)
    same = tracker.update(*dets(box(100), box(100), classes=[5, 3]), time_s=0.2)
    assert same.track_ids.tolist() == [2, 1]


def test_a_low_score_box_rescues_a_tracked_object_but_never_starts_one() -> None:
    config = TrackerConfig(min_hits=2, high_score=0.5, new_track_score=0.6, low_score=0.1, low_match_iou=0.5)
    tracker = Tracker(config)
    run(tracker, [(i * 0.1, dets(box(100 + 5 * i))) for i in range(3)])
    half_hidden = tracker.update(*dets(box(115), box(400), scores=[0.3, 0.3]), time_s=0.3)
    assert half_hidden.track_ids.tolist() == [1, -1] and half_hidden.missed == ()
    assert half_hidden.confirmed.tolist() == [True, False]
    too_low = tracker.update(*dets(box(120), scores=[0.05]), time_s=0.4)
    assert too_low.track_ids.tolist() == [-1] and too_low.missed == (1,)


def test_a_high_box_below_new_track_score_starts_nothing() -> None:
    tracker = Tracker(TrackerConfig(high_score=0.5, new_track_score=0.7))
    update = tracker.update(*dets(box(0), box(200), scores=[0.6, 0.8]), time_s=0.0)
    assert update.track_ids.tolist() == [-1, 1] and tracker.active == 1


def test_two_objects_crossing_keep_their_ids() -> None:
    tracker = Tracker(TrackerConfig(min_hits=2))
    seen: dict[int, set[int]] = {0: set(), 1: set()}
    for i in range(30):
        t = i / 15
        left, right = 50 + 12 * i, 400 - 12 * i  # cross at frame ~15, at different heights
        update = tracker.update(*dets(box(left, 100), box(right, 120)), time_s=t)
        for which in (0, 1):
            if update.confirmed[which]:
                seen[which].add(int(update.track_ids[which]))
    assert seen == {0: {1}, 1: {2}}


def test_an_occluded_object_keeps_its_id_through_low_scores_and_a_miss() -> None:
    tracker = Tracker(TrackerConfig(min_hits=2))
    ids = []
    for i in range(24):
        front, back = box(50 + 15 * i, 100), box(400 - 15 * i, 110)
        covered = 9 <= i <= 14
        scores = [0.9, 0.2 if covered else 0.9]
        boxes = [front, back] if i != 12 else [front]  # wholly hidden once
        update = tracker.update(*dets(*boxes, scores=scores[: len(boxes)]), time_s=i * 0.1)
        ids.append(update.track_ids.tolist())
    assert all(row[0] == 1 for row in ids)
    assert {row[1] for row in ids if len(row) == 2} == {2}


def test_edge_cases_empty_input_zero_size_boxes_and_non_finite_values() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    empty = tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.0)
    assert empty.track_ids.shape == (0,) and empty.confirmed.shape == (0,)
    odd = tracker.update(
        *dets((10, 10, 10, 50), (60, 60, 40, 80), (0, 0, np.nan, 5), box(100), scores=[0.9, 0.9, 0.9, np.nan]),
        time_s=0.1,
    )
    assert odd.track_ids.tolist() == [-1, -1, -1, -1] and tracker.active == 0
    assert tracker.update(np.zeros(0), np.array([]), np.array([]), 0.2).track_ids.shape == (0,)


def test_end_all_ends_confirmed_tracks_and_ids_stay_unique() -> None:
    tracker = Tracker(TrackerConfig(min_hits=2))
    run(tracker, [(0.0, dets(box(0), box(200))), (0.1, dets(box(0), box(400)))])
    assert tracker.end_all() == (1,)
    assert tracker.active == 0 and tracker.end_all() == ()
    fresh = tracker.update(*dets(box(0)), time_s=0.0)
    assert fresh.track_ids.tolist() == [4]  # 1..3 used before (3: the box at 400, tentative)


def test_ended_tracks_are_freed() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_lost_s=0.2))
    for i in range(200):
        tracker.update(*dets(box(60.0 * (i % 10), 60.0 * (i // 10))), time_s=i * 0.1)
    assert tracker.active <= 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_hits": 0}, "tracker.min_hits = 0; expected an integer >= 1"),
        ({"min_hits": 2.0}, "tracker.min_hits = 2.0; expected an integer >= 1"),
        ({"max_lost_s": -1.0}, "tracker.max_lost_s = -1.0; expected seconds >= 0"),
        ({"max_lost_s": float("inf")}, "tracker.max_lost_s = inf; expected a finite number"),
        ({"match_iou": 0.0}, "tracker.match_iou = 0.0; expected an IoU in (0, 1]"),
        ({"low_match_iou": 1.5}, "tracker.low_match_iou = 1.5; expected an IoU in (0, 1]"),
        ({"high_score": 1.2}, "tracker.high_score = 1.2; expected a score in 0..1"),
        ({"low_score": "0.1"}, "tracker.low_score = '0.1'; expected a finite number"),
        ({"low_score": 0.6, "high_score": 0.5}, "tracker.low_score = 0.6 is above tracker.high_score = 0.5"),
        ({"new_track_score": 0.3}, "tracker.new_track_score = 0.3 is below tracker.high_score = 0.4"),
    ],
)
def test_bad_config_names_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        TrackerConfig(**options)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_bad_arrays_and_times_are_refused() -> None:
    tracker = Tracker()
    with pytest.raises(ConfigError, match=r"boxes must be an \[K, 4\] array"):
        tracker.update(np.zeros((2, 3)), np.zeros(2), np.zeros(2, np.int64), 0.0)
    with pytest.raises(ConfigError, match=r"scores must have shape \[2\] \(one per box\), got \[3\]"):
        tracker.update(np.zeros((2, 4)), np.zeros(3), np.zeros(2, np.int64), 0.0)
    with pytest.raises(RunningModeError, match="time_s = nan"):
        tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), float("nan"))


def track_scene(scene_objects: int, seed: int) -> tuple[list[list[tuple[int, np.ndarray]]], int]:
    """Confirmed tracks' boxes per frame of a box scene, and the most tracks alive at once."""
    scene = box_scene(scene_objects, 100, seed=seed)
    tracker = Tracker()
    predicted = []
    most = 0
    for t, (boxes, scores, classes) in zip(scene.times, scene.detections, strict=True):
        update = tracker.update(boxes, scores, classes, t)
        keep = np.flatnonzero(update.confirmed)
        predicted.append([(int(update.track_ids[i]), boxes[i]) for i in keep])
        most = max(most, tracker.active)
    return predicted, most


@pytest.mark.parametrize(("objects", "seed"), [(10, 1), (20, 2), (60, 3)])
def test_synthetic_scenes_keep_identities(objects: int, seed: int) -> None:
    scene = box_scene(objects, 100, seed=seed)
    predicted, most = track_scene(objects, seed)
    metrics = identity_metrics(scene.truth, predicted, iou_threshold=0.5)
    assert metrics.idf1 >= 0.9, metrics
    assert metrics.id_switches <= max(2, objects // 10), metrics
    assert most <= 3 * objects  # false positives die as tentative tracks


def truth_ids(scene: ImageScene) -> list[list[int]]:
    """Confirmed track ids per frame when the scene's true boxes are the detections (class: its label)."""
    names = sorted(set(scene.labels.values()))
    tracker = Tracker(TrackerConfig(min_hits=1))
    rows = []
    for t, objects in zip(scene.times, scene.truth, strict=True):
        boxes = np.array([b for _, b in objects]).reshape(-1, 4)
        classes = np.array([names.index(scene.labels[i]) for i, _ in objects], np.int64)
        rows.append(tracker.update(boxes, np.full(len(objects), 0.9), classes, t).track_ids.tolist())
    return rows


def test_image_scenes_have_their_objects_where_the_truth_says_and_the_tracker_follows_them() -> None:
    crossing, gap, away = crossing_scene(), gap_scene(), exit_return_scene()
    for scene in (crossing, gap, away):
        assert len(scene.frames) == len(scene.times) == len(scene.truth) <= 120
        assert all(f.shape == (480, 640, 3) and f.dtype == np.uint8 for f in scene.frames)
        x1, y1, x2, y2 = scene.truth[0][0][1].astype(int)
        assert scene.frames[0][y1:y2, x1:x2].std() > 20  # a photograph is drawn there
    assert crossing.labels == {1: "cat", 2: "person"}
    assert truth_ids(crossing) == [[1, 2]] * len(crossing.frames)
    assert [len(objects) for objects in gap.truth[19:26]] == [1, 0, 0, 0, 0, 0, 1]
    assert {i for row in truth_ids(gap) for i in row} == {1}  # 5 frames (0.33 s) < max_lost_s
    assert any(not objects for objects in away.truth)
    assert {i for row in truth_ids(away) for i in row} == {1, 2}  # back the other way: a new track
