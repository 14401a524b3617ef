"""Zones and lines on hand-made tracks: boxes placed by their bottom centre, explicit times."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from streamer.errors import ConfigError
from streamer.tracking.zones import (
    Line,
    Zone,
    ZoneState,
    ZoneUpdate,
    lines_from_config,
    points_in_polygon,
    zones_from_config,
)

W, H = 200, 100
SQUARE = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))


def frame(state: ZoneState, time_s: float, objects: Sequence[tuple[int, str, float, float]]) -> ZoneUpdate:
    """Update with objects ``(track_id, class, x, y)`` whose boxes' bottom centres are at ``(x, y)`` (0..1)."""
    ids = np.array([o[0] for o in objects], dtype=np.int64)
    boxes = np.array([[x * W - 8, y * H - 30, x * W + 8, y * H] for _, _, x, y in objects], dtype=np.float32).reshape(
        -1, 4
    )
    return state.update(time_s, W, H, ids, [o[1] for o in objects], boxes)


def walk(
    state: ZoneState, track: int, points: Sequence[tuple[float, float]], cls: str = "person", t0: float = 0.0
) -> list[ZoneUpdate]:
    """One track alone along ``points``, a frame a second from ``t0``."""
    return [frame(state, t0 + t, [(track, cls, x, y)]) for t, (x, y) in enumerate(points)]


# --- geometry -----------------------------------------------------------------


def test_points_in_polygon_even_odd() -> None:
    # A "C" shape: its notch is outside
    c_shape = np.array([(0, 0), (1, 0), (1, 0.3), (0.3, 0.3), (0.3, 0.7), (1, 0.7), (1, 1), (0, 1)], dtype=float)
    points = np.array([(0.1, 0.5), (0.6, 0.5), (0.6, 0.1), (0.6, 0.9), (1.5, 0.5), (-0.1, 0.5)])
    assert points_in_polygon(points, c_shape).tolist() == [True, False, True, True, False, False]
    assert points_in_polygon(np.zeros((0, 2)), c_shape).shape == (0,)


def test_object_is_placed_by_its_bottom_centre() -> None:
    state = ZoneState([Zone(name="floor", polygon=SQUARE, inertia=1)], [])
    # a tall box whose top is in the zone but whose feet are below it
    boxes = np.array([[90.0, 40.0, 110.0, 90.0], [90.0, 10.0, 110.0, 60.0]], dtype=np.float32)
    update = state.update(0.0, W, H, np.array([1, 2]), ["person", "person"], boxes)
    assert update.zones == ((), ("floor",))


# --- zones --------------------------------------------------------------------


def test_enter_after_inertia_frames_then_leave() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE, inertia=3)], [])
    path = [(0.1, 0.5), (0.5, 0.5), (0.5, 0.5), (0.5, 0.5), (0.5, 0.5), (0.9, 0.5), (0.9, 0.5), (0.9, 0.5)]
    updates = walk(state, 1, path)
    assert [u.zones[0] for u in updates] == [(), (), (), ("door",), ("door",), ("door",), ("door",), ()]
    assert [t for t, u in enumerate(updates) if u.entered] == [3]
    assert updates[3].entered == ((1, "door"),)
    assert [t for t, u in enumerate(updates) if u.left] == [7]
    assert updates[7].left == ((1, "door"),)
    assert len(state) == 0  # out of the zone again and no lines: nothing is kept for it
    assert state.counts() == {"zones": {"door": {}}, "lines": {}}


def test_jitter_at_the_edge_does_not_flap() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE, inertia=3)], [])
    inside, outside = (0.26, 0.5), (0.24, 0.5)
    path = [inside] * 3 + [outside, inside, outside, outside, inside, outside, inside] + [outside] * 3
    updates = walk(state, 1, path)
    entered = [t for t, u in enumerate(updates) if u.entered]
    left = [t for t, u in enumerate(updates) if u.left]
    assert entered == [2]
    assert left == [len(path) - 1]  # only three outside frames in a row make it leave
    # while it jittered it stayed in the zone
    assert all(u.zones[0] == ("door",) for u in updates[2:-1])


def test_jitter_outside_never_enters() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE, inertia=3)], [])
    path = [(0.26, 0.5), (0.26, 0.5), (0.24, 0.5)] * 4
    assert not any(u.entered or u.zones[0] for u in walk(state, 1, path))
    assert state.counts()["zones"]["door"] == {}


