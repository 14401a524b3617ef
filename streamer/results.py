"""Result types: validated plain data whose ``to_dict()`` is the wire format.

::

    {"stream", "frame", "pts_ms", "width", "height", "timings_ms": {...},
     "classes": [{"class_id", "name", "display_name", "confidence"}, ...],
     "objects": [{"box": [x1, y1, x2, y2], "class_id", "name", "confidence",
                  "classes": [...], "track_id": int | null,
                  "label": {"class_id", "name", "display_name", "confidence",
                            "votes", "attempts"} | null,
                  "zones": [name, ...]}, ...]}

An object's ``classes`` are the classifier's answer on this frame (empty
where it did not run); ``label`` is its track's settled second-stage class
(null until it settles); ``track_id`` is null while untracked or tentative.
A regression head adds ``"values": [...]``; ``"models"`` names the model
versions that made the result; a stream with zones or lines adds
``"counts": {"zones": {zone: {class: n}}, "lines": {line: {"in": {class: n},
"out": {class: n}}}}``; ``"ended"`` lists the tracks that ended at this frame.

Objects stay arrays (:class:`Detections`) from the detector to ``to_dict``;
iterating them gives :class:`Detection` views, one per object.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np

from streamer.errors import ImageError

__all__ = ["Category", "Detection", "Detections", "FrameResult", "Label"]


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
class Label:
    """A track's settled second-stage class: the class, the mean confidence of the attempts that agreed on
    it, how many agreed (``votes``) and how many the classifier made (``attempts``)."""

    class_id: int
    name: str
    display_name: str
    confidence: float
    votes: int
    attempts: int

    def __post_init__(self) -> None:
        _finite("Label", "confidence", self.confidence)
        if not 0 <= self.votes <= self.attempts:
            raise ValueError(f"Label needs 0 <= votes <= attempts, got {self.votes} and {self.attempts}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "name": self.name,
            "display_name": self.display_name,
            "confidence": round(self.confidence, 6),
            "votes": self.votes,
            "attempts": self.attempts,
        }


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected object: box ``(x1, y1, x2, y2)`` in source pixels and its classes."""

    box: tuple[float, float, float, float]
    class_id: int
    name: str
    confidence: float
    classes: tuple[Category, ...] = ()
    track_id: int | None = None
    label: Label | None = None
    zones: tuple[str, ...] = ()

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
        return _object_dict(
            self.box, self.class_id, self.name, self.confidence, self.classes, self.track_id, self.label, self.zones
        )


def _object_dict(
    box: Sequence[float],
    class_id: int,
    name: str,
    confidence: float,
    classes: tuple[Category, ...],
    track_id: int | None,
    label: Label | None,
    zones: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "box": [round(float(v), 2) for v in box],
        "class_id": class_id,
        "name": name,
        "confidence": round(confidence, 6),
        "classes": [c.to_dict() for c in classes],
        "track_id": track_id,
        "label": None if label is None else label.to_dict(),
        "zones": list(zones),
    }


