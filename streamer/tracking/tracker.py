"""A multi-object tracker in the manner of ByteTrack (Zhang et al., 2022): pure, numpy and scipy; no I/O.

Call order: ``tracker = Tracker(TrackerConfig(...))`` once per stream, then
``tracker.update(boxes, scores, class_ids, time_s)`` once per inferred frame,
in time order, and ``tracker.end_all()`` when the stream ends.

Each update, every live track's Kalman filter predicts its box at ``time_s``
(the real elapsed time since the last update, so skipped frames only widen
the uncertainty), then detections are associated with tracks in four steps,
each an optimal assignment (``linear_sum_assignment`` on ``1 - IoU``; a
detection only matches tracks of its own class):

1. high-score detections (``score >= high_score``) with confirmed tracks,
   those seen last update and those coasting while lost (``IoU >= match_iou``);
2. low-score detections (``low_score <= score < high_score``: often an object
   half hidden) with the confirmed tracks still free (``IoU >= low_match_iou``);
   a low box never starts a track. The paper offers them only the tracks seen
   last update; lost ones too, at this stricter IoU, keep an object that was
   wholly hidden for a frame, then half (IDF1 0.934 against 0.932 on
   ``benchmarks/bench_tracking.py``'s scenes);
3. the high-score detections still free with tentative tracks (``match_iou``);
4. each high-score detection still free with ``score >= new_track_score``
   starts a tentative track.

A tentative track is confirmed once it has been matched in ``min_hits``
updates in a row; one that misses an update before that dies silently. A
confirmed track that misses coasts on its prediction and can be matched again
until it has been unseen for longer than ``max_lost_s``; then it ends. A
track's overlap with a detection is the larger of its prediction's and its
last detection's: an object that stopped, or turned back where it left the
picture, is found where it was last seen.

The Kalman state of a track is its box centre and size ``(cx, cy, w, h)``
with their velocities, in pixels and pixels per second. Noise is the same for
the four coordinates and independent between them, so the filter is four
2x2 filters per track, run for all tracks at once with elementwise numpy.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.errors import ConfigError, RunningModeError
from streamer.vision.nms import iou_matrix

__all__ = ["TrackUpdate", "Tracker", "TrackerConfig"]

# Noise, in units of the box's scale max(w, h) (at least 1 pixel):
_MEASUREMENT_STD = 0.05  # a detected box's error
_POSITION_NOISE = 0.2  # position drift the velocity does not explain, per sqrt(second)
_ACCELERATION_NOISE = 2.0  # change of velocity, per second per sqrt(second)
_INITIAL_VELOCITY_STD = 4.0  # a new track's velocity (unknown), per second
_NO_MATCH = 1e6  # the cost of a pair that must not match: larger than any real cost sum
_MAX_LOST = 4096  # confirmed tracks coasting at once; beyond, the longest unseen end early


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """How detections become tracks. Scores and IoUs are in 0..1; ``max_lost_s`` in the caller's seconds."""

    high_score: float = 0.4  # detections >= this: first association; may start tracks
    low_score: float = 0.1  # low_score <= score < high_score: second association only; below: ignored
    new_track_score: float = 0.45  # an unmatched high detection starts a tentative track only when >= this
    match_iou: float = 0.2  # least IoU for a match in the first association (and with tentative tracks)
    low_match_iou: float = 0.5  # least IoU for a match in the second association
    min_hits: int = 2  # updates with a matched detection before a track is confirmed (1: at once)
    max_lost_s: float = 1.0  # a track unseen for longer than this (in the caller's time) ends

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            key = f"tracker.{item.name} = {value!r}"
            if item.name == "min_hits":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"{key}; expected an integer >= 1")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(f"{key}; expected a finite number")
            if item.name == "max_lost_s":
                if value < 0:
                    raise ConfigError(f"{key}; expected seconds >= 0")
            elif item.name in ("match_iou", "low_match_iou"):
                if not 0 < value <= 1:
                    raise ConfigError(f"{key}; expected an IoU in (0, 1]")
            elif not 0 <= value <= 1:
                raise ConfigError(f"{key}; expected a score in 0..1")
        if self.low_score > self.high_score:
            raise ConfigError(
                f"tracker.low_score = {self.low_score!r} is above tracker.high_score = {self.high_score!r}; "
                "set low_score <= high_score"
            )
        if self.new_track_score < self.high_score:
            raise ConfigError(
                f"tracker.new_track_score = {self.new_track_score!r} is below tracker.high_score = "
                f"{self.high_score!r}; only high detections start tracks, so set new_track_score >= high_score"
            )