def test_loitering_threshold() -> None:
    state = ZoneState([Zone(name="bench", polygon=SQUARE, inertia=2, loitering_s=10.0)], [])
    times = [0.0, 4.0, 8.0, 9.9, 10.0, 12.0]
    updates = [frame(state, t, [(5, "person", 0.5, 0.5)]) for t in times]
    # present from t=4 (2 frames), but it counts only 10 s after its first inside frame, t=0
    assert [u.zones[0] for u in updates] == [(), (), (), (), ("bench",), ("bench",)]
    assert updates[4].entered == ((5, "bench"),)
    assert state.counts()["zones"]["bench"] == {"person": 1}


def test_passing_through_a_loitering_zone_is_neither_entered_nor_left() -> None:
    state = ZoneState([Zone(name="bench", polygon=SQUARE, inertia=1, loitering_s=10.0)], [])
    updates = [frame(state, t, [(5, "person", x, 0.5)]) for t, x in [(0, 0.3), (2, 0.5), (4, 0.7), (6, 0.9)]]
    assert not any(u.entered or u.left or u.zones[0] for u in updates)
    assert len(state) == 0


def test_class_filter() -> None:
    zone = Zone(name="drive", polygon=SQUARE, classes=("car", "truck"), inertia=1)
    state = ZoneState([zone], [])
    update = frame(state, 0.0, [(1, "car", 0.5, 0.5), (2, "person", 0.5, 0.5), (3, "car", 0.1, 0.1)])
    assert update.zones == (("drive",), (), ())
    assert update.entered == ((1, "drive"),)
    assert state.counts()["zones"]["drive"] == {"car": 1, "truck": 0}
    # a track whose class turns into one the zone does not list leaves it
    update = frame(state, 1.0, [(1, "person", 0.5, 0.5)])
    assert update.left == ((1, "drive"),)


def test_counts_per_class_and_untracked_objects_ignored() -> None:
    state = ZoneState([Zone(name="yard", polygon=SQUARE, inertia=1)], [])
    objects = [(1, "person", 0.4, 0.4), (2, "person", 0.6, 0.6), (3, "dog", 0.5, 0.5), (-1, "person", 0.5, 0.5)]
    update = frame(state, 0.0, objects)
    assert update.zones == (("yard",), ("yard",), ("yard",), ())
    assert state.counts()["zones"]["yard"] == {"person": 2, "dog": 1}


def test_overlapping_zones() -> None:
    left_half = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
    state = ZoneState([Zone(name="a", polygon=SQUARE, inertia=1), Zone(name="b", polygon=left_half, inertia=1)], [])
    assert frame(state, 0.0, [(1, "cat", 0.4, 0.5), (2, "cat", 0.6, 0.5)]).zones == (("a", "b"), ("a",))


def test_a_track_ended_inside_a_zone_leaves_it() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE, inertia=1)], [Line(name="l", start=(0, 0.9), end=(1, 0.9))])
    frame(state, 0.0, [(1, "person", 0.5, 0.5), (2, "person", 0.1, 0.1)])
    assert len(state) == 2
    assert state.forget(1) == ((1, "door"),)
    assert state.forget(2) == ()
    assert state.forget(99) == ()
    assert len(state) == 0  # bounded memory: nothing is kept for ended tracks
    assert state.counts()["zones"]["door"] == {}


def test_many_tracks_leave_no_state_behind() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE)], [Line(name="gate", start=(0.5, 0), end=(0.5, 1))])
    for track in range(500):
        frame(state, float(track), [(track, "person", 0.3, 0.5)])
        frame(state, track + 0.5, [(track, "person", 0.7, 0.5)])
        state.forget(track)
    assert len(state) == 0
    assert state.counts()["lines"]["gate"]["out"] == {"person": 500}


# --- lines --------------------------------------------------------------------


def test_line_crossing_in_and_out() -> None:
    # drawn left to right: "in" is downward on the image (from its left-hand side to its right-hand side)
    state = ZoneState([], [Line(name="gate", start=(0.2, 0.5), end=(0.8, 0.5))])
    down = walk(state, 1, [(0.5, 0.3), (0.5, 0.45), (0.5, 0.55), (0.5, 0.7)])
    assert [c for u in down for c in u.crossings] == [down[2].crossings[0]]
    crossing = down[2].crossings[0]
    assert (crossing.track_id, crossing.line, crossing.direction, crossing.class_name) == (1, "gate", "in", "person")
    walk(state, 2, [(0.4, 0.8), (0.45, 0.2)], cls="car", t0=10)
    walk(state, 3, [(0.6, 0.8), (0.6, 0.2)], cls="car", t0=20)
    assert state.counts() == {
        "zones": {},
        "lines": {"gate": {"in": {"person": 1}, "out": {"car": 2}}},
    }


