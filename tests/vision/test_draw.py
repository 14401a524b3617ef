"""Drawing results: boxes land where the result says, nothing else changes, the input is untouched."""

from __future__ import annotations

import cv2
import numpy as np

from streamer.results import Category, Detection, Detections, FrameResult, Label
from streamer.vision.draw import color_for, draw_result, object_label, place_label


def test_box_edges_are_drawn_in_the_class_colour() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    obj = Detection((50.0, 80.0, 150.0, 180.0), 2, "car", 0.87)
    out = draw_result(image, FrameResult(300, 200, objects=Detections.of([obj])))
    assert out is not image and not image.any(), "the input stays as it was"
    color = list(color_for(2))
    assert out[130, 50].tolist() == color and out[130, 150].tolist() == color, "left and right edges"
    assert out[180, 100].tolist() == color, "bottom edge"
    assert not out[130, 100].any(), "inside the box is untouched"
    assert not out[10:40, 200:].any(), "far from the box is untouched"
    assert out[60:80, 50:120].any(), "the label sits above the box"


def test_labels_and_whole_frame_classes() -> None:
    espresso = Category(967, "espresso", "Espresso", 0.9)
    cup = Detection((0.0, 0.0, 10.0, 10.0), 41, "cup", 0.6, (espresso,))
    assert object_label(cup) == "cup 60% | Espresso 90%"
    assert object_label(Detection((0.0, 0.0, 1.0, 1.0), 0, "person", 0.5)) == "person 50%"
    out = draw_result(np.zeros((100, 200, 3), np.uint8), FrameResult(200, 100, classes=(espresso,)))
    assert out[:30, :100].any() and not out[60:, :].any(), "the class list is written top left"


def _label_rects(out: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """The pixels of ``out`` filled with ``color`` exactly (labels' boxes and box edges)."""
    filled: np.ndarray = np.all(out == np.array(color, np.uint8), axis=-1)
    return filled


def test_tracked_objects_show_their_id_and_settled_label() -> None:
    espresso = Category(967, "espresso", "Espresso", 0.9)
    settled = Label(967, "espresso", "Espresso", 0.91, 4, 5)
    cup = Detection((0.0, 0.0, 10.0, 10.0), 41, "cup", 0.6, (espresso,), track_id=12, label=settled)
    assert object_label(cup) == "#12 cup 60% | Espresso 91%", "the settled label wins over this frame's class"
    frame_only = Detection((0.0, 0.0, 10.0, 10.0), 41, "cup", 0.6, (espresso,), track_id=3)
    assert object_label(frame_only) == "#3 cup 60% | Espresso 90%"


def test_a_label_goes_above_its_box_else_inside_and_always_in_the_image() -> None:
    assert place_label((50, 80, 150, 180), (60, 20), (300, 200)) == (50, 60, 60, 20), "above"
    assert place_label((50, 10, 150, 180), (60, 20), (300, 200)) == (50, 10, 60, 20), "inside, top edge"
    assert place_label((280, 80, 299, 180), (60, 20), (300, 200)) == (240, 60, 60, 20), "pulled left"
    assert place_label((-30, -10, 20, 20), (60, 20), (300, 200)) == (0, 0, 60, 20), "pulled in"
    assert place_label((0, 199, 10, 200), (60, 20), (300, 200)) == (0, 179, 60, 20), "above at the bottom"
    assert place_label((10, 10, 20, 20), (400, 300), (300, 200)) == (0, 0, 400, 300), "too large: top left"


def test_a_label_moves_past_the_labels_already_placed() -> None:
    first = place_label((40, 5, 100, 100), (60, 20), (300, 200))
    assert first == (40, 5, 60, 20)
    second = place_label((50, 8, 120, 90), (70, 20), (300, 200), [first])
    assert second == (50, 25, 70, 20), "moved down past the first"
    third = place_label((45, 6, 120, 90), (70, 20), (300, 200), [first, second])
    assert third == (45, 45, 70, 20), "and past the second"
    # No room below: up past the others from where it started.
    low = [(0, 160, 100, 20), (0, 180, 100, 20)]
    assert place_label((10, 185, 50, 200), (60, 20), (300, 200), low) == (10, 140, 60, 20)


def test_overlapping_boxes_at_the_top_get_whole_labels_that_do_not_overlap() -> None:
    image = np.zeros((120, 240, 3), np.uint8)
    cups = [
        Detection((20.0, 2.0, 120.0, 100.0), 41, "cup", 0.58, track_id=1),
        Detection((30.0, 6.0, 140.0, 110.0), 41, "cup", 0.61, track_id=2),
    ]
    out = draw_result(image, FrameResult(240, 120, objects=Detections.of(cups)))
    scale = max(0.4, 120 / 900)
    rects: list[tuple[int, int, int, int]] = []
    for cup in sorted(cups, key=lambda c: c.box[1]):
        (w, h), base = cv2.getTextSize(object_label(cup), cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        rect = place_label(cup.box, (w + 4, h + base + 4), (240, 120), rects)
        rects.append(rect)
    for x, y, w, h in rects:
        assert x >= 0 and x + w <= 240 and y >= 0 and y + h <= 120, rects
    (_, ay, _, ah), (_, by, _, bh) = rects
    assert ay + ah <= by or by + bh <= ay, f"the labels overlap: {rects}"
    # Both labels are on the picture: each one's box is filled with the class colour across its width.
    filled = _label_rects(out, color_for(41))
    for x, y, w, h in rects:
        row = filled[y + 1, x : x + w]
        assert row[:2].all() and row[-2:].all(), (x, y, w, h)
