"""Frame age and drops of live streams through the real Pipeline and embedded models, on this machine's CPU.

Each stream is a ``PyAVSource(realtime=True, loop=True)`` playing a 640x480
30 fps clip (real photographs panned; made once in a temp dir) at its native
speed, so it behaves like a live camera: its buffer drops the oldest frame
when inference falls behind. The streams go through ``Pipeline(max_batch=4,
max_frame_age_ms=500)``. Age is ``result.timings_ms["age"]``: from the end of
a frame's decoding to its result reaching the loop's delivery. For ONE and
FOUR streams it prints offered (decoded) fps, inferred fps, drop % and age
p50/p95/p99 over ``--duration`` seconds (after a short warm-up). One stream of
the default ``classify`` stage is sustainable on 2 cores; four overload them:
drops are expected, but age must stay bounded (about ``max_frame_age_ms`` plus
one batch at worst), and the frames dropped must cost little: four
overloaded streams should infer >= 0.95 of the bare model's frames/s
(``ratio inferred fps / bare``). First it prints what decoding a frame that
is then dropped costs (decoded, left in YUV) against decoding and converting
it to RGB, as sources did before.

The baseline is the bare model time, ``cascade.run([frame])`` (the models on the calling thread) on every
frame of the clip in turn (the median of 3 passes; the objects, so the crops the cascade classifies, vary
along the clip: its first frame alone ran ~20% faster than the average): the ages read against it,
``age p50 / bare`` says how much waiting the pipeline adds, and ``inferred fps / bare`` how much of the
models' speed the pipeline delivers.

The drift check (``--long`` seconds, 0 skips it) runs one stream that long and
compares age p50/p95/p99 of the first and the last minute (the first and last
half if shorter than two minutes) and the process RSS at the end of the first
window and at the end. No drift: the last p95 within ~20% of the first, and
RSS flat within noise.

    python benchmarks/bench_live.py [--stages classify] [--duration 60] [--long 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.frames import Frame
from streamer.inference.backend import Request
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources.pyav import PyAVSource, decoded_picture
from streamer.tasks import STAGES, Classifier, ClassifierOptions
from tests.media import make_clip
from tests.memory import rss_mib

FPS = 30
SIZE = (640, 480)
MAX_AGE_MS = 500.0


def percentiles(ages: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 of ``ages`` (NaN if empty)."""
    if not ages:
        return (float("nan"),) * 3
    p50, p95, p99 = np.percentile(np.asarray(ages), [50, 95, 99])
    return float(p50), float(p95), float(p99)


@dataclass
class Run:
    """What one pipeline run measured, between the end of the warm-up and the end."""

    streams: int
    seconds: float
    offered: dict[str, int]  # frames decoded, per stream
    inferred: dict[str, int]  # results delivered, per stream
    dropped: dict[str, int]  # frames never inferred (overwritten in the buffer or too old), per stream
    ages: list[tuple[float, float]] = field(default_factory=list)  # (seconds since the warm-up ended, age ms)
    rss: dict[float, float] = field(default_factory=dict)  # seconds since the warm-up ended -> RSS MiB
    cpu: float = 0.0  # CPU time of the whole process over the run / wall time (1.0: one core busy)
    load: float = 0.0  # 1-minute load average at the end: anything else running skews the ages

    def ages_between(self, start: float, end: float) -> list[float]:
        return [age for t, age in self.ages if start <= t < end]