@dataclass(frozen=True)
class TrackUpdate:
    """What one :meth:`Tracker.update` found.

    ``track_ids`` int64 ``[K]``: for each input detection, the id of the track
    it belongs to (tentative or confirmed), -1 when none (score too low, an
    empty or non-finite box, or unmatched and not starting a track).
    ``confirmed`` bool ``[K]``: whether that track is confirmed.
    ``missed``: confirmed tracks alive but not matched this update.
    ``ended``: confirmed tracks that ended at this update (tentative ones that
    die are never reported). ``new``: tracks confirmed at this update.
    """

    track_ids: np.ndarray
    confirmed: np.ndarray
    missed: tuple[int, ...] = ()
    ended: tuple[int, ...] = ()
    new: tuple[int, ...] = ()


def _empty(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float64)


@dataclass
class _Tracks:
    """Every live track as columns: one row per track, rows in creation order."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    confirmed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # matched at the last update
    last_seen: np.ndarray = field(default_factory=lambda: _empty(0))
    pos: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # cx, cy, w, h
    vel: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # their rates, per second
    p_pp: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # covariance: position, position
    p_pv: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # position, velocity
    p_vv: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # velocity, velocity
    last_box: np.ndarray = field(default_factory=lambda: _empty(0, 4))  # corners of the last matched detection

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def select(self, keep: np.ndarray) -> _Tracks:
        return _Tracks(**{item.name: getattr(self, item.name)[keep] for item in fields(self)})

    def extend(self, other: _Tracks) -> _Tracks:
        return _Tracks(
            **{
                item.name: np.concatenate((getattr(self, item.name), getattr(other, item.name)))
                for item in fields(self)
            }
        )

    def boxes(self) -> np.ndarray:
        """Corners ``[T, 4]`` of the current estimates (sizes below 0 taken as 0)."""
        half = np.maximum(self.pos[:, 2:], 0.0) / 2
        return np.concatenate((self.pos[:, :2] - half, self.pos[:, :2] + half), axis=1)


def _scale(sizes: np.ndarray) -> np.ndarray:
    """Each box's noise scale ``[N, 1]``: max(w, h), at least 1 pixel."""
    scale: np.ndarray = np.maximum(sizes.max(axis=1, keepdims=True), 1.0)
    return scale


