"""Result types: validation and the wire format."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamer.errors import ImageError
from streamer.results import Category, Detection, Detections, FrameResult, Label


def test_wire_format_round_trips_through_json() -> None:
    cat = Category(282, "tiger cat", "Tigerkatze", 0.4)
    obj = Detection((1.0, 2.0, 30.5, 40.25), 15, "cat", 0.9, (cat,))
    objects = Detections.of([obj])
    result = FrameResult(640, 480, classes=(cat,), objects=objects, timings_ms={"inference": 12.3456}, stream="cam1")
    wire = json.loads(json.dumps(result.to_dict()))
    assert wire == {
        "stream": "cam1",
        "frame": 0,
        "pts_ms": 0.0,
        "width": 640,
        "height": 480,
        "timings_ms": {"inference": 12.346},
        "classes": [{"class_id": 282, "name": "tiger cat", "display_name": "Tigerkatze", "confidence": 0.4}],
        "objects": [
            {
                "box": [1.0, 2.0, 30.5, 40.25],
                "class_id": 15,
                "name": "cat",
                "confidence": 0.9,
                "classes": [{"class_id": 282, "name": "tiger cat", "display_name": "Tigerkatze", "confidence": 0.4}],
                "track_id": None,
                "label": None,
                "zones": [],
            }
        ],
    }
    assert FrameResult(1, 1, values=(2.5,)).to_dict()["values"] == [2.5]


def test_a_tracked_object_carries_its_id_settled_label_and_zones() -> None:
    label = Label(282, "tiger cat", "Tigerkatze", 0.7, votes=2, attempts=3)
    objects = Detections(np.array([[0, 0, 10, 10], [1, 1, 5, 5]]), np.array([0.9, 0.3]), np.array([15, 15]))
    tracked = objects.with_tracks(np.array([7, -1]), (label, None), (("door",), ()))
    result = FrameResult(20, 20, objects=tracked, counts={"zones": {"door": {"cat": 1}}}, ended=(3,)).to_dict()
    first, second = result["objects"]
    assert (first["track_id"], first["zones"]) == (7, ["door"])
    assert first["label"] == {
        "class_id": 282,
        "name": "tiger cat",
        "display_name": "Tigerkatze",
        "confidence": 0.7,
        "votes": 2,
        "attempts": 3,
    }
    assert (second["track_id"], second["label"], second["zones"]) == (None, None, [])
    assert result["counts"] == {"zones": {"door": {"cat": 1}}} and result["ended"] == [3]
    assert tracked[0].label == label and tracked[0].zones == ("door",) and tracked[1].label is None
    assert tracked.select(np.array([1, 0])).labels == (None, label), "select keeps each object's label"
    assert Detections.of(list(tracked)).zones == (("door",), ())
    with pytest.raises(ValueError, match=r"labels must have one entry per object \(2\), got 1"):
        objects.with_tracks(np.array([7, -1]), (label,))
    with pytest.raises(ValueError, match="0 <= votes <= attempts, got 4 and 3"):
        Label(1, "a", "a", 0.5, votes=4, attempts=3)


def test_invalid_values_say_expected_and_got() -> None:
    with pytest.raises(ValueError, match=r"confidence must be in \[0, 1\], got 1.5"):
        Category(0, "a", "a", 1.5)
    with pytest.raises(ValueError, match="finite number, got nan"):
        Category(0, "a", "a", float("nan"))
    with pytest.raises(ValueError, match="class_id must be >= 0, got -1"):
        Category(-1, "a", "a", 0.5)
    with pytest.raises(ValueError, match=r"box must have 4 numbers \(x1, y1, x2, y2\), got 3"):
        Detection((1.0, 2.0, 3.0), 0, "a", 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"x1 <= x2 and y1 <= y2, got \[5.0, 0.0, 1.0, 1.0\]"):
        Detection((5.0, 0.0, 1.0, 1.0), 0, "a", 0.5)
    with pytest.raises(ImageError, match="size must be positive, got 0x10"):
        FrameResult(0, 10)


def test_detections_stay_arrays_and_say_expected_shapes() -> None:
    found = Detections(
        np.array([[0, 0, 10, 10], [5, 5, 6, 9]]), np.array([0.9, 0.4]), np.array([2, 7]), np.array([12, -1])
    )
    assert found.boxes.dtype == np.float32 and found.class_ids.dtype == np.int64 and len(found) == 2
    assert [o.name for o in found] == ["2", "7"]  # class ids until the detector's names are attached
    named = found.with_labels(names=("car", "dog"))
    assert named[0].track_id == 12 and named[1].track_id is None and named[-1].name == "dog"
    assert named.to_dicts()[0] == {
        "box": [0.0, 0.0, 10.0, 10.0],
        "class_id": 2,
        "name": "car",
        "confidence": 0.9,
        "classes": [],
        "track_id": 12,
        "label": None,
        "zones": [],
    }
    assert named.to_dicts()[1]["track_id"] is None  # -1: not tracked (or tentative)
    kept = named.select(np.array([False, True])).shifted(100, 200)
    assert kept.names == ("dog",) and kept.boxes.tolist() == [[105.0, 205.0, 106.0, 209.0]]
    with pytest.raises(ValueError, match=r"boxes must have shape \[K, 4\], got \[2, 3\]"):
        Detections(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"scores must have shape \[2\], got \[3\]"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"names must have one entry per object \(2\), got 1"):
        Detections(np.zeros((2, 4)), np.zeros(2), np.zeros(2), names=("a",))
    with pytest.raises(ValueError, match="x1 <= x2"):
        Detections(np.array([[5.0, 0, 1, 1]]), np.ones(1), np.zeros(1))
    with pytest.raises(IndexError):
        named[2]


def test_results_name_the_models_that_made_them() -> None:
    result = FrameResult(2, 2, models={"classifier": "efficientnet-lite0@0123456789ab"})
    assert result.to_dict()["models"] == {"classifier": "efficientnet-lite0@0123456789ab"}
    assert "models" not in FrameResult(2, 2).to_dict()