def run(
    classifier: Classifier,
    clip: Path,
    streams: int,
    seconds: float,
    *,
    warmup: float,
    rss_at: tuple[float, ...] = (),
) -> Run:
    """Play ``streams`` live copies of ``clip`` through a Pipeline for ``warmup + seconds`` and measure."""
    # Compact on purpose (16 bytes a result), so the drift run's RSS measures the pipeline, not this record.
    record = array("d")  # delivery time, age ms, delivery time, age ms, ...
    counts: dict[str, int] = {}  # results per stream

    def on_result(result: FrameResult, frame: Frame) -> None:  # on the pipeline's dispatcher thread
        record.extend((time.monotonic(), result.timings_ms["age"]))  # one C call: atomic under the GIL
        counts[frame.stream_id] = counts.get(frame.stream_id, 0) + 1

    pipeline = Pipeline(classifier.backend, on_result=on_result, max_batch=4, max_frame_age_ms=MAX_AGE_MS)
    sources = [PyAVSource(f"cam{i}", str(clip), realtime=True, loop=True) for i in range(streams)]
    for source in sources:
        pipeline.add(source)
    rss: dict[float, float] = {}
    pipeline.start()
    try:
        time.sleep(warmup)
        start, cpu = time.monotonic(), time.process_time()
        before, counted = {s.stream_id: s.stats() for s in sources}, dict(counts)
        first = len(record) // 2 * 2
        for mark in sorted({*rss_at, seconds}):  # every wait ends at a fixed deadline
            time.sleep(max(0.0, start + mark - time.monotonic()))
            if mark in rss_at:
                rss[mark] = rss_mib()
        after, ended = {s.stream_id: s.stats() for s in sources}, dict(counts)
        measured = record[first : len(record) // 2 * 2]
        busy = (time.process_time() - cpu) / (time.monotonic() - start)
    finally:
        pipeline.stop()
    return Run(
        streams=streams,
        seconds=seconds,
        offered={k: after[k].decoded - before[k].decoded for k in after},
        inferred={k: ended.get(k, 0) - counted.get(k, 0) for k in after},
        dropped={k: after[k].dropped - before[k].dropped for k in after},
        ages=[(t - start, age) for t, age in zip(measured[::2], measured[1::2], strict=True)],
        rss=rss,
        cpu=busy,
        load=os.getloadavg()[0],
    )


def report(result: Run) -> None:
    """One line for the configuration, one per stream."""
    offered, inferred, dropped = (sum(d.values()) for d in (result.offered, result.inferred, result.dropped))
    p50, p95, p99 = percentiles([age for _, age in result.ages])
    print(
        f"{result.streams} stream(s) x {FPS} fps, {result.seconds:.0f} s: offered {offered / result.seconds:6.1f} fps, "
        f"inferred {inferred / result.seconds:6.1f} fps, dropped {100.0 * dropped / max(1, offered):5.1f}%, "
        f"age p50 {p50:6.1f}  p95 {p95:6.1f}  p99 {p99:6.1f} ms"
    )
    print(
        f"    process CPU {100.0 * result.cpu:.0f}% of one core ({os.cpu_count()} CPUs), load average {result.load:.2f}"
    )
    for key in result.offered:
        print(
            f"    {key}: offered {result.offered[key]}, inferred {result.inferred[key]}, dropped {result.dropped[key]}"
        )


def dropped_frame_cost(clip: Path, rounds: int = 6) -> tuple[float, float]:
    """CPU ms per frame of decoding ``clip`` and converting every frame to RGB (what a dropped frame cost
    before) and of decoding it into :class:`Picture` s left unconverted (what it costs now), ABBA rounds."""

    def decode(convert: bool) -> float:
        start, frames = time.process_time(), 0
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                picture = decoded_picture(frame)
                if convert:
                    picture.rgb()
                frames += 1
        return (time.process_time() - start) * 1000.0 / frames

    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(rounds):
        for convert in (True, False) if i % 2 == 0 else (False, True):
            times[convert].append(decode(convert))
    return statistics.median(times[True]), statistics.median(times[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", choices=STAGES, default="classify")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds measured per configuration")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds run before measuring")
    parser.add_argument("--long", type=float, default=300.0, help="seconds of the 1-stream drift run; 0 skips it")
    args = parser.parse_args()

    classifier = Classifier.create_from_options(ClassifierOptions(stages=args.stages, device="cpu"))
    with tempfile.TemporaryDirectory() as tmp, classifier:
        clip = make_clip(Path(tmp) / "live.mp4", frames=90, fps=FPS, size=SIZE, codec="libx264")
        with av.open(str(clip)) as container:
            images = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        for image in images[:5]:  # warm-up
            classifier.backend.cascade.run([Request("", image)])

        def bare_pass() -> float:
            """ms a frame of cascade.run over every frame of the clip (the objects, so the crops classified,
            vary along it)."""
            start = time.perf_counter()
            for image in images:
                classifier.backend.cascade.run([Request("", image)])
            return (time.perf_counter() - start) * 1000.0 / len(images)

        bare_ms = statistics.median(bare_pass() for _ in range(3))
        print(
            f"stages {args.stages} on {classifier.provider}, clip {SIZE[0]}x{SIZE[1]} @ {FPS} fps (x264), Pipeline "
            f"max_batch 4, max_frame_age_ms {MAX_AGE_MS:.0f}"
        )
        print(
            f"bare cascade.run([frame]) over the clip's {len(images)} frames: {bare_ms:.1f} ms a frame (median of 3 "
            f"passes) = {1000.0 / bare_ms:.1f} frames/s; each ratio below uses passes right before and after its run"
        )
        eager, lazy = dropped_frame_cost(clip)
        print(
            f"a dropped frame's cost (decode, then nothing): {lazy:.3f} ms; converted to RGB as before: {eager:.3f} ms "
            f"(ratio {lazy / eager:.2f})"
        )
        for streams in (1, 4):
            before = bare_pass()
            result = run(classifier, clip, streams, args.duration, warmup=args.warmup)
            beside = (before + bare_pass()) / 2  # the bare speed right before and after: this machine drifts
            report(result)
            p50 = percentiles([age for _, age in result.ages])[0]
            inferred = sum(result.inferred.values()) / result.seconds
            print(f"    ratio age p50 / bare: {p50 / bare_ms:.2f}")
            print(
                f"    ratio inferred fps / bare: {inferred * beside / 1000.0:.3f} (bare {1000.0 / beside:.1f} frames/s "
                "in passes right before and after; target for 4 streams: >= 0.95)"
            )

        if args.long > 0:
            window = min(60.0, args.long / 2)
            result = run(classifier, clip, 1, args.long, warmup=args.warmup, rss_at=(window, args.long))
            early = percentiles(result.ages_between(0.0, window))
            late = percentiles(result.ages_between(args.long - window, args.long))
            print(f"drift, 1 stream for {args.long:.0f} s ({window:.0f} s windows):")
            report(result)
            print(
                f"    first {window:.0f} s: age p50 {early[0]:6.1f}  p95 {early[1]:6.1f}  p99 {early[2]:6.1f} ms, "
                f"RSS at its end {result.rss[window]:7.1f} MiB"
            )
            print(
                f"    last  {window:.0f} s: age p50 {late[0]:6.1f}  p95 {late[1]:6.1f}  p99 {late[2]:6.1f} ms, "
                f"RSS at its end {result.rss[args.long]:7.1f} MiB"
            )
            print(
                f"    p95 last / first: {late[1] / early[1]:.2f} (no drift: within ~1.2); "
                f"RSS growth {result.rss[args.long] - result.rss[window]:+.1f} MiB"
            )


if __name__ == "__main__":
    main()
