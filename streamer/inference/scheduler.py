"""Which frames go into the next batch: a pure function of the streams' state and ``now``.

Each round takes at most one frame from every ready stream, up to
``max_batch``, starting with a different stream each round so that none is
starved. A live stream's frame older than ``max_frame_age_ms`` is dropped
instead of inferred (latency stays bounded under any load); a lossless
stream (a file read as fast as inference goes) is never dropped. A stream
with an ``inference_fps`` cap is skipped until it is due. Call order::

    plan = plan_batch(states, now, turn=turn, max_batch=4, max_frame_age_ms=500)
    # take a frame from each of plan.infer, drop the one of each of plan.too_old,
    # remember plan.next_due and plan.turn for the next round

Times are seconds on one monotonic clock (``time.monotonic()`` in the loop,
a plain number in tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Plan", "StreamState", "next_due", "plan_batch"]


@dataclass(frozen=True)
class StreamState:
    """What the scheduler needs to know of one stream.

    ``decoded_at`` is when the frame it would give was decoded (the newest
    of a live stream, the next of a lossless one); ``None``: no frame waits.
    ``interval`` is seconds between inferences (``1 / inference_fps``; 0: no
    cap) and ``due`` the earliest time it may be inferred again.
    """

    stream_id: str
    decoded_at: float | None
    lossless: bool = False
    interval: float = 0.0
    due: float = 0.0


@dataclass(frozen=True)
class Plan:
    """One round's decisions: streams to infer (batch order), live frames too old to infer, and state to keep."""

    infer: tuple[str, ...]
    too_old: tuple[str, ...]
    due: Mapping[str, float]  # the new ``due`` of each stream inferred this round
    turn: int  # pass as ``turn`` next round


def next_due(due: float, interval: float, now: float) -> float:
    """When a stream inferred at ``now`` is next due: one interval after the last slot, never before ``now``
    (so a stream that missed slots does not catch up with a burst)."""
    return max(due + interval, now) if interval else 0.0


def plan_batch(
    streams: Sequence[StreamState], now: float, *, turn: int, max_batch: int, max_frame_age_ms: float | None
) -> Plan:
    """Decide the next batch; ``streams`` in a stable order (the order they were added)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if not streams:
        return Plan((), (), {}, turn)
    start = turn % len(streams)
    infer: list[str] = []
    too_old: list[str] = []
    due: dict[str, float] = {}
    for stream in [*streams[start:], *streams[:start]]:
        if len(infer) == max_batch:
            break
        if stream.interval and now < stream.due:
            continue
        if stream.decoded_at is None:
            continue
        age_ms = (now - stream.decoded_at) * 1000.0
        if not stream.lossless and max_frame_age_ms is not None and age_ms > max_frame_age_ms:
            too_old.append(stream.stream_id)
            continue
        due[stream.stream_id] = next_due(stream.due, stream.interval, now)
        infer.append(stream.stream_id)
    return Plan(tuple(infer), tuple(too_old), due, turn + 1)
