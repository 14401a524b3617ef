"""The event state machine: confirmed tracks over time turned into ``new``, ``update`` and ``end`` events.

Pure: no I/O and no clock; the caller passes the time (seconds, its own
clock, normally unix time) to every call. Call order, per stream::

    machine.update(result, time_s)   # once per FrameResult, in frame order -> events
    machine.end_stream(stream, time_s)  # when the stream stops -> its open events end

An object is an event exactly when its ``track_id`` is ``>= 0`` (the hook
marks tentative and unreported tracks ``-1``). One event per track:

- ``new``: the first frame the track is seen; its snapshot is the first.
- ``update``: at most one per track per frame, with every reason that holds:
  ``label`` (the settled second-stage label changed), ``zone`` (the track
  entered or left a zone), ``snapshot`` (score x box area beat the best
  snapshot so far by ``snapshot_gain``).
- ``end``: the track's id is in ``result.ended`` (reason ``track``), its
  stream ended (``stream``), or it was not seen for ``stale_s`` seconds
  (``stale``: bounds memory when a tracker never reports an end).

Ended tracks are dropped, so memory is bounded by the open tracks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from streamer.results import FrameResult, Label

__all__ = ["Event", "EventMachine", "EventState", "end_of"]


@dataclass(frozen=True, slots=True)
class EventState:
    """What is known about one track after a frame. Times are the caller's seconds; ``box`` is
    ``(x1, y1, x2, y2)`` in pixels of a ``frame_size`` ``(width, height)`` frame; ``sub_label`` is
    ``None`` until the second stage settles."""

    stream: str
    track_id: int
    label: str
    sub_label: Label | None
    score: float
    top_score: float
    zones: tuple[str, ...]
    entered_zones: tuple[str, ...]
    first_seen: float
    last_seen: float
    box: tuple[float, float, float, float]
    frame_size: tuple[int, int]
    snapshot_score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "track_id": self.track_id,
            "label": self.label,
            "sub_label": None if self.sub_label is None else self.sub_label.to_dict(),
            "score": round(self.score, 6),
            "top_score": round(self.top_score, 6),
            "zones": list(self.zones),
            "entered_zones": list(self.entered_zones),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "box": [round(v, 2) for v in self.box],
            "frame_size": list(self.frame_size),
            "snapshot_score": round(self.snapshot_score, 3),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One change of one track. ``id`` is the event's id (one per track, 32 lowercase hex digits);
    ``before`` is ``None`` for ``new``; ``snapshot`` says this frame is the best picture so far."""

    id: str
    kind: str
    reasons: tuple[str, ...]
    before: EventState | None
    after: EventState
    snapshot: bool

    def to_dict(self) -> dict[str, Any]:
        """The wire and REST shape; ``end_time`` is ``None`` until the ``end`` event (then the last time seen)."""
        after = self.after
        return {
            "id": self.id,
            "kind": self.kind,
            "reasons": list(self.reasons),
            "stream": after.stream,
            "track_id": after.track_id,
            "label": after.label,
            "sub_label": None if after.sub_label is None else after.sub_label.to_dict(),
            "score": round(after.score, 6),
            "top_score": round(after.top_score, 6),
            "zones": list(after.zones),
            "entered_zones": list(after.entered_zones),
            "start_time": after.first_seen,
            "end_time": after.last_seen if self.kind == "end" else None,
            "box": [round(v, 2) for v in after.box],
            "frame_size": list(after.frame_size),
            "before": None if self.before is None else self.before.to_dict(),
        }


@dataclass(slots=True)
class _Open:
    id: str
    state: EventState


