"""Result types: validation and the wire format."""

from __future__ import annotations

import json

import pytest

from streamer.errors import ImageError
from streamer.results import Category, Detection, FrameResult


def test_wire_format_round_trips_through_json() -> None:
    cat = Category(282, "tiger cat", "Tigerkatze", 0.4)
    obj = Detection((1.0, 2.0, 30.5, 40.25), 15, "cat", 0.9, (cat,))
    result = FrameResult(640, 480, classes=(cat,), objects=(obj,), timings_ms={"inference": 12.3456}, stream="cam1")
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
            }
        ],
    }
    assert FrameResult(1, 1, values=(2.5,)).to_dict()["values"] == [2.5]


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
