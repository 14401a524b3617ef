"""Every benchmark script still runs (a smoke run with tiny counts; no timing is asserted here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("bench_classify.py", ["--rounds", "2", "--images", "2"], "ratio streamer / bare"),
        ("bench_cascade.py", ["--rounds", "2", "--frames", "1"], "ratio streamer / bare"),
        ("bench_decode.py", ["--runs", "2"], "decode+nms 10k boxes"),
        ("bench_reader.py", ["--frames", "10", "--rounds", "2"], "ratio streamer / bare"),
        ("bench_live.py", ["--duration", "3", "--long", "0"], "ratio inferred fps / bare"),
        ("bench_overload.py", ["--duration", "8"], "targets:"),
        ("bench_rest.py", ["--rounds", "2", "--requests", "2", "--seconds", "1"], "ratio in-process / REST"),
        ("bench_annotate.py", ["--frames", "8", "--rounds", "1"], "ratio job / slowest stage"),
        ("bench_mqtt.py", ["--events", "50", "--rounds", "2", "--passes", "2"], "publish cost per event"),
        ("bench_gpu.py", ["--quick"], "ratio graph / cpu"),
        ("bench_int8.py", ["--quick"], "ratio int8 / fp32 cascade"),
        ("bench_ray.py", ["--quick"], "ratio 1 actor / in-process"),
        (
            "bench_tracking.py",
            ["--smoke", "--rounds", "1", "--frames", "30", "--seeds", "1", "--steady", "12", "--passes", "2"],
            "targets:",
        ),
        (
            "bench_latency.py",
            ["--duration", "3", "--warmup", "1", "--clients", "5", "--hub-seconds", "1", "--hub-rounds", "2"],
            "hub:",
        ),
    ],
)
def test_benchmark_runs(script: str, args: list[str], expected: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