def _column(owner: str, name: str, value: object, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a ``dtype`` array of ``shape`` (``-1``: any length), or a ValueError saying expected and got."""
    array = np.asarray(value)
    if array.ndim != len(shape) or any(want not in (-1, got) for want, got in zip(shape, array.shape, strict=True)):
        wanted = "[" + ", ".join("K" if n == -1 else str(n) for n in shape) + "]"
        raise ValueError(f"{owner}.{name} must have shape {wanted}, got {list(array.shape)}")
    return np.ascontiguousarray(array, dtype=dtype)


@dataclass(frozen=True, eq=False)
class Detections:
    """The objects of one image as arrays, best first; validated on creation.

    ``boxes`` float32 ``[K, 4]`` ``(x1, y1, x2, y2)`` in source pixels;
    ``scores`` float32 ``[K]``; ``class_ids`` int64 ``[K]``; ``track_ids``
    int64 ``[K]`` (-1: untracked or tentative) or ``None`` (not tracked).
    ``names`` are the class names (empty until the detector's names are
    attached); ``classes`` each object's second-stage classes on this frame
    (empty: not classified); ``labels`` each object's settled label (empty:
    none); ``zones`` the zones each object is in (empty: no zones).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray | None = None
    names: tuple[str, ...] = ()
    classes: tuple[tuple[Category, ...], ...] = ()
    labels: tuple[Label | None, ...] = ()
    zones: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        boxes = _column("Detections", "boxes", self.boxes, np.float32, (-1, 4))
        count = boxes.shape[0]
        set_ = object.__setattr__
        set_(self, "boxes", boxes)
        set_(self, "scores", _column("Detections", "scores", self.scores, np.float32, (count,)))
        set_(self, "class_ids", _column("Detections", "class_ids", self.class_ids, np.int64, (count,)))
        if self.track_ids is not None:
            set_(self, "track_ids", _column("Detections", "track_ids", self.track_ids, np.int64, (count,)))
        for name, items in (
            ("names", self.names),
            ("classes", self.classes),
            ("labels", self.labels),
            ("zones", self.zones),
        ):
            if items and len(items) != count:
                raise ValueError(f"Detections.{name} must have one entry per object ({count}), got {len(items)}")
        if not (np.isfinite(boxes).all() and np.isfinite(self.scores).all()):
            raise ValueError("Detections.boxes and scores must be finite numbers")
        if count and ((boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any()):
            raise ValueError("Detections.boxes must have x1 <= x2 and y1 <= y2")

    @classmethod
    def empty(cls) -> Detections:
        """No objects, with the usual shapes and dtypes (one shared, read-only instance: most frames of a
        whole-frame classifier have none, and building one costs ~20 us)."""
        return _EMPTY

    @classmethod
    def of(cls, objects: Sequence[Detection]) -> Detections:
        """Arrays from :class:`Detection` records (hand-made results, tests)."""
        if not objects:
            return cls.empty()
        tracked = any(o.track_id is not None for o in objects)
        return cls(
            np.array([o.box for o in objects], np.float32).reshape(-1, 4),
            np.array([o.confidence for o in objects], np.float32),
            np.array([o.class_id for o in objects], np.int64),
            np.array([-1 if o.track_id is None else o.track_id for o in objects], np.int64) if tracked else None,
            tuple(o.name for o in objects),
            tuple(o.classes for o in objects),
            tuple(o.label for o in objects) if any(o.label is not None for o in objects) else (),
            tuple(o.zones for o in objects) if any(o.zones for o in objects) else (),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @overload
    def __getitem__(self, index: int) -> Detection: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Detection, ...]: ...
    def __getitem__(self, index: int | slice) -> Detection | tuple[Detection, ...]:
        if isinstance(index, slice):
            return tuple(self._record(i) for i in range(len(self))[index])
        if not -len(self) <= index < len(self):
            raise IndexError(f"object {index} of {len(self)}")
        return self._record(index % len(self))

    def __iter__(self) -> Iterator[Detection]:
        return (self._record(i) for i in range(len(self)))

    def _name(self, i: int) -> str:
        return self.names[i] if self.names else str(int(self.class_ids[i]))

    def _track(self, i: int) -> int | None:
        if self.track_ids is None or self.track_ids[i] < 0:
            return None
        return int(self.track_ids[i])

    def _record(self, i: int) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
        return Detection(
            (x1, y1, x2, y2),
            int(self.class_ids[i]),
            self._name(i),
            float(self.scores[i]),
            self.classes[i] if self.classes else (),
            self._track(i),
            self.labels[i] if self.labels else None,
            self.zones[i] if self.zones else (),
        )

    def select(self, keep: np.ndarray) -> Detections:
        """The objects where the boolean mask ``keep`` is true (or at the given indices), in order."""
        index = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep, np.int64)
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.class_ids[index],
            None if self.track_ids is None else self.track_ids[index],
            tuple(self.names[i] for i in index) if self.names else (),
            tuple(self.classes[i] for i in index) if self.classes else (),
            tuple(self.labels[i] for i in index) if self.labels else (),
            tuple(self.zones[i] for i in index) if self.zones else (),
        )

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same objects with boxes moved by ``(dx, dy)`` (a region's offset in the whole image)."""
        if not dx and not dy:
            return self
        boxes = self.boxes + np.array([dx, dy, dx, dy], np.float32)
        return dataclasses.replace(self, boxes=boxes)

    def with_labels(
        self, *, names: tuple[str, ...] | None = None, classes: tuple[tuple[Category, ...], ...] | None = None
    ) -> Detections:
        """A copy with class names and/or second-stage classes attached."""
        return dataclasses.replace(
            self, names=self.names if names is None else names, classes=self.classes if classes is None else classes
        )

    def with_tracks(
        self,
        track_ids: np.ndarray,
        labels: tuple[Label | None, ...] = (),
        zones: tuple[tuple[str, ...], ...] = (),
    ) -> Detections:
        """A copy with each object's track id (-1: tentative), settled label and zones attached."""
        return dataclasses.replace(self, track_ids=track_ids, labels=labels, zones=zones)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The wire format of every object, straight from the arrays."""
        boxes, scores, ids = self.boxes.tolist(), self.scores.tolist(), self.class_ids.tolist()
        return [
            _object_dict(
                boxes[i],
                ids[i],
                self._name(i),
                scores[i],
                self.classes[i] if self.classes else (),
                self._track(i),
                self.labels[i] if self.labels else None,
                self.zones[i] if self.zones else (),
            )
            for i in range(len(ids))
        ]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


_EMPTY = Detections(
    _read_only(np.zeros((0, 4), np.float32)), _read_only(np.zeros(0, np.float32)), _read_only(np.zeros(0, np.int64))
)


@dataclass(frozen=True, slots=True)
class FrameResult:
    """Everything known about one classified frame or image.

    ``stream`` and ``frame`` identify the frame (``""`` and 0 in IMAGE mode);
    ``pts_ms`` is the source's presentation time, or the caller's timestamp.
    ``values`` holds a regression head's outputs (empty otherwise).
    ``objects`` are :class:`Detections` (a tuple of :class:`Detection` is
    converted). ``models`` maps each stage (``classifier``, ``detector``) to
    the ``name@version`` of the model that ran it. ``counts`` holds the
    stream's zone and line counts (see the module; empty: none), ``ended``
    the ids of the tracks that ended at this frame.
    """

    width: int
    height: int
    classes: tuple[Category, ...] = ()
    objects: Detections = field(default_factory=Detections.empty)
    timings_ms: dict[str, float] = field(default_factory=dict)
    stream: str = ""
    frame: int = 0
    pts_ms: float = 0.0
    values: tuple[float, ...] = ()
    models: Mapping[str, str] = field(default_factory=dict)
    counts: Mapping[str, Any] = field(default_factory=dict)
    ended: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ImageError(f"FrameResult size must be positive, got {self.width}x{self.height}")
        if not isinstance(self.objects, Detections):
            object.__setattr__(self, "objects", Detections.of(tuple(self.objects)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "stream": self.stream,
            "frame": self.frame,
            "pts_ms": self.pts_ms,
            "width": self.width,
            "height": self.height,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "classes": [c.to_dict() for c in self.classes],
            "objects": self.objects.to_dicts(),
        }
        if self.values:
            out["values"] = [float(v) for v in self.values]
        if self.models:
            out["models"] = dict(self.models)
        if self.counts:
            out["counts"] = self.counts
        if self.ended:
            out["ended"] = list(self.ended)
        return out
