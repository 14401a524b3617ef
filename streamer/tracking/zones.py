"""Zones and lines: which tracked objects are in which area, and who crossed which line (pure; no I/O).

An object is placed by its box's bottom centre (where it stands), in 0..1
image coordinates (x right, y down), so a zone drawn on the floor works for
people and cars alike.

* **Zones.** A polygon (even-odd rule). An object *enters* after ``inertia``
  consecutive frames inside and *leaves* after ``inertia`` consecutive frames
  outside, so jitter at the edge does not flap. With ``loitering_s > 0`` it
  counts as in the zone only once it has stayed that long (measured from the
  first of the inside frames that made it enter). Objects of classes the zone
  does not list are never in it.
* **Lines.** A segment ``start -> end``. An object crosses it when the segment
  between its last point off the line and its current point intersects the
  line segment. Seen on the image (y down), walking from ``start`` to ``end``:
  crossing from the left-hand side to the right-hand side is ``"in"``, the
  other way ``"out"``. A horizontal line drawn left to right therefore counts
  downward motion as ``"in"``. Touching the line and going back counts nothing.

Call order, per stream: :meth:`ZoneState.update` once per inferred frame in
time order, :meth:`ZoneState.forget` when the tracker ends a track; read
:meth:`ZoneState.counts` and :meth:`ZoneState.geometry` at any time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.errors import ConfigError

__all__ = [
    "Crossing",
    "Line",
    "Zone",
    "ZoneState",
    "ZoneUpdate",
    "geometry",
    "lines_from_config",
    "points_in_polygon",
    "zones_from_config",
]

MAX_POINTS = 256
"""Most points a zone polygon may have."""
MAX_NAME = 64
"""Longest zone or line name, in characters."""

Point = tuple[float, float]

_POLYGON_RULE = "a list of at least 3 [x, y] pairs in 0..1"
_POINT_RULE = "an [x, y] pair in 0..1"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _name(value: object, key: str) -> str:
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_NAME
        or any(not ch.isprintable() for ch in value)
    ):
        raise ConfigError(
            f"{key} must be a non-empty printable name of at most {MAX_NAME} characters, got {_shown(value)}"
        )
    return value


def _coordinate(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if 0.0 <= number <= 1.0 else None  # also rejects NaN


def _point(value: object) -> Point | None:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    x, y = _coordinate(value[0]), _coordinate(value[1])
    return None if x is None or y is None else (x, y)


def _single_point(value: object, key: str) -> Point:
    point = _point(value)
    if point is None:
        raise ConfigError(f"{key} must be {_POINT_RULE}, got {_shown(value)}")
    return point


def _polygon(value: object, key: str) -> tuple[Point, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not 3 <= len(value) <= MAX_POINTS:
        raise ConfigError(f"{key} must be {_POLYGON_RULE} (at most {MAX_POINTS}), got {_shown(value)}")
    points = [_point(item) for item in value]
    bad = [i for i, point in enumerate(points) if point is None]
    if bad:
        raise ConfigError(f"{key} must be {_POLYGON_RULE}; point {bad[0]} is {_shown(value[bad[0]])}")
    polygon = tuple(p for p in points if p is not None)
    xs = np.array([p[0] for p in polygon])
    ys = np.array([p[1] for p in polygon])
    area = 0.5 * abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))))
    if area < 1e-9:
        raise ConfigError(f"{key} encloses no area (its points lie on one line), got {_shown(value)}; draw a polygon")
    return polygon


def _classes(value: object, key: str) -> tuple[str, ...]:
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or any(not isinstance(item, str) or not item.strip() for item in value)
    ):
        raise ConfigError(
            f'{key} must be a list of detector class names such as ["person", "car"], got {_shown(value)}'
        )
    return tuple(str(item) for item in value)


def _whole(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be a whole number of frames >= 1, got {_shown(value)}")
    return value


def _seconds(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
        raise ConfigError(f"{key} must be a number of seconds >= 0, got {_shown(value)}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class Zone:
    """A named area. Invalid fields raise :class:`ConfigError` naming ``Zone.<field>``."""

    name: str
    polygon: tuple[Point, ...]
    """At least 3 points, in 0..1 image coordinates; they must enclose some area."""
    classes: tuple[str, ...] = ()
    """Detector class names that can be in the zone; empty: all."""
    inertia: int = 3
    """Consecutive frames inside (outside) before an object enters (leaves)."""
    loitering_s: float = 0.0
    """When > 0, an object counts as in the zone only after staying this long."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _name(self.name, "Zone.name"))
        object.__setattr__(self, "polygon", _polygon(self.polygon, "Zone.polygon"))
        object.__setattr__(self, "classes", _classes(self.classes, "Zone.classes"))
        object.__setattr__(self, "inertia", _whole(self.inertia, "Zone.inertia"))
        object.__setattr__(self, "loitering_s", _seconds(self.loitering_s, "Zone.loitering_s"))