def test_direction_follows_the_line_drawing() -> None:
    state = ZoneState([], [Line(name="up", start=(0.5, 0.9), end=(0.5, 0.1))])  # drawn bottom to top
    update = walk(state, 1, [(0.3, 0.5), (0.7, 0.5)])[1]  # walking right crosses from its left to its right
    assert [c.direction for c in update.crossings] == ["in"]
    update = walk(state, 2, [(0.7, 0.4), (0.3, 0.4)], t0=10)[1]
    assert [c.direction for c in update.crossings] == ["out"]


def test_touching_the_line_without_crossing_counts_nothing() -> None:
    state = ZoneState([], [Line(name="gate", start=(0.2, 0.5), end=(0.8, 0.5))])
    updates = walk(state, 1, [(0.5, 0.3), (0.5, 0.5), (0.5, 0.5), (0.5, 0.3)])
    assert not any(u.crossings for u in updates)
    # it touches, waits on the line, then goes over: one crossing, when it reaches the other side
    updates = walk(state, 2, [(0.5, 0.3), (0.5, 0.5), (0.5, 0.5), (0.5, 0.6), (0.5, 0.7)], t0=10)
    assert [t for t, u in enumerate(updates) if u.crossings] == [3]
    assert state.counts()["lines"]["gate"] == {"in": {"person": 1}, "out": {}}


def test_passing_beside_the_line_counts_nothing() -> None:
    state = ZoneState([], [Line(name="gate", start=(0.2, 0.5), end=(0.8, 0.5))])
    assert not any(u.crossings for u in walk(state, 1, [(0.9, 0.3), (0.9, 0.7), (0.1, 0.7), (0.1, 0.3)]))
    # a diagonal step whose straight path passes the line's end
    assert not walk(state, 2, [(0.75, 0.4), (0.95, 0.6)], t0=10)[1].crossings
    assert walk(state, 3, [(0.75, 0.4), (0.79, 0.6)], t0=20)[1].crossings


def test_line_class_filter_and_back_and_forth() -> None:
    state = ZoneState([], [Line(name="gate", start=(0.0, 0.5), end=(1.0, 0.5), classes=("car",))])
    walk(state, 1, [(0.5, 0.4), (0.5, 0.6)], cls="person")
    walk(state, 2, [(0.5, 0.4), (0.5, 0.6), (0.5, 0.4), (0.5, 0.6)], cls="car", t0=10)
    assert state.counts()["lines"]["gate"] == {"in": {"car": 2}, "out": {"car": 1}}


def test_counts_and_geometry_shapes() -> None:
    assert ZoneState([], []).counts() == {}
    zone = Zone(name="door", polygon=SQUARE, classes=("person",))
    line = Line(name="gate", start=(0.1, 0.2), end=(0.9, 0.2), classes=("car",))
    state = ZoneState([zone], [line])
    assert state.counts() == {
        "zones": {"door": {"person": 0}},
        "lines": {"gate": {"in": {"car": 0}, "out": {"car": 0}}},
    }
    assert state.geometry() == {
        "zones": [{"name": "door", "polygon": [list(p) for p in SQUARE], "classes": ["person"]}],
        "lines": [{"name": "gate", "start": [0.1, 0.2], "end": [0.9, 0.2], "classes": ["car"]}],
    }


def test_update_rejects_bad_input() -> None:
    state = ZoneState([Zone(name="door", polygon=SQUARE)], [])
    with pytest.raises(ValueError, match=r"expected boxes of shape \(2, 4\) and 2 class names"):
        state.update(0.0, W, H, np.array([1, 2]), ["a"], np.zeros((2, 4)))
    with pytest.raises(ValueError, match="1-D integer array"):
        state.update(0.0, W, H, np.array([1.5]), ["a"], np.zeros((1, 4)))
    frame(state, 5.0, [])
    with pytest.raises(ValueError, match=r"not before the previous update's 5\.0"):
        frame(state, 4.0, [])
    with pytest.raises(ValueError, match="width and height must be > 0"):
        state.update(6.0, 0, H, np.array([1]), ["a"], np.zeros((1, 4)))


# --- config -------------------------------------------------------------------


def test_zones_and_lines_from_config() -> None:
    zones = zones_from_config(
        [
            {"name": "door", "polygon": [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]},
            {"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]], "classes": ["dog"], "inertia": 1, "loitering_s": 5},
        ],
        "streams[0].zones",
    )
    assert zones[0] == Zone(name="door", polygon=((0.1, 0.1), (0.5, 0.1), (0.5, 0.5)))
    assert (zones[1].classes, zones[1].inertia, zones[1].loitering_s) == (("dog",), 1, 5.0)
    assert zones[1].polygon == ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0))
    lines = lines_from_config([{"name": "gate", "start": [0, 0.5], "end": [1, 0.5]}], "streams[0].lines")
    assert lines == (Line(name="gate", start=(0.0, 0.5), end=(1.0, 0.5)),)
    assert zones_from_config(None, "streams[0].zones") == ()
    assert lines_from_config([], "streams[0].lines") == ()


