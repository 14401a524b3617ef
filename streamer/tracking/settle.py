"""Settled scores and settled labels: what a track is, decided over many frames (pure; no I/O).

The model Frigate users know:

* **Scores.** A track's score is the median of its detector confidence over its
  last ``score_window`` inferred frames, a frame where the tracker missed it
  counting 0. A track younger than 3 frames is padded with zeros to 3, so one
  lucky frame alone never reaches ``report_score``. Once the median reaches
  ``report_score`` the track is *reported* (it becomes an object, an event) and
  stays reported until it is forgotten.
* **Labels.** The classifier runs on a track's crop when :meth:`Labels.due`
  says so: at once, then every ``classify_every`` frames until the label
  settles, then every ``recheck_every`` frames. Each run is an *attempt*; an
  attempt is a *vote* for its top-1 class when that class's confidence is at
  least ``min_confidence``. A label settles once there are ``min_attempts``
  attempts and one class has ``min_votes`` votes among the remembered attempts
  (the last ``max_attempts``). Re-checks apply the same rule to the remembered
  attempts, so a label changes only when another class out-votes it there; when
  no class has enough votes the label stays as it was.

Call order, per stream and per inferred frame::

    scores.update(seen, missed)          # every frame
    if labels.due(track, frame):         # for reported tracks
        labels.vote(track, frame, classifier_answer)
    ...
    scores.forget(track); labels.forget(track)   # when the tracker ends a track

:func:`describable` says which detector classes the classifier can describe at
all, so the cascade does not ask ImageNet what a person is.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from streamer.errors import ConfigError
from streamer.results import Category, Label

__all__ = [
    "IMAGENET_UNDESCRIBED",
    "Labels",
    "SettleConfig",
    "TrackScores",
    "describable",
    "settle_config_from",
]

_MIN_SCORED_FRAMES = 3
_INT_KEYS = ("score_window", "classify_every", "min_attempts", "min_votes", "recheck_every", "max_attempts")
_FRACTION_KEYS = ("report_score", "min_confidence")


def _check(values: Mapping[str, object], where: str) -> None:
    """Raise :class:`ConfigError` naming ``{where}.{key}`` for the first bad value in ``values``."""
    for key in _INT_KEYS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.{key} = {value!r}; expected a whole number >= 1")
    for key in _FRACTION_KEYS:
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}.{key} = {value!r}; expected a number in 0..1")
    if values["min_votes"] > values["min_attempts"]:  # type: ignore[operator]
        raise ConfigError(
            f"{where}.min_votes = {values['min_votes']} exceeds {where}.min_attempts = {values['min_attempts']}; "
            f"lower min_votes or raise min_attempts"
        )
    if values["min_attempts"] > values["max_attempts"]:  # type: ignore[operator]
        raise ConfigError(
            f"{where}.min_attempts = {values['min_attempts']} exceeds {where}.max_attempts = "
            f"{values['max_attempts']}; raise max_attempts"
        )


@dataclass(frozen=True, kw_only=True)
class SettleConfig:
    """How scores and labels settle. Invalid values raise :class:`ConfigError` naming ``tracking.<key>``."""

    score_window: int = 10
    """A track's score is the median of its last ``score_window`` frames, misses counting 0."""
    report_score: float = 0.4
    """A track is reported once that median reaches this; it stays reported."""
    classify_every: int = 5
    """Frames between classifier attempts on a track until its label settles."""
    min_attempts: int = 3
    """Attempts before a label can settle."""
    min_votes: int = 2
    """Attempts that must agree on the top-1 class."""
    min_confidence: float = 0.4
    """An attempt is a vote only when its top-1 confidence is at least this."""
    recheck_every: int = 100
    """Frames between attempts once the label has settled."""
    max_attempts: int = 20
    """Attempts remembered per track (bounded memory); votes are counted over these."""

    def __post_init__(self) -> None:
        _check(dataclasses.asdict(self), "tracking")


def settle_config_from(value: object, where: str = "tracking") -> SettleConfig:
    """A :class:`SettleConfig` from a TOML table (``None``: the defaults); unknown keys are errors."""
    if value is None:
        return SettleConfig()
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} = {value!r} is not a table; expected keys such as min_votes = 2")
    known = [f.name for f in dataclasses.fields(SettleConfig)]
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
    values: dict[str, object] = dataclasses.asdict(SettleConfig())
    values.update(value)
    _check(values, where)
    return SettleConfig(**values)  # type: ignore[arg-type]


