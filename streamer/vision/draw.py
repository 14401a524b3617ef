"""Drawing results onto images: boxes, labels, whole-frame classes. Pure: returns a copy.

Shared by ``streamer draw``, the annotated video writer and anything else
that needs a picture of a :class:`~streamer.results.FrameResult`.
"""

from __future__ import annotations

import cv2
import numpy as np

from streamer.results import Detection, FrameResult

__all__ = ["color_for", "draw_result", "object_label"]

# Distinct, readable colours (RGB); a class keeps its colour across frames.
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
)  # fmt: skip
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(class_id: int) -> tuple[int, int, int]:
    """The RGB colour used for ``class_id``."""
    return _PALETTE[class_id % len(_PALETTE)]


def object_label(obj: Detection) -> str:
    """``"car 87%"``, followed by the best second-stage class when there is one."""
    text = f"{obj.name} {obj.confidence * 100:.0f}%"
    if obj.classes:
        best = obj.classes[0]
        text += f" | {best.display_name} {best.confidence * 100:.0f}%"
    return text


def _text_box(image: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int], scale: float) -> None:
    """Text on a filled box whose top-left corner is (x, y), kept inside the image."""
    thickness = max(1, round(scale * 2))
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x = min(max(0, x), max(0, image.shape[1] - width - 4))
    y = min(max(0, y), max(0, image.shape[0] - height - baseline - 4))
    cv2.rectangle(image, (x, y), (x + width + 4, y + height + baseline + 4), color, cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + 2, y + height + 2), _FONT, scale, ink, thickness, cv2.LINE_AA)


def draw_result(image: np.ndarray, result: FrameResult, *, max_classes: int = 3) -> np.ndarray:
    """A copy of the RGB ``image`` with ``result``'s boxes, labels and top whole-frame classes."""
    canvas = np.ascontiguousarray(image).copy()
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    line = max(1, round(min(canvas.shape[:2]) / 300))
    for obj in result.objects:
        color = color_for(obj.class_id)
        x1, y1, x2, y2 = (round(v) for v in obj.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, line)
        label_height = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + 10
        _text_box(canvas, object_label(obj), x1, y1 - label_height if y1 >= label_height else y1, color, scale)
    for rank, category in enumerate(result.classes[:max_classes]):
        text = f"{category.display_name} {category.confidence * 100:.0f}%"
        step = cv2.getTextSize("Ag", _FONT, scale, 1)[0][1] + 12
        _text_box(canvas, text, 4, 4 + rank * step, (32, 32, 32), scale)
    return canvas
