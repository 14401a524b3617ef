"""Frames/s of PyAVSource reading a 1080p H.264 file against a bare PyAV decode loop, in one process.

Our side is the real usage: ``PyAVSource`` on a file (lossless, as fast as
the consumer takes frames) decodes on its worker thread and hands each frame
through its FrameBuffer (capacity 2) to the main thread, which takes them
with ``buffer.get`` until the buffer is drained and reads each one's RGB
``image`` (the conversion happens there, on first use).
The bare side is the loop a user would write by hand: ``av.open``, PyAV's
default decoder threading (as ours), ``frame.to_ndarray("rgb24")`` per
frame, all on the calling thread. The clip (real photographs panned,
x264 ultrafast/zerolatency) is made once in a temp dir. Both sides run
interleaved in rounds (ABBA); the ratio ours / bare is the median of the
per-round ratios. Target: ratio >= 0.95.

Wall-clock fps on a small shared machine moves with whatever else runs
(the load average is printed); the CPU time per frame (all threads of the
process) is printed too, as a load-independent view of the same cost.

    python benchmarks/bench_reader.py [--rounds 12] [--frames 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.sources.base import SourceState
from streamer.sources.pyav import PyAVSource
from tests.media import make_clip

SIZE = (1920, 1080)


def bare(path: Path) -> int:
    """Decode every frame to RGB with a plain PyAV loop; returns the frame count."""
    count = 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.to_ndarray(format="rgb24")
            count += 1
    return count


def ours(path: Path) -> int:
    """Read every frame through PyAVSource's buffer on this (the consumer) thread; returns the count."""
    source = PyAVSource("bench", str(path))
    source.start()
    count = 0
    deadline = time.monotonic() + 300.0  # a bound, far above any sane run
    while time.monotonic() < deadline:
        frame = source.buffer.get(timeout=5.0)
        if frame is None:
            if source.buffer.drained:
                break
            continue
        frame.image  # noqa: B018 -- the conversion to RGB, on first use
        count += 1
    source.stop()
    source.join(10.0)
    if source.state is SourceState.FAILED:
        raise RuntimeError(f"the source failed: {source.stats().last_error}")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--frames", type=int, default=300, help="frames in the clip (decoded per round and side)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", frames=args.frames, fps=30, size=SIZE, codec="libx264")
        assert bare(clip) == ours(clip) == args.frames, "both sides must decode every frame"  # also a warm-up
        load = os.getloadavg()[0]
        rates: dict[str, list[float]] = {"bare": [], "streamer": []}
        cpu_ms: dict[str, list[float]] = {"bare": [], "streamer": []}  # CPU time per frame, all threads
        sides = [("bare", bare), ("streamer", ours)]
        for round_ in range(args.rounds):
            for label, fn in sides if round_ % 2 == 0 else sides[::-1]:  # ABBA: no side always goes first
                start, cpu = time.perf_counter(), time.process_time()
                count = fn(clip)
                rates[label].append(count / (time.perf_counter() - start))
                cpu_ms[label].append((time.process_time() - cpu) * 1000.0 / count)
    bare_fps, our_fps = statistics.median(rates["bare"]), statistics.median(rates["streamer"])
    ratio = statistics.median(o / b for o, b in zip(rates["streamer"], rates["bare"], strict=True))
    bare_cpu, our_cpu = statistics.median(cpu_ms["bare"]), statistics.median(cpu_ms["streamer"])
    print(
        f"clip: {args.frames} frames {SIZE[0]}x{SIZE[1]} H.264 (x264 ultrafast), {args.rounds} rounds, "
        f"PyAV {av.__version__}, {os.cpu_count()} CPUs, load average {load:.2f}"
    )
    print(f"bare PyAV loop (decode + to_ndarray rgb24):  {bare_fps:7.1f} frames/s  {bare_cpu:5.2f} CPU ms/frame")
    print(f"PyAVSource via FrameBuffer (lossless):       {our_fps:7.1f} frames/s  {our_cpu:5.2f} CPU ms/frame")
    print(f"ratio streamer / bare: {ratio:.3f}  (median of per-round ratios; target >= 0.95)")


if __name__ == "__main__":
    main()
