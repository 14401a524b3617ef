"""Overload: a live source at 4x what inference can take, for 60 s, through the real models.

No frame older than ``max_frame_age_ms`` reaches the model, the age at
delivery (which adds the inference itself) stays under it at the 99th
percentile, every frame not inferred is counted as dropped, and memory does
not grow.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np

from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources import Frame, PyAVSource
from streamer.tasks import Classifier, ClassifierOptions
from tests.media import clip_frame, make_clip, photo

DURATION_S = 60.0
MAX_AGE_MS = 500.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_four_times_overload_for_a_minute(tmp_path: Path) -> None:
    cascade = Classifier.create_from_options(ClassifierOptions(stages="cascade", device="cpu"))
    probe = clip_frame(photo(), 0, 1, (640, 480))
    cascade.process([probe])
    latency = statistics.median(_timed(cascade, probe) for _ in range(5))
    fps = min(240, max(20, math.ceil(4 * 1.0 / latency)))  # the source offers 4x the model's capacity
    clip = make_clip(tmp_path / "fast.mp4", frames=fps * 2, fps=fps, size=(640, 480))

    ages: list[float] = []
    waits: list[float] = []  # decoded -> picked for inference

    def collect(result: FrameResult, frame: Frame) -> None:
        ages.append(result.timings_ms["age"])
        waits.append(result.timings_ms["queue"])

    source = PyAVSource("fast", str(clip), realtime=True, loop=True)
    memory: list[float] = []
    with Pipeline(cascade, on_result=collect, max_frame_age_ms=MAX_AGE_MS) as pipeline:
        pipeline.add(source)
        start = time.monotonic()
        while (elapsed := time.monotonic() - start) < DURATION_S:
            time.sleep(5)
            memory.append(_rss_mb())
        stats = pipeline.stats()[0]
    decoded, dropped, inferred = stats["decoded"], stats["dropped"], stats["inferred"]
    print(  # for the record, with pytest -s
        f"overload: source {fps} fps, model {1 / latency:.1f} fps; {decoded} decoded, {inferred} inferred, "
        f"{dropped} dropped; age p50/p99/max {np.percentile(ages, 50):.0f}/{np.percentile(ages, 99):.0f}/"
        f"{max(ages):.0f} ms; RSS {memory[1]:.0f} -> {memory[-1]:.0f} MB"
    )
    assert decoded >= 3 * inferred, f"not overloaded: {decoded} decoded, {inferred} inferred at {fps} fps"
    assert decoded - (dropped + inferred) <= 3, "every frame is inferred, dropped and counted, or still in flight"
    assert inferred >= 0.5 * elapsed / latency, "the model stays busy"
    assert max(waits) < MAX_AGE_MS, f"a frame waited {max(waits):.0f} ms before inference"
    p50, p99 = np.percentile(ages, [50, 99])
    assert p99 < MAX_AGE_MS, f"age at delivery p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    assert memory[-1] - memory[1] < 30, f"RSS grew from {memory[1]:.0f} MB to {memory[-1]:.0f} MB"


def _timed(classifier: Classifier, image: np.ndarray) -> float:
    start = time.perf_counter()
    classifier.process([image])
    return time.perf_counter() - start
