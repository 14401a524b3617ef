"""The per-stream hook on hand-made detections and a fake clock: ids, what is classified when, settled labels,
zones and ended tracks."""

from __future__ import annotations

import itertools

import numpy as np

from streamer.inference.cascade import Request
from streamer.results import Category, Detections
from streamer.tracking.objects import ObjectTracker, TrackingConfig
from streamer.tracking.settle import SettleConfig
from streamer.tracking.tracker import TrackerConfig
from streamer.tracking.zones import Zone

IMAGE = np.zeros((100, 200, 3), np.uint8)
ESPRESSO = (Category(967, "espresso", "espresso", 0.8),)
CONFIG = TrackingConfig(
    tracker=TrackerConfig(min_hits=2, max_lost_s=0.5),
    settle=SettleConfig(classify_every=2, min_attempts=2, min_votes=2, recheck_every=50),
)


def frame(x: float, score: float = 0.9, *, extra: bool = False) -> Detections:
    """A cup moving right at ``x`` (and, with ``extra``, a second cup standing far away)."""
    boxes = [[x, 40.0, x + 20.0, 80.0]] + ([[150.0, 10.0, 170.0, 30.0]] if extra else [])
    return Detections(np.array(boxes), np.full(len(boxes), score), np.full(len(boxes), 41), names=("cup",) * len(boxes))


def step(hook: ObjectTracker, objects: Detections, t_ms: float, answer: tuple[Category, ...] = ESPRESSO):
    tracked = hook.before(Request("cam", IMAGE, pts_ms=t_ms), objects, np.ones(len(objects), bool))
    return tracked, hook.after(tracked, [answer] * len(tracked.classify))


def test_an_object_gets_its_id_once_confirmed_and_its_label_once_settled() -> None:
    hook = ObjectTracker(CONFIG)
    seen = []
    for i in range(8):
        tracked, objects = step(hook, frame(10.0 + 2 * i), i * 100.0)
        seen.append((objects[0].track_id, tracked.classify.tolist(), objects[0].label))
    assert seen[0][0] is None and seen[0][1] == [], "tentative: no id, not classified"
    first = next(i for i, (track, _, _) in enumerate(seen) if track is not None)
    assert {track for track, _, _ in seen[first:]} == {seen[first][0]}, "one id for the whole way"
    classified = [i for i, (_, chosen, _) in enumerate(seen) if chosen]
    assert classified[:2] == [first, first + 2], "classified when reported, then every classify_every frames"
    label = seen[first + 2][2]
    assert label is not None and (label.name, label.votes, label.attempts) == ("espresso", 2, 2)
    assert seen[first + 1][2] is None, "one vote does not settle a label"
    assert not any(chosen for _, chosen, _ in seen[first + 3 :]), "settled: not classified again until a re-check"


def test_only_eligible_objects_are_classified() -> None:
    hook = ObjectTracker(CONFIG)
    for i in range(4):
        tracked = hook.before(Request("cam", IMAGE, pts_ms=i * 100.0), frame(10.0 + i), np.zeros(1, bool))
        assert tracked.classify.tolist() == []  # a detector class the classifier cannot describe
        hook.after(tracked, [])
    assert tracked.objects[0].track_id is not None


def test_a_lost_track_ends_and_a_looped_clock_goes_on() -> None:
    hook = ObjectTracker(CONFIG)
    for i in range(4):
        tracked, _ = step(hook, frame(10.0 + i, extra=True), i * 100.0)
    ids = set(tracked.objects.track_ids.tolist())
    assert len(ids) == 2 and -1 not in ids
    ended: list[int] = []
    for i in range(4, 12):  # the standing cup leaves; the time jumps back once (a looped file)
        t_ms = (i - 6) * 100.0 if i >= 6 else i * 100.0
        tracked, _ = step(hook, frame(10.0 + i), t_ms)
        ended += tracked.ended
    assert len(ended) == 1 and ended[0] in ids, "the cup that left ended once, after max_lost_s"
    assert tracked.objects[0].track_id in ids - set(ended), "the moving cup kept its id through the jump"


def test_zones_and_their_counts_reach_the_objects() -> None:
    left = Zone(name="left", polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)), inertia=1)
    hook = ObjectTracker(CONFIG, zones=[left])
    for i in range(4):
        tracked, objects = step(hook, frame(10.0 + i, extra=True), i * 100.0)
    in_zone = {o.track_id: o.zones for o in objects}
    assert sorted(in_zone.values()) == [(), ("left",)], in_zone
    assert tracked.counts["zones"]["left"] == {"cup": 1}


def test_a_crop_with_the_classifier_is_not_asked_for_again_by_the_next_frame() -> None:
    hook = ObjectTracker(CONFIG)
    i = 0
    while True:  # frames whose results came back, until one asks for the crop
        i += 1
        asking = hook.before(Request("cam", IMAGE, pts_ms=i * 100.0), frame(10.0 + i), np.ones(1, bool))
        if asking.classify.size:
            break
        hook.after(asking, [])
        assert i < 10
    for j in range(i + 1, i + 4):  # the next frames go in before that answer comes back: two batches in flight
        later = hook.before(Request("cam", IMAGE, pts_ms=j * 100.0), frame(10.0 + j), np.ones(1, bool))
        assert later.classify.tolist() == [], "its crop is still with the classifier"
        hook.after(later, [])
    hook.after(asking, [ESPRESSO])
    asked = []
    for j in range(i + 4, i + 8):
        later = hook.before(Request("cam", IMAGE, pts_ms=j * 100.0), frame(10.0 + j), np.ones(1, bool))
        asked += later.classify.tolist()
        hook.after(later, [ESPRESSO] * len(later.classify))
    assert asked, "once answered, its next attempt comes"


def test_trackers_built_one_after_another_share_one_count_of_ids() -> None:
    ids = itertools.count(1)
    seen: list[set[int]] = []
    for _ in range(2):
        hook = ObjectTracker(CONFIG, ids=ids)
        for i in range(4):
            _, objects = step(hook, frame(10.0 + i, extra=True), i * 100.0)
        seen.append(set(objects.track_ids.tolist()))
    assert seen[0] and seen[1] and not seen[0] & seen[1], seen
