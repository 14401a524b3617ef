"""One stream's objects over time: the cascade's per-stream hook (tracker, settled scores and labels, zones).

For each inferred frame, on the backend's two phases::

    hook = ObjectTracker(config, zones=..., lines=...)   # built on the stream's first frame
    tracked = hook.before(request, detections, eligible)  # phase 1: track ids, zones, which crops to classify
    objects = hook.after(tracked, classes)                # phase 2: the classifier's votes, settled labels

An object gets its track's id once the track is confirmed (``min_hits``)
and its settled score (the median of its recent scores, misses counting 0)
has reached ``report_score``; before that its id is -1 (null on the wire),
so a one-frame false positive never becomes an object with an id, an event
or a zone count. The classifier runs on a reported track's crop when it is
first reported, then every ``classify_every`` frames until the label
settles, then every ``recheck_every`` frames, and only for detector classes
it can describe (``eligible``). The two calls hold a lock: the backend may
run the next frame's ``before`` before this frame's ``after``. Time is the
frames' ``pts_ms``; where it jumps back (a looped file, a reconnected
camera) the hook's clock goes on from where it was. ``ids`` (``None``: from
1) gives the track ids: the runtime keeps one count per stream id, so ids
stay unique in a stream for the whole run, even when it is removed and added
again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from streamer.inference.cascade import Request, Tracked
from streamer.results import Category, Detections, Label
from streamer.tracking.settle import Labels, SettleConfig, TrackScores
from streamer.tracking.tracker import Tracker, TrackerConfig
from streamer.tracking.zones import Line, Zone, ZoneState

__all__ = ["ObjectTracker", "TrackingConfig"]


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """How every stream tracks: the tracker's thresholds and the settling rules (``[tracking]``)."""

    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    settle: SettleConfig = field(default_factory=SettleConfig)


class ObjectTracker:
    """The hook of one stream; see the module."""

    def __init__(
        self,
        config: TrackingConfig,
        *,
        zones: Sequence[Zone] = (),
        lines: Sequence[Line] = (),
        ids: Iterator[int] | None = None,
    ) -> None:
        self._tracker = Tracker(config.tracker, ids=ids)
        self._scores = TrackScores(config.settle)
        self._labels = Labels(config.settle)
        self._zones = ZoneState(zones, lines)
        self._lock = threading.Lock()
        self._frame = 0
        self._asked: set[int] = set()  # tracks whose crop is with the classifier (voted in ``after``)
        self._last_s: float | None = None  # the previous frame's time on the stream's clock
        self._offset_s = 0.0  # added after a jump back (a looped file, a camera that reconnected)

    def _clock(self, pts_ms: float) -> float:
        """The frame's time in seconds, never going back: a jump back shifts the clock so it goes on."""
        time_s = pts_ms / 1000.0 + self._offset_s
        if self._last_s is not None and time_s < self._last_s:
            self._offset_s += self._last_s - time_s
            time_s = self._last_s
        self._last_s = time_s
        return time_s

    def before(self, request: Request, objects: Detections, eligible: np.ndarray) -> Tracked:
        with self._lock:
            self._frame += 1
            time_s = self._clock(request.pts_ms)
            update = self._tracker.update(objects.boxes, objects.scores, objects.class_ids, time_s)
            confirmed = np.flatnonzero(update.confirmed & (update.track_ids >= 0))
            ids = update.track_ids.tolist()
            self._scores.update({ids[k]: float(objects.scores[k]) for k in confirmed.tolist()}, update.missed)
            reported = np.full(len(objects), -1, np.int64)
            for k in confirmed.tolist():
                if self._scores.reported(ids[k]):
                    reported[k] = ids[k]
            names = objects.names or tuple(str(c) for c in objects.class_ids.tolist())
            placed = self._zones.update(
                time_s, request.image.shape[1], request.image.shape[0], reported, names, objects.boxes
            )
            ended = update.ended
            for track in ended:
                self._forget(track)
            classify = [
                k
                for k in range(len(objects))
                if reported[k] >= 0
                and eligible[k]
                and int(reported[k]) not in self._asked
                and self._labels.due(int(reported[k]), self._frame)
            ]
            self._asked.update(int(reported[k]) for k in classify)
            zones = placed.zones if any(placed.zones) else ()
            tracked = objects.with_tracks(reported, self._current_labels(reported), zones)
            return Tracked(tracked, np.array(classify, np.int64), self._zones.counts(), tuple(ended))

    def after(self, tracked: Tracked, classes: Sequence[tuple[Category, ...]]) -> Detections:
        objects = tracked.objects
        if objects.track_ids is None or not len(objects):
            return objects
        with self._lock:
            ids = objects.track_ids
            for k, answer in zip(tracked.classify.tolist(), classes, strict=True):
                self._asked.discard(int(ids[k]))
                self._labels.vote(int(ids[k]), self._frame, answer)
            labels = self._current_labels(ids)
        return objects.with_tracks(ids, labels, objects.zones)

    def end(self) -> tuple[int, ...]:
        """The stream ended: every confirmed track ends; returns their ids."""
        with self._lock:
            ended = self._tracker.end_all()
            for track in ended:
                self._forget(track)
            return ended

    def _current_labels(self, ids: np.ndarray) -> tuple[Label | None, ...]:
        labels = tuple(self._labels.label(int(t)) if t >= 0 else None for t in ids.tolist())
        return labels if any(label is not None for label in labels) else ()

    def _forget(self, track: int) -> None:
        self._asked.discard(track)
        self._scores.forget(track)
        self._labels.forget(track)
        self._zones.forget(track)