@dataclass(frozen=True, kw_only=True)
class Line:
    """A named counting line from ``start`` to ``end``; ``"in"`` is crossing from its left to its right
    (seen on the image, y down, facing from start to end). Invalid fields raise :class:`ConfigError`."""

    name: str
    start: Point
    end: Point
    classes: tuple[str, ...] = ()
    """Detector class names counted; empty: all."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _name(self.name, "Line.name"))
        object.__setattr__(self, "start", _single_point(self.start, "Line.start"))
        object.__setattr__(self, "end", _single_point(self.end, "Line.end"))
        object.__setattr__(self, "classes", _classes(self.classes, "Line.classes"))
        if math.dist(self.start, self.end) < 1e-6:
            raise ConfigError(f"Line {self.name!r}: start and end are the same point; give two distinct points")


def _tables(value: object, where: str, example: str) -> list[Mapping[str, object]]:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str) or any(not isinstance(t, Mapping) for t in value):
        raise ConfigError(f"{where} must be a list of tables ({example}), got {_shown(value)}")
    return list(value)


def _keys(table: Mapping[str, object], key: str, required: Sequence[str], optional: Sequence[str]) -> None:
    known = [*required, *optional]
    unknown = sorted(str(k) for k in table if k not in known)
    if unknown:
        raise ConfigError(f"{key}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise ConfigError(f"{key} has no {missing[0]}; give {' and '.join(required)}")


def _unique(names: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ConfigError(f"{where}[{i}].name = {name!r} is used twice; give each its own name")
        seen.add(name)


def zones_from_config(value: object, where: str) -> tuple[Zone, ...]:
    """Zones from the TOML list of ``[[streams.zones]]`` tables (``None``: no zones).

    ``where`` names the list in messages, e.g. ``"streams[0].zones"``. Unknown keys, bad values and
    duplicate names raise :class:`ConfigError` naming the key, e.g. ``streams[0].zones[1].polygon``.
    """
    zones: list[Zone] = []
    for i, table in enumerate(_tables(value, where, 'name = "door", polygon = [[x, y], ...]')):
        key = f"{where}[{i}]"
        _keys(table, key, ("name", "polygon"), ("classes", "inertia", "loitering_s"))
        zones.append(
            Zone(
                name=_name(table["name"], f"{key}.name"),
                polygon=_polygon(table["polygon"], f"{key}.polygon"),
                classes=_classes(table.get("classes", ()), f"{key}.classes"),
                inertia=_whole(table.get("inertia", 3), f"{key}.inertia"),
                loitering_s=_seconds(table.get("loitering_s", 0.0), f"{key}.loitering_s"),
            )
        )
    _unique([z.name for z in zones], where)
    return tuple(zones)


def lines_from_config(value: object, where: str) -> tuple[Line, ...]:
    """Lines from the TOML list of ``[[streams.lines]]`` tables (``None``: no lines); errors as
    :func:`zones_from_config`."""
    lines: list[Line] = []
    for i, table in enumerate(_tables(value, where, 'name = "gate", start = [x, y], end = [x, y]')):
        key = f"{where}[{i}]"
        _keys(table, key, ("name", "start", "end"), ("classes",))
        start = _single_point(table["start"], f"{key}.start")
        end = _single_point(table["end"], f"{key}.end")
        if math.dist(start, end) < 1e-6:
            raise ConfigError(f"{key}: start and end are the same point {list(start)}; give two distinct points")
        lines.append(
            Line(
                name=_name(table["name"], f"{key}.name"),
                start=start,
                end=end,
                classes=_classes(table.get("classes", ()), f"{key}.classes"),
            )
        )
    _unique([line.name for line in lines], where)
    return tuple(lines)


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each of ``points`` (n, 2) is inside ``polygon`` (m, 2), by the even-odd rule; bool (n,)."""
    px = points[:, 0:1]
    py = points[:, 1:2]
    xi, yi = polygon[:, 0], polygon[:, 1]
    xj, yj = np.roll(xi, -1), np.roll(yi, -1)
    straddles = (yi > py) != (yj > py)  # (n, m): the edge spans the point's height
    height = np.where(yj == yi, 1.0, yj - yi)
    x_cross = xi + (py - yi) * (xj - xi) / height
    crossings = straddles & (px < x_cross)
    return np.asarray(np.count_nonzero(crossings, axis=1) % 2 == 1)