class TrackScores:
    """Per stream: each track's median score and whether it is reported.

    Call :meth:`update` once per inferred frame, in frame order, and
    :meth:`forget` when the tracker ends a track.
    """

    def __init__(self, config: SettleConfig) -> None:
        self._config = config
        self._history: dict[int, deque[float]] = {}
        self._top: dict[int, float] = {}

    def update(self, seen: Mapping[int, float], missed: Iterable[int]) -> None:
        """Record this frame: ``seen`` maps each matched track to its detector score; ``missed`` tracks score 0.

        A missed track that was never seen is ignored. Raises ValueError for a score that is not in 0..1.
        """
        for track_id, score in seen.items():
            if not 0.0 <= score <= 1.0 + 1e-6:  # also rejects NaN
                raise ValueError(f"track {track_id}: score must be in 0..1, got {score!r}")
            self._push(track_id, min(float(score), 1.0))
        for track_id in missed:
            if track_id in self._history:
                self._push(track_id, 0.0)

    def _push(self, track_id: int, score: float) -> None:
        history = self._history.get(track_id)
        if history is None:
            history = self._history[track_id] = deque(maxlen=self._config.score_window)
        history.append(score)
        self._top[track_id] = max(self._top.get(track_id, 0.0), self.score(track_id))

    def score(self, track_id: int) -> float:
        """The median of the track's window (padded with zeros to 3 frames); 0.0 for an unknown track."""
        history = self._history.get(track_id)
        if not history:
            return 0.0
        values = list(history)
        padding = min(_MIN_SCORED_FRAMES, self._config.score_window) - len(values)
        values.extend([0.0] * max(padding, 0))
        return float(statistics.median(values))

    def top_score(self, track_id: int) -> float:
        """The highest median the track has had; 0.0 for an unknown track."""
        return self._top.get(track_id, 0.0)

    def reported(self, track_id: int) -> bool:
        """Whether the track's median has ever reached ``report_score``."""
        return self.top_score(track_id) >= self._config.report_score

    def forget(self, track_id: int) -> None:
        """Drop everything about a track (it ended); unknown ids are fine."""
        self._history.pop(track_id, None)
        self._top.pop(track_id, None)

    def __len__(self) -> int:
        """How many tracks are remembered."""
        return len(self._history)


@dataclass(slots=True)
class _Track:
    attempts: deque[Category | None]
    last_frame: int
    label: Label | None = None


