"""The event state machine on hand-made results with explicit times."""

from __future__ import annotations

import itertools
import json

import pytest

from streamer.events.machine import Event, EventMachine
from streamer.results import Detection, Detections, FrameResult, Label

CAR = Label(3, "sedan", "Sedan", 0.9, 3, 4)
VAN = Label(4, "van", "Van", 0.8, 3, 5)


def ids() -> EventMachine:
    counter = itertools.count(1)
    return EventMachine(new_id=lambda: f"{next(counter):032x}")


def obj(
    track: int | None,
    box: tuple[float, float, float, float] = (10, 10, 110, 60),
    score: float = 0.8,
    *,
    name: str = "car",
    label: Label | None = None,
    zones: tuple[str, ...] = (),
) -> Detection:
    return Detection(box, 2, name, score, track_id=track, label=label, zones=zones)


def frame(*objects: Detection, stream: str = "cam", ended: tuple[int, ...] = (), index: int = 0) -> FrameResult:
    return FrameResult(640, 480, objects=Detections.of(objects), stream=stream, frame=index, ended=ended)


def test_new_event_has_no_before_and_full_state() -> None:
    machine = ids()
    [event] = machine.update(frame(obj(7, zones=("door",), label=CAR)), 100.0)
    assert (event.id, event.kind, event.reasons, event.before, event.snapshot) == (
        "0" * 31 + "1",
        "new",
        (),
        None,
        True,
    )
    state = event.after
    assert (state.stream, state.track_id, state.label, state.sub_label) == ("cam", 7, "car", CAR)
    assert state.zones == ("door",) and state.entered_zones == ("door",)
    assert state.first_seen == state.last_seen == 100.0
    assert state.box == (10.0, 10.0, 110.0, 60.0) and state.frame_size == (640, 480)
    assert state.score == pytest.approx(0.8) and state.top_score == pytest.approx(0.8)
    assert state.snapshot_score == pytest.approx(0.8 * 100 * 50)
    assert machine.open() == 1


def test_unchanged_track_makes_no_event_but_state_moves_on() -> None:
    machine = ids()
    machine.update(frame(obj(1, score=0.8)), 1.0)
    assert machine.update(frame(obj(1, score=0.7)), 2.0) == []
    [end] = machine.update(frame(ended=(1,)), 3.0)
    assert end.after.last_seen == 2.0 and end.after.score == pytest.approx(0.7)
    assert end.after.top_score == pytest.approx(0.8)


def test_zone_entered_and_left() -> None:
    machine = ids()
    machine.update(frame(obj(1)), 1.0)
    [entered] = machine.update(frame(obj(1, zones=("door",))), 2.0)
    assert entered.kind == "update" and entered.reasons == ("zone",) and not entered.snapshot
    assert entered.before is not None and entered.before.zones == () and entered.after.zones == ("door",)
    [both] = machine.update(frame(obj(1, zones=("door", "yard"))), 3.0)
    assert both.after.entered_zones == ("door", "yard")
    [left] = machine.update(frame(obj(1, zones=("yard",))), 4.0)
    assert left.reasons == ("zone",) and left.after.zones == ("yard",)
    assert left.after.entered_zones == ("door", "yard")
    assert machine.update(frame(obj(1, zones=("yard",))), 5.0) == []


def test_label_settles_then_changes_and_is_kept_when_missing() -> None:
    machine = ids()
    machine.update(frame(obj(1)), 1.0)
    [settled] = machine.update(frame(obj(1, label=CAR)), 2.0)
    assert settled.reasons == ("label",) and settled.before is not None
    assert settled.before.sub_label is None and settled.after.sub_label == CAR
    # the same class with a new confidence is not a change; a frame without a label keeps the settled one
    assert machine.update(frame(obj(1, label=Label(3, "sedan", "Sedan", 0.95, 4, 5))), 3.0) == []
    assert machine.update(frame(obj(1)), 4.0) == []
    [changed] = machine.update(frame(obj(1, label=VAN)), 5.0)
    assert changed.reasons == ("label",) and changed.after.sub_label == VAN
    assert changed.before is not None and changed.before.sub_label is not None
    assert changed.before.sub_label.name == "sedan"


def test_snapshot_only_when_better_by_the_gain() -> None:
    machine = ids()
    machine.update(frame(obj(1, (0, 0, 100, 100), 0.5)), 1.0)  # 5000
    assert machine.update(frame(obj(1, (0, 0, 100, 100), 0.54)), 2.0) == []  # 5400 < 5500
    [better] = machine.update(frame(obj(1, (0, 0, 100, 100), 0.6)), 3.0)  # 6000 > 5500
    assert better.reasons == ("snapshot",) and better.snapshot
    assert better.before is not None and better.before.snapshot_score == pytest.approx(5000)
    assert better.after.snapshot_score == pytest.approx(6000)
    assert machine.update(frame(obj(1, (0, 0, 100, 100), 0.3)), 4.0) == []


