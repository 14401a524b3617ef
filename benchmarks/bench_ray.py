"""Ray as the frame path: per-frame overhead of actors and Serve, and a fixed-cost model scaled over actors.

Everything runs in this one process against a local Ray instance started here (``ray.init("local")``: never an
existing cluster; no dashboard, no usage stats, worker logs not forwarded; its session files in a temporary folder,
removed at the end). Serve runs without proxies (``proxy_location="Disabled"``: no HTTP, no gRPC) and is called
through its ``DeploymentHandle`` only. Sections (each a function called by ``main``):

- ``overhead``: ms per frame, p50 and p95 over ``--calls`` calls (after 5 warm-up calls each), in ABBA rounds
  across the paths:

  - ``in-process``: ``infer(frame)``, a plain function returning the result dict (the baseline, ~0 ms);
  - ``actor, 1080p frame``: an RGB uint8 1080x1920x3 frame to an actor, ``ray.get(actor.infer.remote(frame))``;
  - ``actor, tensor``: a preprocessed float32 1x3x224x224 tensor instead of the frame;
  - ``serve @batch, tensor``: the same tensor to a Serve deployment whose method is
    ``@serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)``, ``handle.infer.remote(x).result()``;
    called one frame at a time, each call waits out the batch timeout; a second line gives the same with 8
    requests in flight (the batch fills);
  - ``actor, result only``: no input, the actor returns the result: what the "camera group" design pays per
    frame (sources and models on the actor, only results cross to the front).

  The result every path returns is the wire dict of a ``FrameResult`` with 5 objects (``to_dict()``), so the
  difference between a path and ``actor, result only`` is what its input costs. ``overhead`` is a path's time
  minus the in-process time (at the same percentile).
- ``scaling``: a synthetic model of fixed cost (float32 256x256 matmuls, repeated to cost ``--model-ms`` on one
  thread; its in-process cost is measured and printed first) run by 1, 2 and 4 actors (``num_cpus=0.5`` each),
  each looping over frames for ``--seconds`` from one common start, ``--rounds`` times (orders 1 2 4, 4 2 1, ...).
  Printed: results/s for each count beside the ideal ``n x`` the 1-actor rate and beside the ideal capped by this
  machine's cores (``min(n, cores) x``), with the ratios. Every model runs on one thread: ``OMP_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` are 1 here before numpy and Ray load; the Ray workers inherit
  them (each actor reports what it sees).

Every loop is bounded in count and in time (``--limit`` seconds a section at most; Ray calls time out).

Run: ``python benchmarks/bench_ray.py [--quick] [--calls 200] [--seconds 3] [--rounds 2] [--model-ms 20]``
"""

from __future__ import annotations

import os

# Before numpy and Ray load: no usage reports, and one BLAS/OpenMP thread per process (the driver, and the Ray
# workers, which inherit this environment from the raylet started below).
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # one machine: every Ray address is 127.0.0.1
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse
import contextlib
import json
import logging
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import ray
from ray import serve

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `streamer` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.cluster.front import ClusterRuntime
from streamer.cluster.options import ClusterConfig
from streamer.cluster.outbox import Batch
from streamer.config import StreamSpec, load_config
from streamer.events import Event, EventStore
from streamer.events.machine import EventState
from streamer.events.store import snapshot_jpeg
from streamer.results import Category, Detection, Detections, FrameResult
from streamer.runtime import Runtime
from streamer.server import wire

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
FRAME_SHAPE = (1080, 1920, 3)
TENSOR_SHAPE = (1, 3, 224, 224)
CALL_TIMEOUT_S = 30.0  # any one Ray call
WARMUP_CALLS = 5
MATMUL_SIZE = 256


def result_dict() -> dict[str, Any]:
    """The wire dict of a FrameResult of a 1080p frame with 5 detected, classified, tracked objects."""
    return _result("cam0", 1).to_dict()


def infer(x: np.ndarray, result: dict[str, Any]) -> dict[str, Any]:
    """The stand-in model: reads the input (so a remote copy is really mapped) and returns the result."""
    return {**result, "frame": int(x.flat[0])}