class Labels:
    """Per stream: when to classify each track, and its settled label.

    Call :meth:`due` for a track on each inferred frame (``frame`` is the
    stream's inferred-frame counter, non-decreasing); when it says True, run
    the classifier on the track's crop and pass its answer to :meth:`vote`.
    :meth:`due` has no side effect: a due attempt that is not made stays due.
    Call :meth:`forget` when the tracker ends a track.
    """

    def __init__(self, config: SettleConfig) -> None:
        self._config = config
        self._tracks: dict[int, _Track] = {}

    def due(self, track_id: int, frame: int) -> bool:
        """True when the track has had no attempt yet, or its interval has passed since its last attempt:
        ``classify_every`` frames until its label settles, ``recheck_every`` after."""
        track = self._tracks.get(track_id)
        if track is None:
            return True
        every = self._config.classify_every if track.label is None else self._config.recheck_every
        return frame - track.last_frame >= every

    def vote(self, track_id: int, frame: int, categories: Sequence[Category]) -> Label | None:
        """Record an attempt at ``frame``: its top-1 category (empty ``categories``: no answer, an attempt that
        votes for nothing). Returns the track's settled label, or None while it has not settled."""
        track = self._tracks.get(track_id)
        if track is None:
            track = self._tracks[track_id] = _Track(deque(maxlen=self._config.max_attempts), frame)
        top = max(categories, key=lambda c: c.confidence) if categories else None
        track.attempts.append(top)
        track.last_frame = frame
        if len(track.attempts) >= self._config.min_attempts:
            track.label = self._settle(track) or track.label
        return track.label

    def _settle(self, track: _Track) -> Label | None:
        """The class the remembered attempts agree on, or None when no class has ``min_votes`` votes.

        Ties go to the current label's class, then to the higher summed confidence."""
        votes: dict[int, list[Category]] = {}
        for attempt in track.attempts:
            if attempt is not None and attempt.confidence >= self._config.min_confidence:
                votes.setdefault(attempt.class_id, []).append(attempt)
        if not votes:
            return None
        current = None if track.label is None else track.label.class_id

        def rank(class_id: int) -> tuple[int, bool, float]:
            agreeing = votes[class_id]
            return len(agreeing), class_id == current, math.fsum(c.confidence for c in agreeing)

        winner = max(votes, key=rank)
        agreeing = votes[winner]
        if len(agreeing) < self._config.min_votes:
            return None
        last = agreeing[-1]
        return Label(
            class_id=last.class_id,
            name=last.name,
            display_name=last.display_name,
            confidence=math.fsum(c.confidence for c in agreeing) / len(agreeing),
            votes=len(agreeing),
            attempts=len(track.attempts),
        )

    def label(self, track_id: int) -> Label | None:
        """The track's settled label; None while unsettled or for an unknown track."""
        track = self._tracks.get(track_id)
        return None if track is None else track.label

    def attempts(self, track_id: int) -> int:
        """How many attempts are remembered for the track (at most ``max_attempts``)."""
        track = self._tracks.get(track_id)
        return 0 if track is None else len(track.attempts)

    def forget(self, track_id: int) -> None:
        """Drop everything about a track (it ended); unknown ids are fine."""
        self._tracks.pop(track_id, None)

    def __len__(self) -> int:
        """How many tracks are remembered."""
        return len(self._tracks)


IMAGENET_UNDESCRIBED: frozenset[str] = frozenset(
    {
        # No ImageNet-1k class is a kind of these COCO classes (checked against the 1000 WordNet names).
        "person",  # only "groom", "scuba diver", "ballplayer": roles, not people in general
        "fire hydrant",
        "giraffe",
        "kite",  # ImageNet's "kite" (class 21) is the bird of prey, not the toy
        "suitcase",
        "frisbee",
        "snowboard",
        "baseball bat",
        "baseball glove",
        "skateboard",
        "surfboard",
        "fork",
        "sandwich",
        "carrot",
        "donut",
        "cake",
        "scissors",
        "toothbrush",
    }
)
"""COCO detector classes the ImageNet-1k classifier cannot describe.

Every other COCO class has at least one ImageNet class that is a kind of it
(car: ``sports car``, ``cab``; cow: ``ox``; horse: ``sorrel``; knife:
``cleaver``; bed: ``four-poster``; sink: ``washbasin``), so a crop of it is
worth classifying."""

# A fingerprint of the ImageNet-1k class list (first WordNet synonym, lower case), at fixed class ids.
_IMAGENET_ANCHORS = {
    0: "tench",
    1: "goldfish",
    281: "tabby",
    285: "egyptian cat",
    817: "sports car",
    999: "toilet tissue",
}


def _is_imagenet(classifier_names: Sequence[str]) -> bool:
    if len(classifier_names) != 1000:
        return False
    return all(classifier_names[i].split(",")[0].strip().lower() == name for i, name in _IMAGENET_ANCHORS.items())


def describable(detector_names: Sequence[str], classifier_names: Sequence[str]) -> np.ndarray:
    """For each detector class, whether the classifier can describe a crop of it (bool array, one per class).

    With the 1000 ImageNet-1k classes (recognised by the names at a few fixed
    class ids; ``"tabby"`` and ``"tabby, tabby cat"`` both count) the classes in
    :data:`IMAGENET_UNDESCRIBED` are False; the rule is a table on purpose,
    explicit and easy to extend. With any other classifier every class is True:
    a custom classifier is assumed to have been trained on the crops it gets.
    """
    result = np.ones(len(detector_names), dtype=bool)
    if _is_imagenet(classifier_names):
        for i, name in enumerate(detector_names):
            result[i] = name.strip().lower() not in IMAGENET_UNDESCRIBED
    return result