def test_one_update_per_track_per_frame_with_all_reasons() -> None:
    machine = ids()
    machine.update(frame(obj(1, (0, 0, 10, 10))), 1.0)
    bigger = obj(1, (0, 0, 200, 200), label=CAR, zones=("door",))
    [event] = machine.update(frame(bigger, obj(1, (0, 0, 5, 5))), 2.0)  # a duplicate id counts once
    assert event.kind == "update" and event.reasons == ("label", "zone", "snapshot") and event.snapshot


def test_ended_tracks_end_and_are_dropped() -> None:
    machine = ids()
    new = machine.update(frame(obj(1), obj(2, (200, 200, 300, 300))), 1.0)
    assert [e.kind for e in new] == ["new", "new"]
    events = machine.update(frame(obj(2, (200, 200, 300, 300)), ended=(1, 99)), 2.0)  # 99 was never seen
    [end] = events
    assert (end.kind, end.reasons, end.id, end.snapshot) == ("end", ("track",), new[0].id, False)
    assert end.before == end.after and end.after.last_seen == 1.0
    wire = end.to_dict()
    assert wire["end_time"] == 1.0 and wire["start_time"] == 1.0
    assert machine.open() == 1
    assert machine.update(frame(ended=(1,)), 3.0) == []  # already gone


def test_a_track_seen_again_after_its_end_is_a_new_event() -> None:
    machine = ids()
    [first] = machine.update(frame(obj(1)), 1.0)
    machine.update(frame(ended=(1,)), 2.0)
    [again] = machine.update(frame(obj(1)), 3.0)
    assert again.kind == "new" and again.id != first.id


def test_tentative_and_untracked_objects_are_not_events() -> None:
    machine = ids()
    assert machine.update(frame(obj(-1), obj(-1, (5, 5, 9, 9))), 1.0) == []
    assert machine.update(frame(obj(None)), 2.0) == []  # no track ids at all
    [event] = machine.update(frame(obj(-1), obj(4)), 3.0)
    assert event.after.track_id == 4 and machine.open() == 1


def test_end_stream_ends_only_that_stream() -> None:
    machine = ids()
    machine.update(frame(obj(2), obj(1, (0, 0, 9, 9)), stream="a"), 1.0)
    machine.update(frame(obj(1), stream="b"), 1.0)
    ends = machine.end_stream("a", 2.0)
    assert [(e.kind, e.reasons, e.after.stream, e.after.track_id) for e in ends] == [
        ("end", ("stream",), "a", 1),
        ("end", ("stream",), "a", 2),
    ]
    assert machine.open() == 1 and machine.streams() == ["b"]
    assert [e.after.stream for e in machine.end_all(3.0)] == ["b"] and machine.open() == 0


def test_the_same_track_id_on_two_streams_is_two_events() -> None:
    machine = ids()
    [a] = machine.update(frame(obj(1), stream="a"), 1.0)
    [b] = machine.update(frame(obj(1), stream="b"), 1.0)
    assert a.id != b.id and machine.open() == 2


def test_memory_is_bounded_by_open_tracks() -> None:
    machine = ids()
    for i in range(5000):
        events = machine.update(frame(obj(i), ended=(i - 1,) if i else ()), float(i))
        assert [e.kind for e in events] == (["new", "end"] if i else ["new"])
    assert machine.open() == 1


def test_tracks_not_seen_for_stale_s_end() -> None:
    counter = itertools.count(1)
    machine = EventMachine(stale_s=10.0, new_id=lambda: f"{next(counter):032x}")
    machine.update(frame(obj(1), obj(2, (0, 0, 9, 9))), 0.0)
    assert machine.update(frame(obj(2, (0, 0, 9, 9))), 9.0) == []
    [stale] = machine.update(frame(obj(2, (0, 0, 9, 9))), 10.5)
    assert (stale.kind, stale.reasons, stale.after.track_id) == ("end", ("stale",), 1)
    assert machine.open() == 1


def test_to_dict_is_the_wire_shape() -> None:
    machine = ids()
    machine.update(frame(obj(1)), 1.0)
    [event] = machine.update(frame(obj(1, label=CAR, zones=("door",))), 2.5)
    wire = json.loads(json.dumps(event.to_dict()))
    assert set(wire) == {
        "id", "kind", "reasons", "stream", "track_id", "label", "sub_label", "score", "top_score",
        "zones", "entered_zones", "start_time", "end_time", "box", "frame_size", "before",
    }  # fmt: skip
    assert wire["sub_label"] == CAR.to_dict() and wire["reasons"] == ["label", "zone"]
    assert wire["start_time"] == 1.0 and wire["end_time"] is None and wire["frame_size"] == [640, 480]
    assert wire["before"]["zones"] == [] and wire["before"]["sub_label"] is None
    assert wire["box"] == [10.0, 10.0, 110.0, 60.0]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="snapshot_gain"):
        EventMachine(snapshot_gain=0.5)
    with pytest.raises(ValueError, match="stale_s"):
        EventMachine(stale_s=0.0)


def test_default_ids_are_url_safe_hex() -> None:
    [event] = EventMachine().update(frame(obj(1)), 1.0)
    assert isinstance(event, Event) and len(event.id) == 32 and set(event.id) <= set("0123456789abcdef")