@ray.remote(num_cpus=0.5)
class Model:
    """An actor holding a model: ``infer`` takes an input, ``result`` only returns one (the camera group)."""

    def __init__(self, result: dict[str, Any]) -> None:
        self._result = result
        self._frame = 0

    def infer(self, x: np.ndarray) -> dict[str, Any]:
        return infer(x, self._result)

    def result(self) -> dict[str, Any]:
        self._frame += 1
        return {**self._result, "frame": self._frame}


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=16)
class Batched:
    """The model as a Serve deployment that batches its calls."""

    def __init__(self, result: dict[str, Any]) -> None:
        self._result = result

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def infer(self, xs: list[np.ndarray]) -> list[dict[str, Any]]:
        return [infer(x, self._result) for x in xs]


def synthetic(a: np.ndarray, reps: int) -> float:
    """The fixed-cost model: ``reps`` float32 matmuls of ``a`` by itself (one BLAS thread)."""
    out = np.empty_like(a)
    for _ in range(reps):
        np.matmul(a, a, out=out)
    return float(out[0, 0])


@ray.remote(num_cpus=0.5)
class Worker:
    """An actor running the synthetic model over frames for a fixed time."""

    def __init__(self, reps: int) -> None:
        self._reps = reps
        self._a = np.random.default_rng(0).random((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)

    def threads(self) -> dict[str, str]:
        """What this worker process sees of the thread settings (and a warm-up call of the model)."""
        synthetic(self._a, 1)
        return {name: os.environ.get(name, "unset") for name in THREAD_VARS}

    def run(self, start_at: float, seconds: float, max_frames: int) -> tuple[int, float]:
        """Frames done between ``start_at`` and ``start_at + seconds`` (wall clock, shared by the actors; at most
        ``max_frames``) and the CPU seconds this process used meanwhile."""
        time.sleep(max(0.0, min(start_at - time.time(), 5.0)))
        end, cpu, frames = start_at + seconds, time.process_time(), 0
        while frames < max_frames:
            synthetic(self._a, self._reps)
            if time.time() > end:
                break
            frames += 1
        return frames, time.process_time() - cpu


def percentiles(times_ms: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``times_ms`` (NaN if empty)."""
    if not times_ms:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.asarray(times_ms), [50, 95])
    return float(p50), float(p95)


def overhead(args: argparse.Namespace) -> None:
    """Per-frame overhead of each path against the in-process call; see the module docstring."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
    tensor = rng.random(TENSOR_SHAPE, dtype=np.float32)
    result = result_dict()
    load = os.getloadavg()[0]
    model = Model.remote(result)  # type: ignore[attr-defined]
    try:
        ray.get(model.result.remote(), timeout=CALL_TIMEOUT_S)  # the actor is up
        handle = serve.run(Batched.bind(result), name="bench_ray", route_prefix=None)  # type: ignore[attr-defined]
        paths: dict[str, Callable[[], object]] = {
            "in-process": lambda: infer(frame, result),
            "actor, 1080p frame": lambda: ray.get(model.infer.remote(frame), timeout=CALL_TIMEOUT_S),
            "actor, tensor": lambda: ray.get(model.infer.remote(tensor), timeout=CALL_TIMEOUT_S),
            "serve @batch, tensor": lambda: handle.infer.remote(tensor).result(timeout_s=CALL_TIMEOUT_S),
            "actor, result only": lambda: ray.get(model.result.remote(), timeout=CALL_TIMEOUT_S),
        }
        deadline = time.monotonic() + args.limit
        for call in paths.values():
            for _ in range(WARMUP_CALLS):
                call()
        times: dict[str, list[float]] = {name: [] for name in paths}
        rounds = max(1, min(4, args.calls // 10))
        per_round = -(-args.calls // rounds)
        for i in range(rounds):  # ABBA: the paths in order, then reversed
            for name in list(paths) if i % 2 == 0 else list(reversed(paths)):
                for _ in range(min(per_round, args.calls - len(times[name]))):
                    if time.monotonic() > deadline:
                        break
                    start = time.perf_counter()
                    paths[name]()
                    times[name].append((time.perf_counter() - start) * 1000.0)

        # The batch filled: 8 requests in flight at a time, the latency of each and the wall time per frame.
        in_flight, flight_ms, walls = 8, [], []
        for _ in range(max(1, args.calls // in_flight)):
            if time.monotonic() > deadline:
                break
            start = time.perf_counter()
            responses = [handle.infer.remote(tensor) for _ in range(in_flight)]
            for response in responses:
                response.result(timeout_s=CALL_TIMEOUT_S)
                flight_ms.append((time.perf_counter() - start) * 1000.0)
            walls.append((time.perf_counter() - start) * 1000.0 / in_flight)
    finally:
        ray.kill(model)
        serve.shutdown()  # type: ignore[no-untyped-call]

    size = len(json.dumps(result))
    print(
        f"overhead: ms per frame, p50 and p95 of --calls {args.calls} sequential calls, ABBA rounds "
        f"(load average {load:.2f} before)"
    )
    print(f"  every path returns the result dict of a FrameResult with 5 objects ({size} bytes as JSON)")
    print(f"  {'path':<22} {'payload':<30} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'overhead p50':>13} {'p95':>7}")
    payloads = {
        "in-process": "frame, not copied",
        "actor, 1080p frame": f"uint8 {'x'.join(map(str, FRAME_SHAPE))} ({frame.nbytes / 2**20:.1f} MiB)",
        "actor, tensor": f"float32 {'x'.join(map(str, TENSOR_SHAPE))} ({tensor.nbytes / 2**10:.0f} KiB)",
        "serve @batch, tensor": "the same tensor",
        "actor, result only": "none",
    }
    base50, base95 = percentiles(times["in-process"])
    stats = {name: percentiles(values) for name, values in times.items()}
    for name, (p50, p95) in stats.items():
        print(
            f"  {name:<22} {payloads[name]:<30} {len(times[name]):>4} {p50:8.3f} {p95:8.3f} "
            f"{p50 - base50:10.3f} ms {p95 - base95:7.3f}"
        )
    f50, f95 = percentiles(flight_ms)
    wall = float(np.median(walls)) if walls else float("nan")
    print(
        f"  serve @batch, tensor, {in_flight} in flight: latency p50 {f50:.3f} p95 {f95:.3f} ms, "
        f"wall {wall:.3f} ms per frame (median of {len(walls)} rounds of {in_flight})"
    )
    result_only = stats["actor, result only"][0]
    print(f"  in-process p50 {1000.0 * base50:.1f} us; result only p50 {result_only:.3f} ms")
    for name in ("actor, 1080p frame", "actor, tensor", "serve @batch, tensor"):
        print(f"  ratio {name} / result only (p50): {stats[name][0] / result_only:.2f}", flush=True)


def scaling(args: argparse.Namespace) -> None:
    """Results/s of the fixed-cost model over 1, 2 and 4 actors; see the module docstring."""
    cores, load = os.cpu_count() or 1, os.getloadavg()[0]
    a = np.random.default_rng(0).random((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)
    one = []
    for _ in range(30):
        start = time.perf_counter()
        synthetic(a, 1)
        one.append((time.perf_counter() - start) * 1000.0)
    reps = max(1, round(args.model_ms / float(np.median(one))))
    cost = []
    for _ in range(10 if args.quick else 20):
        start = time.perf_counter()
        synthetic(a, reps)
        cost.append((time.perf_counter() - start) * 1000.0)
    model_ms = float(np.median(cost))
    print(
        f"scaling: synthetic model {reps} x float32 {MATMUL_SIZE}x{MATMUL_SIZE} matmul, "
        f"{model_ms:.2f} ms per frame in-process on one thread ({1000.0 / model_ms:.1f} frames/s; "
        f"load average {load:.2f} before)"
    )

    counts = sorted(set(args.actors))
    workers = [Worker.remote(reps) for _ in range(max(counts))]  # type: ignore[attr-defined]
    deadline = time.monotonic() + args.limit
    rates: dict[int, list[float]] = {n: [] for n in counts}
    cpu: dict[int, list[float]] = {n: [] for n in counts}
    try:
        seen = ray.get([w.threads.remote() for w in workers], timeout=CALL_TIMEOUT_S)
        for i in range(args.rounds):
            for n in counts if i % 2 == 0 else list(reversed(counts)):
                if time.monotonic() + args.seconds > deadline:
                    break
                start_at = time.time() + 0.2
                refs = [w.run.remote(start_at, args.seconds, int(args.seconds * 1000)) for w in workers[:n]]
                done: list[tuple[int, float]] = ray.get(refs, timeout=args.seconds + CALL_TIMEOUT_S)
                rates[n].append(sum(frames for frames, _ in done) / args.seconds)
                cpu[n].append(sum(used for _, used in done) / args.seconds)
    finally:
        for w in workers:
            ray.kill(w)

    threads = sorted({f"{k}={v}" for s in seen for k, v in s.items()})
    print(f"  actors: num_cpus=0.5 each, {args.seconds:g} s a run, {args.rounds} round(s); workers see {threads}")
    print(f"  this machine has {cores} CPU cores: n actors cannot beat min(n, {cores}) x the 1-actor rate")
    print(
        f"  {'actors':>6} {'runs':>4} {'results/s':>10} {'ideal n x 1':>12} {'ratio':>6} "
        f"{'ideal min(n,cores)':>19} {'ratio':>6} {'CPU (cores)':>11}"
    )
    base = float(np.mean(rates[1])) if rates.get(1) else float("nan")
    for n in counts:
        rate = float(np.mean(rates[n])) if rates[n] else float("nan")
        used = float(np.mean(cpu[n])) if cpu[n] else float("nan")
        ideal, capped = base * n, base * min(n, cores)
        print(
            f"  {n:>6} {len(rates[n]):>4} {rate:10.1f} {ideal:12.1f} {rate / ideal:6.2f} "
            f"{capped:19.1f} {rate / capped:6.2f} {used:11.2f}"
        )
    remote_ms = 1000.0 / base
    print(
        f"  ratio 1 actor / in-process (ms per frame): {remote_ms / model_ms:.2f} ({remote_ms:.2f} against "
        f"{model_ms:.2f})",
        flush=True,
    )


@ray.remote(num_cpus=0.25)
class Firehose:
    """A stand-in camera group for ``front_intake``: every ``take`` answers ``per_batch`` ready results at once."""

    def __init__(self, streams: list[str], per_batch: int) -> None:
        self._streams = streams
        self._results = [_result(streams[i % len(streams)], i) for i in range(per_batch)]

    def specs(self) -> list[StreamSpec]:
        return [StreamSpec(id=stream, source=f"synthetic://{stream}") for stream in self._streams]

    def ready(self) -> dict[str, Any]:
        return {"provider": "synthetic", "host": socket.gethostname(), "pid": os.getpid()}

    def models(self) -> list[Any]:
        return []

    def open_events(self) -> list[Any]:
        return []

    def take(self, after: int, watched: list[str], timeout: float) -> Batch:
        items = [(after + 1 + i, ("result", result)) for i, result in enumerate(self._results)]
        return Batch(items=items, last=after + len(items), info={"stats": [], "tracks": {}})


def _result(stream: str, index: int) -> FrameResult:
    """A FrameResult of a 1080p frame with 5 tracked, classified objects."""
    cat = Category(281, "tabby", "tabby cat", 0.82)
    objects = Detections.of(
        [
            Detection((100.0 + 200 * i, 200.0, 260.0 + 200 * i, 420.0), 15, "cat", 0.9 - 0.1 * i, (cat,), track_id=i)
            for i in range(5)
        ]
    )
    timings = {"decode": 4.1, "preprocess": 2.3, "inference": 18.7, "age": 31.2}
    return FrameResult(1920, 1080, objects=objects, timings_ms=timings, stream=stream, frame=index)


def group_vs_local(args: argparse.Namespace) -> None:
    """The real thing end to end: two live streams of samples/street.mp4 detected by the same config in this
    process (Runtime) and on one camera group actor (ClusterRuntime), in ABBA rounds: results/s at the subscriber."""
    street = str(Path(__file__).resolve().parents[1] / "samples" / "street.mp4")
    config = load_config(env={}, overrides={"device": "cpu", "stages": "detect", "threads": 1})
    streams = [StreamSpec(id=f"cam{i + 1}", source=street, loop=True) for i in range(2)]
    warm = min(3.0, args.group_seconds / 2)
    print(
        f"group vs in-process: 2 live streams of samples/street.mp4, detect, 1 thread, {args.group_seconds:g} s "
        f"a run after {warm:g} s warm-up, results/s at the subscriber (load average {os.getloadavg()[0]:.2f} before)",
        flush=True,
    )
    rates: dict[str, list[float]] = {"in-process": [], "camera group": []}
    order = ["in-process", "camera group"]
    for round_ in range(args.rounds):
        for where in order if round_ % 2 == 0 else order[::-1]:
            got = [0]

            def count(result: FrameResult, frame: Any, got: list[int] = got) -> None:
                got[0] += 1

            runtime: Runtime | ClusterRuntime
            if where == "in-process":
                runtime = Runtime(config, streams=streams, events=False)
            else:
                options = ClusterConfig(address="auto", namespace="bench_ray", actors=1, actor_cpus=0.5)
                runtime = ClusterRuntime(config, options, streams=streams, events=False)
            runtime.subscribe(count)
            runtime.start()
            try:
                time.sleep(warm)
                begin, first = time.perf_counter(), got[0]
                time.sleep(args.group_seconds)
                rates[where].append((got[0] - first) / (time.perf_counter() - begin))
            finally:
                if isinstance(runtime, ClusterRuntime):
                    runtime.stop(keep_groups=False)
                else:
                    runtime.stop()
    local, group = float(np.median(rates["in-process"])), float(np.median(rates["camera group"]))
    for where, values in rates.items():
        print(f"  {where:<13} results/s {', '.join(f'{v:.1f}' for v in values)}", flush=True)
    print(f"  ratio camera group / in-process (median results/s): {group / local:.3f}", flush=True)


def front_intake(args: argparse.Namespace) -> None:
    """Results per second one front (ClusterRuntime, its poll threads and a subscriber) takes in from 1, 2 and 4
    groups that always have results ready: the front's own ceiling, apart from the models."""
    print(
        f"front intake: results/s a front takes in from groups that always have {args.per_batch} results ready, "
        f"{args.seconds:g} s a run (load average {os.getloadavg()[0]:.2f} before)",
        flush=True,
    )
    print("  groups  subscriber            results/s  per result us")
    config = load_config(env={}, overrides={"device": "cpu"})
    for groups in args.actors:
        for encode in (False, True):
            hoses = [
                Firehose.options(name=f"group-{i + 1}").remote(  # type: ignore[attr-defined]
                    [f"g{i}s{j}" for j in range(8)], args.per_batch
                )
                for i in range(groups)
            ]
            ray.get([hose.ready.remote() for hose in hoses], timeout=CALL_TIMEOUT_S)
            taken = [0]

            def count(result: FrameResult, frame: Any, encode: bool = encode, taken: list[int] = taken) -> None:
                if encode:  # what the server does with each result for its /ws clients
                    wire.encode("result", result=result.to_dict())
                taken[0] += 1

            front = ClusterRuntime(config, ClusterConfig(address="auto", namespace="bench_ray", actors=0), events=False)
            front.subscribe(count)
            front.start()
            time.sleep(min(1.0, args.seconds / 3))  # the poll threads reach their pace
            begin, start_count = time.perf_counter(), taken[0]
            time.sleep(args.seconds)
            rate = (taken[0] - start_count) / (time.perf_counter() - begin)
            front.stop()
            for hose in hoses:
                ray.kill(hose)
            label = "counts + wire encode" if encode else "counts only"
            per_result = f"{1e6 / rate:14.1f}" if rate else "  none taken in"
            print(f"  {groups:>6}  {label:<20} {rate:10.0f} {per_result}", flush=True)


def recovery(args: argparse.Namespace) -> None:
    """A worker node lost under four live streams: seconds until each moved stream gives a result again."""
    from ray.cluster_utils import Cluster

    street = str(Path(__file__).resolve().parents[1] / "samples" / "street.mp4")
    names = [f"cam{i + 1}" for i in range(4)]
    print(
        "recovery: a head (no CPUs) and 2 worker nodes, 2 camera groups, 4 streams of samples/street.mp4 (realtime, "
        "inference_fps 2, detect); the node of cam1's group removed (load average "
        f"{os.getloadavg()[0]:.2f} before)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp", ignore_cleanup_errors=True) as tmp:
        store = 100 * 2**20
        head = {"num_cpus": 0, "include_dashboard": False, "temp_dir": tmp, "object_store_memory": store}
        cluster = Cluster(initialize_head=True, head_node_args=head)
        front = None
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=2, object_store_memory=store)
            config = load_config(env={}, overrides={"device": "cpu", "stages": "detect", "threads": 1})
            options = ClusterConfig(address=cluster.address, actors=2, lost_after_s=2.0, namespace="bench_recovery")
            streams = [StreamSpec(id=name, source=street, loop=True, inference_fps=2) for name in names]
            front = ClusterRuntime(config, options, streams=streams, events=False)
            last: dict[str, float] = {}
            front.subscribe(lambda result, frame: last.__setitem__(result.stream, time.monotonic()))
            front.start()
            deadline = time.monotonic() + args.limit
            while len(last) < len(names) and time.monotonic() < deadline:
                time.sleep(0.2)
            rows = {row["stream"]: row for row in front.stats()}
            moved = sorted(name for name, row in rows.items() if row.get("group") == rows["cam1"].get("group"))
            node = next(n for n in cluster.worker_nodes if n.node_id == rows["cam1"]["node_id"])
            killed = time.monotonic()
            cluster.remove_node(node, allow_graceful=False)
            back: dict[str, float] = {}
            noticed: float | None = None  # when the front declared the group lost (the actor may outlive its raylet)
            while len(back) < len(moved) and time.monotonic() < killed + args.limit:
                if noticed is None and front.lost:
                    noticed = time.monotonic()
                if noticed is not None:
                    back.update({name: last[name] - killed for name in moved if last.get(name, 0.0) > noticed})
                time.sleep(0.05)
            rows = {row["stream"]: row for row in front.stats()}
            seen = f"{noticed - killed:.1f} s" if noticed is not None else "never"
            print(f"  killed the node of {', '.join(moved)}; the front found its group lost after {seen}", flush=True)
            for name in moved:
                took = f"{back[name]:.1f} s" if name in back else f"not within {args.limit:g} s"
                print(
                    f"  {name}: moved to {rows[name].get('group')}, results again after {took}, "
                    f"reconnects {rows[name].get('reconnects')}",
                    flush=True,
                )
            if back:
                print(f"  recovery: slowest moved stream {max(back.values()):.1f} s (target <= 10 s)", flush=True)
        finally:
            if front is not None:
                front.stop(keep_groups=False)
            cluster.shutdown()  # type: ignore[no-untyped-call]


def store_intake(args: argparse.Namespace) -> None:
    """Events per second the front's event store records (what the recorder thread does per event): ``update``
    events without a snapshot, and ``new`` events each with a 1080p JPEG snapshot as a group sends it."""
    street = str(Path(__file__).resolve().parents[1] / "samples" / "street.mp4")
    with av.open(street) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    jpeg = snapshot_jpeg(cv2.resize(frame, (1920, 1080)))
    count = 200 if args.quick else 2000
    print(f"store intake: {count} events into a fresh event store, one transaction each", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-store-") as folder:
        store = EventStore(Path(folder))
        try:
            for kind, snapshot in (("update", None), ("new", jpeg)):
                begin = time.perf_counter()
                for i in range(count):
                    state = EventState(
                        "cam1",
                        i,
                        "car",
                        None,
                        0.9,
                        0.9,
                        (),
                        (),
                        0.0,
                        1.0,
                        (10.0, 10.0, 200.0, 200.0),
                        (1920, 1080),
                        1.0,
                    )
                    event = Event(uuid.uuid4().hex, kind, ("snapshot",), None, state, snapshot=snapshot is not None)
                    store.record(event, snapshot)
                rate = count / (time.perf_counter() - begin)
                what = f"with a {len(jpeg) / 1e3:.0f} KB JPEG snapshot" if snapshot else "without snapshot"
                print(f"  {kind:<6} events {what:<32} {rate:8.0f} events/s", flush=True)
        finally:
            store.close()


@contextlib.contextmanager
def local_ray(cores: int) -> Iterator[None]:
    """A fresh local Ray instance (session files in a temporary folder) for the ``with`` body; Serve and Ray are
    shut down at the end, whatever happens."""
    with tempfile.TemporaryDirectory(prefix="bench-ray-", ignore_cleanup_errors=True) as tmp:
        ray.init(
            "local",
            num_cpus=max(2, cores),
            namespace="bench_ray",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=512 * 2**20,
            _temp_dir=tmp,
        )
        try:
            yield
        finally:
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run, numbers are noise")
    parser.add_argument("--calls", type=int, default=200, help="calls measured per overhead path")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds a scaling run lasts")
    parser.add_argument("--rounds", type=int, default=2, help="scaling rounds (ABBA over the actor counts)")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4], help="actor counts scaled over")
    parser.add_argument("--model-ms", type=float, default=20.0, help="the synthetic model's cost per frame")
    parser.add_argument("--limit", type=float, default=60.0, help="seconds a section may take at most")
    parser.add_argument("--per-batch", type=int, default=64, help="results a stand-in group answers per take")
    parser.add_argument("--group-seconds", type=float, default=10.0, help="seconds a group vs in-process run lasts")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.seconds, args.rounds, args.limit, args.group_seconds = 20, 1.0, 1, 20.0, 2.0
    if 1 not in args.actors:
        parser.error("--actors must include 1 (the base of the ratios)")
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    with local_ray(os.cpu_count() or 1):
        overhead(args)
        scaling(args)
        group_vs_local(args)
        front_intake(args)
    store_intake(args)
    if args.quick:
        print("recovery: not in --quick (it starts a 3-node cluster; tests/cluster covers the fault itself)")
    else:
        recovery(args)


if __name__ == "__main__":
    main()