def geometry(zones: Sequence[Zone], lines: Sequence[Line]) -> dict[str, list[dict[str, Any]]]:
    """Zones and lines as plain data for the page and ``/api/streams``, in 0..1 image coordinates."""
    return {
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon], "classes": list(z.classes)} for z in zones],
        "lines": [
            {"name": ln.name, "start": list(ln.start), "end": list(ln.end), "classes": list(ln.classes)} for ln in lines
        ],
    }


@dataclass(frozen=True)
class Crossing:
    """A track crossed a line: ``direction`` is ``"in"`` (left to right, see :class:`Line`) or ``"out"``."""

    track_id: int
    line: str
    direction: str
    class_name: str


@dataclass(frozen=True)
class ZoneUpdate:
    """What one :meth:`ZoneState.update` found."""

    zones: tuple[tuple[str, ...], ...]
    """Per input object, the zones it is in now (after inertia and loitering); ``()`` for untracked objects."""
    entered: tuple[tuple[int, str], ...]
    """``(track_id, zone)`` pairs that entered at this update."""
    left: tuple[tuple[int, str], ...]
    """``(track_id, zone)`` pairs that left at this update."""
    crossings: tuple[Crossing, ...]


@dataclass(slots=True)
class _Presence:
    """One track's state in one zone; dropped once it is outside and not present."""

    class_name: str
    inside_run: int = 0
    outside_run: int = 0
    run_start: float = 0.0
    present: bool = False
    since: float = 0.0
    counted: bool = False

    def step(self, inside: bool, time_s: float, zone: Zone) -> None:
        if inside:
            if self.inside_run == 0:
                self.run_start = time_s
            self.inside_run += 1
            self.outside_run = 0
            if not self.present and self.inside_run >= zone.inertia:
                self.present = True
                self.since = self.run_start
        else:
            self.outside_run += 1
            self.inside_run = 0
            if self.present and self.outside_run >= zone.inertia:
                self.present = False
        self.counted = self.present and time_s - self.since >= zone.loitering_s


@dataclass(slots=True)
class _Anchor:
    """A track's last point strictly off a line, and which side it was on (sign of the cross product)."""

    x: float
    y: float
    side: float


@dataclass(slots=True)
class _LineCounts:
    into: Counter[str] = field(default_factory=Counter)
    out: Counter[str] = field(default_factory=Counter)