GOOD = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        (
            [{"name": "a", "polygon": GOOD}, {"name": "b", "polygon": [[0, 0], [1, 1]]}],
            r"streams\[0\]\.zones\[1\]\.polygon must be a list of at least 3 \[x, y\] pairs in 0\.\.1 "
            r"\(at most 256\), got \[\[0, 0\], \[1, 1\]\]",
        ),
        (
            [{"name": "a", "polygon": [[0, 0], [1.5, 0], [1, 1]]}],
            r"streams\[0\]\.zones\[0\]\.polygon must be a list of at least 3 \[x, y\] pairs in 0\.\.1; "
            r"point 1 is \[1\.5, 0\]",
        ),
        ([{"name": "a", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}], r"zones\[0\]\.polygon encloses no area"),
        ([{"name": "a", "polygon": [[0, 0], [0.5, "x"], [1, 1]]}], r"point 1 is \[0\.5, 'x'\]"),
        ([{"name": "a", "polygon": [[0, 0], [1, 0], [1, float("nan")]]}], "point 2 is"),
        ([{"name": "a", "polygon": "0,0 1,0 1,1"}], r"zones\[0\]\.polygon must be a list"),
        ([{"name": "a", "polygon": GOOD, "inertia": 0}], r"zones\[0\]\.inertia must be a whole number of frames >= 1"),
        ([{"name": "a", "polygon": GOOD, "loitering_s": -1}], r"zones\[0\]\.loitering_s must be a number of seconds"),
        ([{"name": "a", "polygon": GOOD, "classes": "person"}], r"zones\[0\]\.classes must be a list"),
        ([{"name": "a", "polygon": GOOD, "colour": "red"}], r"zones\[0\]: unknown key 'colour'; known keys: name,"),
        ([{"polygon": GOOD}], r"zones\[0\] has no name; give name and polygon"),
        ([{"name": "", "polygon": GOOD}], r"zones\[0\]\.name must be a non-empty printable name"),
        ([{"name": "a\nb", "polygon": GOOD}], r"zones\[0\]\.name must be a non-empty printable name"),
        (
            [{"name": "a", "polygon": GOOD}, {"name": "a", "polygon": GOOD}],
            r"streams\[0\]\.zones\[1\]\.name = 'a' is used twice",
        ),
        ({"name": "a", "polygon": GOOD}, r"streams\[0\]\.zones must be a list of tables"),
        ([[0, 0]], r"streams\[0\]\.zones must be a list of tables"),
    ],
)
def test_bad_zone_config(zones: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        zones_from_config(zones, "streams[0].zones")


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{"name": "g", "start": [0, 0]}], r"lines\[0\] has no end; give name and start and end"),
        ([{"name": "g", "start": [0, 0], "end": [2, 0]}], r"lines\[0\]\.end must be an \[x, y\] pair in 0\.\.1"),
        ([{"name": "g", "start": [0.5, 0.5], "end": [0.5, 0.5]}], r"lines\[0\]: start and end are the same point"),
        ([{"name": "g", "start": [0, 0], "end": [1, 1], "classes": [1]}], r"lines\[0\]\.classes must be a list"),
        ([{"name": "g", "start": [0, 0], "end": [1, 1], "width": 2}], r"lines\[0\]: unknown key 'width'"),
    ],
)
def test_bad_line_config(lines: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lines_from_config(lines, "streams[1].lines")


def test_dataclasses_validate_too() -> None:
    with pytest.raises(ConfigError, match=r"Zone\.polygon must be a list of at least 3"):
        Zone(name="a", polygon=((0.0, 0.0), (1.0, 1.0)))
    with pytest.raises(ConfigError, match=r"Zone\.polygon must be .*point 0 is \(-0\.1, 0\.0\)"):
        Zone(name="a", polygon=((-0.1, 0.0), (1.0, 0.0), (1.0, 1.0)))
    with pytest.raises(ConfigError, match=r"Line 'g': start and end are the same point"):
        Line(name="g", start=(0.5, 0.5), end=(0.5, 0.5))
    with pytest.raises(ConfigError, match=r"zones\[1\]\.name = 'a' is used twice"):
        ZoneState([Zone(name="a", polygon=SQUARE), Zone(name="a", polygon=SQUARE)], [])
