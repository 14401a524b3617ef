"""Drawing results: boxes land where the result says, nothing else changes, the input is untouched."""

from __future__ import annotations

import numpy as np

from streamer.results import Category, Detection, Detections, FrameResult
from streamer.vision.draw import color_for, draw_result, object_label


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
