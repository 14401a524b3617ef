"""What a live decoder may leave undecoded under overload: a pure policy, fed counters and a clock.

A live source whose consumer takes only some of its frames wastes the
decoding of the rest. FFmpeg can skip frames without breaking the picture:

- ``NONREF``: frames no other frame refers to (most B-frames) are not
  decoded; every decoded frame is still whole and correct;
- ``NONKEY``: only keyframes are decoded, which is worth it only when the
  consumer takes no more frames than the stream has keyframes (an
  ``inference_fps`` of 1 on a camera with one keyframe a second).

Call order: one :class:`SkipPolicy` per source; after each frame,
``level = policy.update(counts, now)``, and the source sets the decoder's
``skip_frame`` to ``level`` when it changes. :class:`Counts` are running
totals; the policy decides once per ``window_s`` from their differences.
While every frame is wanted (someone watches the video, or a file is read
without loss) the level is ``DEFAULT``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["DEFAULT", "LEVELS", "NONKEY", "NONREF", "Counts", "Level", "SkipConfig", "SkipPolicy"]

Level = Literal["DEFAULT", "NONREF", "NONKEY"]
DEFAULT: Final = "DEFAULT"
NONREF: Final = "NONREF"
NONKEY: Final = "NONKEY"
LEVELS: tuple[Level, ...] = (DEFAULT, NONREF, NONKEY)


@dataclass(frozen=True, slots=True)
class Counts:
    """Running totals of one source: packets demuxed, keyframe packets, frames decoded, frames dropped
    (decoded but never used by the consumer)."""

    packets: int = 0
    keyframes: int = 0
    decoded: int = 0
    dropped: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.packets - other.packets,
            self.keyframes - other.keyframes,
            self.decoded - other.decoded,
            self.dropped - other.dropped,
        )


@dataclass(frozen=True, kw_only=True)
class SkipConfig:
    """``window_s``: seconds between decisions. ``overloaded``: the share of a window's decoded frames
    dropped from which the decoder skips more. ``probe_windows``: windows after which a skipping decoder
    tries one level less, in case the consumer has become faster (it goes back if not)."""

    window_s: float = 2.0
    overloaded: float = 0.5
    probe_windows: int = 5

    def __post_init__(self) -> None:
        if self.window_s <= 0 or not 0 < self.overloaded < 1 or self.probe_windows < 1:
            raise ValueError(f"bad SkipConfig {self}")


class SkipPolicy:
    """The ``skip_frame`` level of one live decoder, decided from its counters (see the module doc)."""

    def __init__(self, config: SkipConfig | None = None) -> None:
        self.config = config or SkipConfig()
        self.level: Level = DEFAULT
        self._start: tuple[float, Counts] | None = None
        self._windows = 0  # windows spent at this level

    def update(self, counts: Counts, now: float, *, every_frame_wanted: bool = False) -> Level:
        """The level to decode at from now on, given the running ``counts`` at ``now`` (seconds,
        monotonic). ``every_frame_wanted``: someone needs every frame; go back to ``DEFAULT`` at once."""
        if every_frame_wanted:
            self._set(DEFAULT)
            self._start = (now, counts)
            return self.level
        if self._start is None:
            self._start = (now, counts)
            return self.level
        began, before = self._start
        if now - began < self.config.window_s:
            return self.level
        window = counts.minus(before)
        self._start = (now, counts)
        self._windows += 1
        self._set(self._decide(window, now - began))
        return self.level

    def _set(self, level: Level) -> None:
        if level != self.level:
            self.level = level
            self._windows = 0

    def _decide(self, window: Counts, seconds: float) -> Level:
        if window.decoded <= 0:
            return self.level
        dropped = window.dropped / window.decoded
        taken_per_s = (window.decoded - window.dropped) / seconds
        keyframes_per_s = window.keyframes / seconds
        overloaded = dropped >= self.config.overloaded
        if self.level == DEFAULT:
            return NONREF if overloaded else DEFAULT
        if self.level == NONREF:
            if overloaded and keyframes_per_s > 0 and taken_per_s <= keyframes_per_s:
                return NONKEY  # keyframes alone are as many as the consumer takes
            if not overloaded and self._windows >= self.config.probe_windows:
                return DEFAULT  # the consumer may keep up again: try
            return NONREF
        # NONKEY: every keyframe is taken (or the consumer would have dropped some); try more now and then
        if self._windows >= self.config.probe_windows:
            return NONREF
        return NONKEY