def _match(
    track_boxes: np.ndarray,
    last_boxes: np.ndarray,
    track_classes: np.ndarray,
    det_boxes: np.ndarray,
    det_classes: np.ndarray,
    min_iou: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Optimal one-to-one pairs with ``IoU >= min_iou`` and equal classes: (track rows, detection rows).

    A track's IoU is the larger of its predicted box's and its last detection's.
    """
    nothing = np.zeros(0, np.int64)
    if track_boxes.shape[0] == 0 or det_boxes.shape[0] == 0:
        return nothing, nothing
    iou = np.maximum(iou_matrix(track_boxes, det_boxes), iou_matrix(last_boxes, det_boxes))
    feasible = (iou >= min_iou) & (track_classes[:, None] == det_classes[None, :])
    rows = np.flatnonzero(feasible.any(axis=1))
    if rows.size == 0:
        return nothing, nothing
    cols = np.flatnonzero(feasible.any(axis=0))
    sub = feasible[np.ix_(rows, cols)]
    cost = np.where(sub, 1.0 - iou[np.ix_(rows, cols)], _NO_MATCH)
    r, c = linear_sum_assignment(cost)
    ok = sub[r, c]
    return rows[r[ok]], cols[c[ok]]


class Tracker:
    """One stream's tracks. :meth:`update` once per inferred frame, in time order; :meth:`end_all` at the end.

    Track ids count from 1 and are never reused within one ``Tracker``; ``ids``
    (``None``: a counter of its own) hands them out instead, so trackers built
    one after another for a stream (removed, then added again) share one count.
    """

    def __init__(self, config: TrackerConfig | None = None, *, ids: Iterator[int] | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._tracks = _Tracks()
        self._ids = ids if ids is not None else itertools.count(1)
        self._time: float | None = None  # None: no update yet (or since end_all)

    @property
    def active(self) -> int:
        """Live tracks (tentative + confirmed)."""
        return len(self._tracks)

    def end_all(self) -> tuple[int, ...]:
        """The stream ended: every confirmed track ends; returns their ids. The clock restarts; ids go on."""
        ended = tuple(int(i) for i in self._tracks.ids[self._tracks.confirmed])
        self._tracks = _Tracks()
        self._time = None
        return ended

    def update(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, time_s: float) -> TrackUpdate:
        """Associate one frame's detections with the tracks at ``time_s`` seconds.

        ``boxes`` ``[K, 4]`` float (x1, y1, x2, y2 pixels), ``scores`` ``[K]``,
        ``class_ids`` ``[K]`` int. A detection only matches tracks of its class.
        ``time_s`` earlier than the last update's (or equal) counts as no time
        passing. Raises :class:`ConfigError` for arrays of the wrong shape,
        :class:`RunningModeError` for a non-finite time.
        """
        corners, score, classes = _inputs(boxes, scores, class_ids)
        if not math.isfinite(time_s):
            raise RunningModeError(f"time_s = {time_s!r}; expected a finite time in seconds")
        now = float(time_s) if self._time is None else max(self._time, float(time_s))
        dt = 0.0 if self._time is None else now - self._time
        self._time = now
        cfg = self.config

        tracks = self._tracks
        expired = tracks.confirmed & (now - tracks.last_seen > cfg.max_lost_s)
        ended = [int(i) for i in tracks.ids[expired]]
        if expired.any():
            tracks = tracks.select(~expired)
        _predict(tracks, dt)

        usable = np.isfinite(corners).all(axis=1) & np.isfinite(score)
        usable &= (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
        high = usable & (score >= cfg.high_score)
        low = usable & (score >= cfg.low_score) & ~high
        k = score.shape[0]
        det_row = np.full(k, -1, np.int64)  # the track row each detection joined
        predicted = tracks.boxes()

        def associate(track_rows: np.ndarray, det_rows: np.ndarray, min_iou: float) -> None:
            t, d = _match(
                predicted[track_rows],
                tracks.last_box[track_rows],
                tracks.classes[track_rows],
                corners[det_rows],
                classes[det_rows],
                min_iou,
            )
            det_row[det_rows[d]] = track_rows[t]

        free_high = np.flatnonzero(high)
        associate(np.flatnonzero(tracks.confirmed), free_high, cfg.match_iou)
        matched = np.zeros(len(tracks), bool)
        matched[det_row[det_row >= 0]] = True
        associate(np.flatnonzero(tracks.confirmed & ~matched), np.flatnonzero(low), cfg.low_match_iou)
        free_high = free_high[det_row[free_high] < 0]
        associate(np.flatnonzero(~tracks.confirmed), free_high, cfg.match_iou)

        joined = np.flatnonzero(det_row >= 0)
        rows = det_row[joined]
        matched[rows] = True
        _correct(tracks, rows, _xywh(corners[joined]))
        tracks.last_box[rows] = corners[joined]
        tracks.hits[rows] += 1
        tracks.last_seen[rows] = now
        tracks.seen = matched
        promoted = matched & ~tracks.confirmed & (tracks.hits >= cfg.min_hits)
        tracks.confirmed |= promoted
        new = [int(i) for i in tracks.ids[promoted]]
        lost = tracks.confirmed & ~matched
        tracks.vel[lost, 2:] = 0.0  # a lost box keeps its size (as ByteTrack does)
        alive = matched | tracks.confirmed  # unmatched tentative tracks die
        if lost.sum() > _MAX_LOST:
            oldest = np.flatnonzero(lost)[np.argsort(tracks.last_seen[lost], kind="stable")]
            alive[oldest[: oldest.size - _MAX_LOST]] = False
            ended += [int(i) for i in tracks.ids[oldest[: oldest.size - _MAX_LOST]]]
        if not alive.all():
            det_row[joined] = np.cumsum(alive)[rows] - 1  # rows renumbered after the dead go
            tracks = tracks.select(alive)

        starts = free_high[(det_row[free_high] < 0) & (score[free_high] >= cfg.new_track_score)]
        if starts.size:
            det_row[starts] = len(tracks) + np.arange(starts.size)
            born = self._start(corners[starts], classes[starts], now)
            new += [int(i) for i in born.ids[born.confirmed]]
            tracks = tracks.extend(born)
        self._tracks = tracks

        found = det_row >= 0
        track_ids = np.full(k, -1, np.int64)
        track_ids[found] = tracks.ids[det_row[found]]
        confirmed = np.zeros(k, bool)
        confirmed[found] = tracks.confirmed[det_row[found]]
        missed = tuple(int(i) for i in tracks.ids[tracks.confirmed & ~tracks.seen])
        return TrackUpdate(track_ids, confirmed, missed, tuple(ended), tuple(new))

    def _start(self, corners: np.ndarray, classes: np.ndarray, now: float) -> _Tracks:
        """Tentative tracks (confirmed at once when ``min_hits`` is 1) for these detections."""
        n = corners.shape[0]
        pos = _xywh(corners)
        scale = _scale(pos[:, 2:])
        ids = np.fromiter(itertools.islice(self._ids, n), np.int64, n)
        return _Tracks(
            ids=ids,
            classes=classes.copy(),
            hits=np.ones(n, np.int64),
            confirmed=np.full(n, self.config.min_hits <= 1),
            seen=np.ones(n, bool),
            last_seen=np.full(n, now),
            pos=pos,
            vel=_empty(n, 4),
            p_pp=np.repeat((2 * _MEASUREMENT_STD * scale) ** 2, 4, axis=1),
            p_pv=_empty(n, 4),
            p_vv=np.repeat((_INITIAL_VELOCITY_STD * scale) ** 2, 4, axis=1),
            last_box=corners.copy(),
        )


def _inputs(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float64 corners ``[K, 4]``, float64 scores ``[K]``, int64 classes ``[K]``; shapes checked."""
    corners = np.asarray(boxes, np.float64)
    if corners.size == 0 and corners.ndim <= 2:
        corners = corners.reshape(0, 4)
    if corners.ndim != 2 or corners.shape[1] != 4:
        raise ConfigError(f"boxes must be an [K, 4] array of (x1, y1, x2, y2), got shape {list(corners.shape)}")
    k = corners.shape[0]
    score = np.asarray(scores, np.float64).reshape(-1) if np.size(scores) == 0 else np.asarray(scores, np.float64)
    classes = np.asarray(class_ids).reshape(-1) if np.size(class_ids) == 0 else np.asarray(class_ids)
    for array, name in ((score, "scores"), (classes, "class_ids")):
        if array.shape != (k,):
            raise ConfigError(f"{name} must have shape [{k}] (one per box), got {list(array.shape)}")
    return corners, score, classes.astype(np.int64)


def _xywh(corners: np.ndarray) -> np.ndarray:
    """Centre and size ``[N, 4]`` of corners ``[N, 4]``."""
    size = corners[:, 2:] - corners[:, :2]
    return np.concatenate((corners[:, :2] + size / 2, size), axis=1)


def _predict(tracks: _Tracks, dt: float) -> None:
    """Every track's state and covariance ``dt`` seconds on (constant velocity, white-noise acceleration)."""
    if dt <= 0.0 or len(tracks) == 0:
        return
    q = _scale(tracks.pos[:, 2:]) ** 2
    tracks.pos += tracks.vel * dt
    tracks.p_pp += dt * (2 * tracks.p_pv + dt * tracks.p_vv)
    tracks.p_pv += dt * tracks.p_vv
    accel = q * _ACCELERATION_NOISE**2
    tracks.p_pp += q * (_POSITION_NOISE**2 * dt) + accel * (dt**3 / 3)
    tracks.p_pv += accel * (dt**2 / 2)
    tracks.p_vv += accel * dt


def _correct(tracks: _Tracks, rows: np.ndarray, measured: np.ndarray) -> None:
    """Kalman update of the tracks at ``rows`` with measured boxes ``[N, 4]`` (cx, cy, w, h)."""
    if rows.size == 0:
        return
    pos, vel = tracks.pos[rows], tracks.vel[rows]
    p_pp, p_pv, p_vv = tracks.p_pp[rows], tracks.p_pv[rows], tracks.p_vv[rows]
    r = (_MEASUREMENT_STD * _scale(measured[:, 2:])) ** 2
    s = p_pp + r
    gain_p, gain_v = p_pp / s, p_pv / s
    innovation = measured - pos
    tracks.pos[rows] = pos + gain_p * innovation
    tracks.vel[rows] = vel + gain_v * innovation
    tracks.p_pp[rows] = (1 - gain_p) * p_pp
    tracks.p_pv[rows] = (1 - gain_p) * p_pv
    tracks.p_vv[rows] = p_vv - gain_v * p_pv
