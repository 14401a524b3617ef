"""Result types: validated plain data whose ``to_dict()`` is the wire format.

::

    {"stream", "frame", "pts_ms", "width", "height", "timings_ms": {...},
     "classes": [{"class_id", "name", "display_name", "confidence"}, ...],
     "objects": [{"box": [x1, y1, x2, y2], "class_id", "name", "confidence",
                  "classes": [...]}, ...]}

A regression head adds ``"values": [...]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from streamer.errors import ImageError

__all__ = ["Category", "Detection", "FrameResult"]


def _finite(owner: str, name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Category:
    """One class: its id in the model's output, its name, display name and confidence in [0, 1]."""

    class_id: int
    name: str
    display_name: str
    confidence: float

    def __post_init__(self) -> None:
        if self.class_id < 0:
            raise ValueError(f"Category.class_id must be >= 0, got {self.class_id}")
        _finite("Category", "confidence", self.confidence)
        if not 0.0 <= self.confidence <= 1.0 + 1e-6:
            raise ValueError(f"Category.confidence must be in [0, 1], got {self.confidence}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "display_name": self.display_name,
            "confidence": round(self.confidence, 6),
        }


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object: box ``(x1, y1, x2, y2)`` in source pixels and its classes."""

    box: tuple[float, float, float, float]
    class_id: int
    name: str
    confidence: float
    classes: tuple[Category, ...] = ()

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"Detection.box must have 4 numbers (x1, y1, x2, y2), got {len(self.box)}")
        for value in self.box:
            _finite("Detection", "box", value)
        x1, y1, x2, y2 = self.box
        if x2 < x1 or y2 < y1:
            raise ValueError(f"Detection.box must have x1 <= x2 and y1 <= y2, got {list(self.box)}")
        _finite("Detection", "confidence", self.confidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": [round(v, 2) for v in self.box],
            "class_id": self.class_id,
            "name": self.name,
            "confidence": round(self.confidence, 6),
            "classes": [c.to_dict() for c in self.classes],
        }


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything known about one classified frame or image.

    ``stream`` and ``frame`` identify the frame (``""`` and 0 in IMAGE mode);
    ``pts_ms`` is the source's presentation time, or the caller's timestamp.
    ``values`` holds a regression head's outputs (empty otherwise).
    """

    width: int
    height: int
    classes: tuple[Category, ...] = ()
    objects: tuple[Detection, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    stream: str = ""
    frame: int = 0
    pts_ms: float = 0.0
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ImageError(f"FrameResult size must be positive, got {self.width}x{self.height}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stream": self.stream,
            "frame": self.frame,
            "pts_ms": self.pts_ms,
            "width": self.width,
            "height": self.height,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "classes": [c.to_dict() for c in self.classes],
            "objects": [o.to_dict() for o in self.objects],
        }
        if self.values:
            out["values"] = [float(v) for v in self.values]
        return out