class ZoneState:
    """Per stream: tracks in zones and line crossings. :meth:`update` once per inferred frame, in time order."""

    def __init__(self, zones: Sequence[Zone], lines: Sequence[Line]) -> None:
        _unique([z.name for z in zones], "zones")
        _unique([line.name for line in lines], "lines")
        self._zones = tuple(zones)
        self._lines = tuple(lines)
        self._polygons = [np.array(z.polygon, dtype=np.float64) for z in self._zones]
        self._presence: list[dict[int, _Presence]] = [{} for _ in self._zones]
        self._anchors: list[dict[int, _Anchor]] = [{} for _ in self._lines]
        self._line_counts = [_LineCounts() for _ in self._lines]
        self._time = -math.inf

    def update(
        self,
        time_s: float,
        width: int,
        height: int,
        track_ids: np.ndarray,
        class_names: Sequence[str],
        boxes: np.ndarray,
    ) -> ZoneUpdate:
        """Place this frame's objects: ``track_ids`` (n,) ints, ``-1`` for untracked objects (ignored);
        ``class_names`` (n); ``boxes`` (n, 4) ``x1, y1, x2, y2`` in pixels of a ``width`` x ``height`` frame.

        Raises ValueError for arrays of the wrong shape or a time before the previous update's.
        """
        ids = np.asarray(track_ids)
        box = np.asarray(boxes, dtype=np.float64)
        n = len(ids)
        if ids.ndim != 1 or not (n == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"track_ids must be a 1-D integer array, got shape {ids.shape} and dtype {ids.dtype}")
        if box.shape != (n, 4) or len(class_names) != n:
            raise ValueError(
                f"expected boxes of shape ({n}, 4) and {n} class names for {n} track ids, "
                f"got {box.shape} and {len(class_names)}"
            )
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be > 0, got {width} x {height}")
        if not math.isfinite(time_s) or time_s < self._time:
            raise ValueError(f"time_s must be finite and not before the previous update's {self._time}, got {time_s}")
        self._time = time_s
        points = np.stack([(box[:, 0] + box[:, 2]) / (2.0 * width), box[:, 3] / height], axis=1)
        tracked = [i for i in range(n) if ids[i] >= 0]

        entered: list[tuple[int, str]] = []
        left: list[tuple[int, str]] = []
        in_zones: list[list[str]] = [[] for _ in range(n)]
        for zone, polygon, presence in zip(self._zones, self._polygons, self._presence, strict=True):
            inside = points_in_polygon(points, polygon) if n else np.zeros(0, dtype=bool)
            for i in tracked:
                track_id, class_name = int(ids[i]), class_names[i]
                counts = not zone.classes or class_name in zone.classes
                state = presence.get(track_id)
                if state is None:
                    if not (counts and inside[i]):
                        continue
                    state = presence[track_id] = _Presence(class_name)
                was = state.counted
                state.class_name = class_name
                state.step(bool(counts and inside[i]), time_s, zone)
                if state.counted and not was:
                    entered.append((track_id, zone.name))
                elif was and not state.counted:
                    left.append((track_id, zone.name))
                if state.counted:
                    in_zones[i].append(zone.name)
                elif not state.present and state.inside_run == 0:
                    del presence[track_id]

        crossings = self._cross(ids, class_names, points, tracked)
        return ZoneUpdate(
            zones=tuple(tuple(names) for names in in_zones),
            entered=tuple(entered),
            left=tuple(left),
            crossings=tuple(crossings),
        )

    def _cross(
        self, ids: np.ndarray, class_names: Sequence[str], points: np.ndarray, tracked: list[int]
    ) -> list[Crossing]:
        crossings: list[Crossing] = []
        for line, anchors, counts in zip(self._lines, self._anchors, self._line_counts, strict=True):
            (sx, sy), (ex, ey) = line.start, line.end
            dx, dy = ex - sx, ey - sy
            sides = dx * (points[:, 1] - sy) - dy * (points[:, 0] - sx)
            for i in tracked:
                side = float(sides[i])
                if side == 0.0:
                    continue  # on the line: wait for the side it goes on to
                track_id = int(ids[i])
                x, y = float(points[i, 0]), float(points[i, 1])
                anchor = anchors.get(track_id)
                anchors[track_id] = _Anchor(x, y, side)
                if anchor is None or (anchor.side > 0) == (side > 0):
                    continue
                # Where the path from the anchor to here meets the line's infinite extension, and whether
                # that point lies within the segment start -> end.
                f = anchor.side / (anchor.side - side)
                px, py = anchor.x + f * (x - anchor.x), anchor.y + f * (y - anchor.y)
                t = ((px - sx) * dx + (py - sy) * dy) / (dx * dx + dy * dy)
                if not 0.0 <= t <= 1.0:
                    continue
                class_name = class_names[i]
                if line.classes and class_name not in line.classes:
                    continue
                direction = "in" if side > 0 else "out"
                (counts.into if direction == "in" else counts.out)[class_name] += 1
                crossings.append(Crossing(track_id, line.name, direction, class_name))
        return crossings

    def forget(self, track_id: int) -> tuple[tuple[int, str], ...]:
        """A track ended: drop it, and return the ``(track_id, zone)`` pairs it leaves (the zones it was in)."""
        left: list[tuple[int, str]] = []
        for zone, presence in zip(self._zones, self._presence, strict=True):
            state = presence.pop(track_id, None)
            if state is not None and state.counted:
                left.append((track_id, zone.name))
        for anchors in self._anchors:
            anchors.pop(track_id, None)
        return tuple(left)

    def __len__(self) -> int:
        """How many tracks have any state here (in or near a zone, or seen near a line)."""
        ids: set[int] = set()
        for presence in self._presence:
            ids.update(presence)
        for anchors in self._anchors:
            ids.update(anchors)
        return len(ids)

    def counts(self) -> dict[str, dict[str, Any]]:
        """``{"zones": {zone: {class: objects in it now}}, "lines": {line: {"in": {class: n}, "out": {class: n}}}}``
        with cumulative line counts; a zone's or line's listed classes appear even at 0. ``{}`` with no zones
        and no lines."""
        if not self._zones and not self._lines:
            return {}
        zones: dict[str, Any] = {}
        for zone, presence in zip(self._zones, self._presence, strict=True):
            tally: dict[str, int] = dict.fromkeys(zone.classes, 0)
            for state in presence.values():
                if state.counted:
                    tally[state.class_name] = tally.get(state.class_name, 0) + 1
            zones[zone.name] = tally
        lines: dict[str, Any] = {}
        for line, counts in zip(self._lines, self._line_counts, strict=True):
            lines[line.name] = {
                "in": {**dict.fromkeys(line.classes, 0), **counts.into},
                "out": {**dict.fromkeys(line.classes, 0), **counts.out},
            }
        return {"zones": zones, "lines": lines}

    def geometry(self) -> dict[str, list[dict[str, Any]]]:
        """The zones and lines for the page, in 0..1 image coordinates (see :func:`geometry`)."""
        return geometry(self._zones, self._lines)
