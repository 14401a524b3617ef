"""The scheduler on hand-made stream states and a fake clock: fairness, max_batch, max age, inference_fps."""

from __future__ import annotations

import pytest

from streamer.inference.scheduler import StreamState, next_due, plan_batch


def ready(stream_id: str, decoded_at: float = 0.0, **options: object) -> StreamState:
    return StreamState(stream_id, decoded_at, **options)  # type: ignore[arg-type]


def test_one_frame_per_ready_stream_up_to_max_batch_rotating_the_start() -> None:
    streams = [ready(f"s{i}") for i in range(5)]
    first = plan_batch(streams, 0.0, turn=0, max_batch=3, max_frame_age_ms=None)
    second = plan_batch(streams, 0.0, turn=first.turn, max_batch=3, max_frame_age_ms=None)
    assert first.infer == ("s0", "s1", "s2") and second.infer == ("s1", "s2", "s3")
    assert plan_batch(streams, 0.0, turn=4, max_batch=9, max_frame_age_ms=None).infer == ("s4", "s0", "s1", "s2", "s3")
    idle = [StreamState("a", None), ready("b")]
    assert plan_batch(idle, 0.0, turn=0, max_batch=4, max_frame_age_ms=None).infer == ("b",)
    assert plan_batch([], 0.0, turn=7, max_batch=1, max_frame_age_ms=None).turn == 7


def test_a_fast_stream_cannot_starve_a_slow_one() -> None:
    """One frame a round; 'fast' always has a frame, 'slow' gets one every 12 rounds and keeps it until taken."""
    clock, turn = 0.0, 0
    slow_waiting_since: float | None = None
    waits: list[float] = []
    counts = {"fast": 0, "slow": 0}
    for round_ in range(240):
        clock += 0.1  # a 100 ms batch
        if round_ % 12 == 0:
            slow_waiting_since = clock
        streams = [ready("fast", clock), StreamState("slow", slow_waiting_since)]
        plan = plan_batch(streams, clock, turn=turn, max_batch=1, max_frame_age_ms=None)
        turn = plan.turn
        for stream_id in plan.infer:
            counts[stream_id] += 1
            if stream_id == "slow":
                assert slow_waiting_since is not None
                waits.append(clock - slow_waiting_since)
                slow_waiting_since = None
    assert counts == {"slow": 20, "fast": 220}, "every slow frame inferred, the fast stream all other rounds"
    assert max(waits) <= 0.1 + 1e-9, "a waiting slow frame goes in the next round at the latest"


def test_live_frames_older_than_max_age_are_dropped_lossless_never() -> None:
    streams = [ready("cam", 9.0), ready("old-cam", 8.0), ready("file", 1.0, lossless=True)]
    plan = plan_batch(streams, 9.2, turn=0, max_batch=4, max_frame_age_ms=500)
    assert plan.infer == ("cam", "file") and plan.too_old == ("old-cam",)
    assert plan_batch(streams, 9.2, turn=0, max_batch=4, max_frame_age_ms=None).too_old == ()
    edge = plan_batch([ready("cam", 9.0)], 9.5, turn=0, max_batch=1, max_frame_age_ms=500)
    assert edge.infer == ("cam",), "exactly max age is still fresh"


def test_a_dropped_frame_does_not_take_a_batch_slot() -> None:
    streams = [ready("stale", 0.0), ready("a", 10.0), ready("b", 10.0)]
    plan = plan_batch(streams, 10.0, turn=0, max_batch=2, max_frame_age_ms=100)
    assert plan.too_old == ("stale",) and plan.infer == ("a", "b")


def test_inference_fps_caps_one_stream_on_a_fake_clock() -> None:
    """A stream offered a frame every 1/64 s with inference_fps 4: one inference per 250 ms, exactly.

    (Binary fractions keep the fake clock exact.)"""
    due, times = 0.0, []
    for tick in range(97):  # 1.5 s
        now = tick / 64
        plan = plan_batch(
            [ready("cam", now, interval=0.25, due=due)], now, turn=tick, max_batch=1, max_frame_age_ms=500
        )
        if plan.infer:
            due = plan.due["cam"]
            times.append(now)
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5]
    uncapped = plan_batch([ready("other", 0.0)], 0.0, turn=0, max_batch=1, max_frame_age_ms=None)
    assert uncapped.due == {"other": 0.0}


def test_a_stream_that_missed_slots_does_not_burst() -> None:
    assert next_due(1.0, 0.2, 5.0) == 5.0, "late: due again one interval after now, not at 1.2, 1.4..."
    assert next_due(1.0, 0.2, 1.05) == pytest.approx(1.2)
    assert next_due(3.0, 0.0, 5.0) == 0.0


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        plan_batch([ready("a")], 0.0, turn=0, max_batch=0, max_frame_age_ms=None)