def _same_label(a: Label | None, b: Label | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.class_id == b.class_id and a.name == b.name


class EventMachine:
    """Turns each stream's FrameResults into events; see the module for the rules.

    ``snapshot_gain``: a later frame becomes the snapshot when its score x box
    area exceeds the best so far by this factor (bounds snapshot writes).
    ``stale_s``: an open track not seen for this long ends (``None``: never).
    ``new_id`` makes event ids (32 lowercase hex digits).
    """

    def __init__(
        self,
        *,
        snapshot_gain: float = 1.1,
        stale_s: float | None = 300.0,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if not snapshot_gain >= 1.0:
            raise ValueError(f"EventMachine snapshot_gain must be >= 1.0, got {snapshot_gain}")
        if stale_s is not None and not stale_s > 0:
            raise ValueError(f"EventMachine stale_s must be > 0 or None, got {stale_s}")
        self._gain = snapshot_gain
        self._stale_s = stale_s
        self._new_id = new_id
        self._open: dict[tuple[str, int], _Open] = {}
        self._next_sweep = float("-inf")

    def open(self) -> int:
        """How many events have not ended."""
        return len(self._open)

    def streams(self) -> list[str]:
        """The streams with open events, sorted."""
        return sorted({stream for stream, _ in self._open})

    def update(self, result: FrameResult, time_s: float) -> list[Event]:
        """The events of one frame: new and updated tracks in object order, then the ended ones."""
        events: list[Event] = []
        objects = result.objects
        seen: set[int] = set()
        if objects.track_ids is not None:
            for i, track in enumerate(objects.track_ids.tolist()):
                if track < 0 or track in seen:
                    continue
                seen.add(track)
                x1, y1, x2, y2 = (float(v) for v in objects.boxes[i])
                event = self._observe(
                    result,
                    track,
                    name=objects.names[i] if objects.names else str(int(objects.class_ids[i])),
                    score=float(objects.scores[i]),
                    box=(x1, y1, x2, y2),
                    sub_label=objects.labels[i] if objects.labels else None,
                    zones=objects.zones[i] if objects.zones else (),
                    time_s=time_s,
                )
                if event is not None:
                    events.append(event)
        for track in result.ended:
            entry = self._open.pop((result.stream, track), None)
            if entry is not None:
                events.append(_end(entry, "track"))
        events.extend(self._expire(time_s))
        return events

    def end_stream(self, stream: str, time_s: float) -> list[Event]:
        """End every open event of ``stream`` (reason ``stream``), by track id; then expire stale ones."""
        keys = sorted(key for key in self._open if key[0] == stream)
        events = [_end(self._open.pop(key), "stream") for key in keys]
        return events + self._expire(time_s)

    def open_events(self) -> list[Event]:
        """Each open track as an ``update`` event without reasons: its last state (a new front learns from
        these which events a camera group has open, to end them if the group is lost)."""
        return [Event(e.id, "update", (), e.state, e.state, snapshot=False) for e in self._open.values()]

    def end_all(self, time_s: float) -> list[Event]:
        """End every open event of every stream (shutting down)."""
        events: list[Event] = []
        for stream in self.streams():
            events.extend(self.end_stream(stream, time_s))
        return events

    def _observe(
        self,
        result: FrameResult,
        track: int,
        *,
        name: str,
        score: float,
        box: tuple[float, float, float, float],
        sub_label: Label | None,
        zones: tuple[str, ...],
        time_s: float,
    ) -> Event | None:
        key = (result.stream, track)
        quality = score * max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
        entry = self._open.get(key)
        if entry is None:
            state = EventState(
                stream=result.stream,
                track_id=track,
                label=name,
                sub_label=sub_label,
                score=score,
                top_score=score,
                zones=zones,
                entered_zones=tuple(dict.fromkeys(zones)),
                first_seen=time_s,
                last_seen=time_s,
                box=box,
                frame_size=(result.width, result.height),
                snapshot_score=quality,
            )
            event_id = self._new_id()
            self._open[key] = _Open(event_id, state)
            return Event(event_id, "new", (), None, state, snapshot=True)
        before = entry.state
        # A settled label only changes to another label: a frame without one keeps the last.
        label = before.sub_label if sub_label is None else sub_label
        reasons: list[str] = []
        if not _same_label(before.sub_label, label):
            reasons.append("label")
        if set(zones) != set(before.zones):
            reasons.append("zone")
        better = quality > before.snapshot_score * self._gain and quality > 0.0
        if better:
            reasons.append("snapshot")
        after = replace(
            before,
            label=name,
            sub_label=label,
            score=score,
            top_score=max(before.top_score, score),
            zones=zones,
            entered_zones=tuple(dict.fromkeys(before.entered_zones + zones)),
            last_seen=max(before.last_seen, time_s),
            box=box,
            frame_size=(result.width, result.height),
            snapshot_score=quality if better else before.snapshot_score,
        )
        entry.state = after
        if not reasons:
            return None
        return Event(entry.id, "update", tuple(reasons), before, after, snapshot=better)

    def _expire(self, time_s: float) -> list[Event]:
        if self._stale_s is None or time_s < self._next_sweep:
            return []
        self._next_sweep = time_s + self._stale_s / 10  # a sweep looks at every open track: not every frame
        cutoff = time_s - self._stale_s
        stale = [key for key, entry in self._open.items() if entry.state.last_seen < cutoff]
        return [_end(self._open.pop(key), "stale") for key in stale]


def _end(entry: _Open, reason: str) -> Event:
    return Event(entry.id, "end", (reason,), entry.state, entry.state, snapshot=False)


def end_of(event: Event, reason: str = "stream") -> Event:
    """The ``end`` of ``event``'s track as last known from ``event`` (a machine that made it is gone:
    a camera group on a lost Ray node)."""
    return Event(event.id, "end", (reason,), event.after, event.after, snapshot=False)
