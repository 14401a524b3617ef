"""Drawing results onto images: boxes, labels, whole-frame classes. Pure: returns a copy.

Shared by ``streamer draw``, the annotated video writer and anything else
that needs a picture of a :class:`~streamer.results.FrameResult`.

Labels are placed by :func:`place_label`: above their box where that fits,
else just inside its top edge, always wholly inside the image, and moved
down (or up) past the labels already placed, so two close boxes never
write over each other's labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from streamer.results import Detection, FrameResult

__all__ = ["color_for", "draw_result", "object_label", "place_label"]

# Distinct, readable colours (RGB); a class keeps its colour across frames.
_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
)  # fmt: skip
_FONT = cv2.FONT_HERSHEY_SIMPLEX

Rect = tuple[int, int, int, int]
"""``(x, y, width, height)`` in pixels, ``(x, y)`` the top-left corner."""


def color_for(class_id: int) -> tuple[int, int, int]:
    """The RGB colour used for ``class_id``."""
    return _PALETTE[class_id % len(_PALETTE)]


def object_label(obj: Detection) -> str:
    """``"car 87%"``; ``"#12 car 87%"`` when tracked; then the track's settled label, or else the best
    second-stage class of this frame, when there is one (``"#12 cup 60% | Espresso 91%"``)."""
    text = f"{obj.name} {obj.confidence * 100:.0f}%"
    if obj.track_id is not None:
        text = f"#{obj.track_id} {text}"
    if obj.label is not None:
        text += f" | {obj.label.display_name or obj.label.name} {obj.label.confidence * 100:.0f}%"
    elif obj.classes:
        best = obj.classes[0]
        text += f" | {best.display_name} {best.confidence * 100:.0f}%"
    return text


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _free(rect: Rect, placed: Sequence[Rect]) -> Rect | None:
    """The first of ``placed`` that ``rect`` overlaps, or ``None``."""
    return next((other for other in placed if _overlaps(rect, other)), None)


def place_label(
    box: tuple[float, float, float, float],
    size: tuple[int, int],
    image_size: tuple[int, int],
    placed: Sequence[Rect] = (),
) -> Rect:
    """Where a ``size`` ``(width, height)`` label for ``box`` ``(x1, y1, x2, y2)`` goes in an image of
    ``image_size`` ``(width, height)``, avoiding the ``placed`` labels. Pure.

    Above the box, left-aligned with it, where that fits; else just inside its top edge. Always wholly
    inside the image (a label larger than the image starts at its top-left corner). A label that would
    overlap a placed one moves down past it, again and again; if that runs off the bottom, up past them
    from where it started; if neither finds room it keeps its first place.
    """
    width, height = size
    image_w, image_h = image_size
    x1, y1 = round(box[0]), round(box[1])
    x = max(0, min(x1, image_w - width))
    y = y1 - height if y1 - height >= 0 else y1
    y = max(0, min(y, image_h - height))
    first: Rect = (x, y, width, height)
    for step in (1, -1):  # down past the others, then up past them
        rect = first
        while (other := _free(rect, placed)) is not None:
            y = other[1] + other[3] if step > 0 else other[1] - height
            if y < 0 or y + height > image_h:
                break
            rect = (x, y, width, height)
        else:
            return rect
    return first


def _text_box(image: np.ndarray, text: str, rect: Rect, color: tuple[int, int, int], scale: float) -> None:
    """``text`` on a filled box at ``rect`` (from :func:`_text_size`)."""
    thickness = _thickness(scale)
    x, y, width, height = rect
    cv2.rectangle(image, (x, y), (x + width - 1, y + height - 1), color, cv2.FILLED)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    text_height = cv2.getTextSize(text, _FONT, scale, thickness)[0][1]
    cv2.putText(image, text, (x + 2, y + text_height + 2), _FONT, scale, ink, thickness, cv2.LINE_AA)


def _thickness(scale: float) -> int:
    return max(1, round(scale * 2))


def _text_size(text: str, scale: float) -> tuple[int, int]:
    """The filled box around ``text``: its width and height in pixels, with a 2-pixel margin."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, _thickness(scale))
    return width + 4, height + baseline + 4


def draw_result(image: np.ndarray, result: FrameResult, *, max_classes: int = 3) -> np.ndarray:
    """A copy of the RGB ``image`` with ``result``'s boxes, labels and top whole-frame classes."""
    canvas = np.ascontiguousarray(image).copy()
    image_size = (canvas.shape[1], canvas.shape[0])
    scale = max(0.4, min(canvas.shape[:2]) / 900)
    line = max(1, round(min(canvas.shape[:2]) / 300))
    objects = list(result.objects)
    for obj in objects:
        x1, y1, x2, y2 = (round(v) for v in obj.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color_for(obj.class_id), line)
    placed: list[Rect] = []
    for category in result.classes[:max_classes]:
        text = f"{category.display_name} {category.confidence * 100:.0f}%"
        width, height = _text_size(text, scale)
        rect = place_label((4, 4, 4, 4), (width, height), image_size, placed)  # stacked top left
        _text_box(canvas, text, rect, (32, 32, 32), scale)
        placed.append(rect)
    # Labels after every box, top boxes first, so that no box is drawn over a label.
    for obj in sorted(objects, key=lambda o: (o.box[1], o.box[0])):
        text = object_label(obj)
        rect = place_label(obj.box, _text_size(text, scale), image_size, placed)
        _text_box(canvas, text, rect, color_for(obj.class_id), scale)
        placed.append(rect)
    return canvas
