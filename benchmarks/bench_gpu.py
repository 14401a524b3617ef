"""Benchmark: the GPU engine (IO binding, batch buckets, TensorRT, preprocessing inside the graph).

Sections (each a function called by ``main``):

- ``devices``: cascade frames/s (yolov3-tiny, then EfficientNet-Lite0 on
  every crop it can describe) on frames of ``samples/street.mp4`` at batch 1,
  8 and 32, on each of CPU, CUDA and TensorRT fp16 that can load here (the
  others: ``not available: <reason>``). Ours is ``Cascade.run``; the bare
  baseline is the two ``session.run`` calls alone on the tensors the CPU path
  builds for that batch (the detector's batch; one classifier batch of the
  crops), in plain onnxruntime sessions with our providers and options: the
  floor no implementation can beat. ABBA rounds, the ratio the median of the
  per-round ratios; on a GPU ours preprocesses in the graph (``auto``).
- ``preprocess``: the cascade on the CPU provider with preprocessing inside
  the graph against the CPU path (numpy, OpenCV) on the same frames, ABBA,
  frames/s and the ratio graph / cpu. Runs anywhere.
- ``breakdown``: where a frame's time goes at batch 8 on the best device:
  decode (PyAV, per frame), preprocess and run (the cascade's own timings
  per frame), and the GPU's utilisation (``nvidia-smi``, sampled every 0.2 s
  in a thread, where present).
- ``tensorrt cache``: the classifier's TensorRT engine built in a fresh
  cache folder, then a second session loading it (seconds each; TensorRT only).
- ``streams``: how many 1080p30 streams the cascade keeps up with in real
  time, frame age p95 under 250 ms: each stream gives a frame every 1/30 s,
  the newest frame of each stream that has one goes into the next batch (up to
  32), age = result time - frame time. The count is searched by doubling,
  then bisection, at most ``--max-streams``. Real sources: each stream is a
  ``PyAVSource`` playing a 1080p30 H.264 clip at its own speed (a live
  camera), decoded by NVDEC where it can (``decoder = "auto"``; the count of
  sources really on NVDEC is printed), through the real ``Pipeline``
  (max_batch 32): a count is sustained when >= 95% of the decoded frames are
  inferred and frame age p95 (decoded to delivered) is under 250 ms. GPU only
  (a CPU keeps up with about one stream); ``--quick`` runs it anywhere on
  tiny 320x180 clips, as a smoke test.

Run: ``python benchmarks/bench_gpu.py [--quick] [--rounds N] [--seconds S] [--max-streams N]``
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import onnxruntime as ort

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.frames import Frame
from streamer.inference.backend import LocalBackend
from streamer.inference.cascade import Cascade, CascadeConfig, Request
from streamer.models.engine import Engine, EngineOptions, cuda_status, session_options, tensorrt_status
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources.pyav import PyAVSource
from tests.media import make_clip

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
DEVICES = {"cpu": lambda: None, "cuda": cuda_status, "tensorrt": tensorrt_status}
AGE_P95_MS = 250.0


def decode(count: int, size: tuple[int, int] | None = None) -> tuple[list[np.ndarray], float]:
    """The first ``count`` frames of street.mp4 (looped), RGB, resized to ``size`` if given; and the
    median decode time per frame in ms."""
    frames: list[np.ndarray] = []
    times: list[float] = []
    while len(frames) < count:
        with av.open(str(SAMPLES / "street.mp4")) as container:
            clock = time.perf_counter()
            for frame in container.decode(video=0):
                image = frame.to_ndarray(format="rgb24")
                times.append((time.perf_counter() - clock) * 1e3)
                frames.append(image if size is None else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR))
                if len(frames) == count:
                    break
                clock = time.perf_counter()
    return frames, statistics.median(times)


def cascade(device: str, preprocess: str = "auto") -> Cascade:
    return Cascade(CascadeConfig(stages="cascade", device=device, engine=EngineOptions(preprocess=preprocess)))


def abba(sides: dict[str, Callable[[], None]], rounds: int, frames: int) -> dict[str, list[float]]:
    """Frames/s of each side per round, the sides' order reversed every other round; ``frames`` per call."""
    for fn in sides.values():
        fn()  # warm-up: first runs allocate (and on a GPU, tune)
    rates: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            sides[name]()
            rates[name].append(frames / (time.perf_counter() - start))
    return rates


def ratio(rates: dict[str, list[float]], ours: str, theirs: str) -> float:
    return statistics.median(o / t for o, t in zip(rates[ours], rates[theirs], strict=True))


def bare_sides(ours: Cascade, reference: Cascade, batch: list[np.ndarray]) -> Callable[[], None]:
    """The bare baseline of one batch: plain sessions with ``ours``' providers, fed the CPU path's tensors
    (built by ``reference``, the same models preprocessing on the CPU)."""
    assert ours.detector is not None and ours.classifier is not None
    assert reference.detector is not None and reference.classifier is not None
    det_tensor, _ = reference.detector.prepare(batch)
    crops = [
        reference.classifier.fit_crop(image, np.array(o.box, np.float32), reference.config.crop_margin)
        for image, result in zip(batch, reference.run([Request("", i) for i in batch]), strict=True)
        for o in result.objects
        if o.classes
    ]
    cls_tensor = reference.classifier.tensor([c for c in crops if isinstance(c, np.ndarray)])
    det_engine, cls_engine = ours.detector.engine, ours.classifier.engine
    det = ort.InferenceSession(str(det_engine.path), session_options(), providers=det_engine.provider_options)
    cls = ort.InferenceSession(str(cls_engine.path), session_options(), providers=cls_engine.provider_options)
    det_feed = {det.get_inputs()[0].name: det_tensor}
    cls_feed = {cls.get_inputs()[0].name: cls_tensor}

    def bare() -> None:
        det.run(None, det_feed)
        if len(cls_tensor):
            cls.run(None, cls_feed)

    return bare


def devices(frames: list[np.ndarray], batches: tuple[int, ...], rounds: int) -> None:
    print(f"devices: cascade frames/s on street.mp4 frames ({frames[0].shape[1]}x{frames[0].shape[0]}), ABBA")
    print(f"  {'device':<10} {'batch':>5} {'bare':>9} {'streamer':>9} {'ratio':>6}")
    reference = cascade("cpu", "cpu")
    for device, status in DEVICES.items():
        reason = status()
        if reason is not None:
            print(f"  {device:<10} not available: {reason}")
            continue
        ours = reference if device == "cpu" else cascade(device)
        for size in batches:
            batch = frames[:size]
            requests = [Request("", image) for image in batch]
            rates = abba(
                {"bare": bare_sides(ours, reference, batch), "streamer": lambda r=requests, c=ours: c.run(r)},
                rounds,
                size,
            )
            print(
                f"  {device:<10} {size:>5} {statistics.median(rates['bare']):>9.2f} "
                f"{statistics.median(rates['streamer']):>9.2f} {ratio(rates, 'streamer', 'bare'):>6.3f}"
            )


def preprocess(frames: list[np.ndarray], size: int, rounds: int) -> None:
    print(f"preprocess: the cascade on the CPU provider at batch {size}, in the graph against the CPU path, ABBA")
    sides = {p: cascade("cpu", p) for p in ("cpu", "graph")}
    requests = [Request("", image) for image in frames[:size]]
    rates = abba({p: lambda c=c: c.run(requests) for p, c in sides.items()}, rounds, size)
    cpu, graph = statistics.median(rates["cpu"]), statistics.median(rates["graph"])
    print(f"  cpu {cpu:.2f} frames/s, graph {graph:.2f} frames/s")
    print(f"  ratio graph / cpu: {ratio(rates, 'graph', 'cpu'):.3f}  (median of per-round ratios)")


@contextlib.contextmanager
def gpu_utilisation() -> Iterator[list[float]]:
    """GPU utilisation samples (%) from ``nvidia-smi`` every 0.2 s while inside; empty without it."""
    samples: list[float] = []
    stop = threading.Event()
    tool = shutil.which("nvidia-smi")

    def sample() -> None:
        while tool and not stop.wait(0.2):
            done = subprocess.run(
                [tool, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            with contextlib.suppress(ValueError, IndexError):
                samples.append(float(done.stdout.split()[0]))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def best_device() -> str:
    return next((d for d in ("tensorrt", "cuda") if DEVICES[d]() is None), "cpu")


def breakdown(frames: list[np.ndarray], decode_ms: float, size: int, rounds: int) -> None:
    device = best_device()
    print(f"breakdown: per frame at batch {size} on {device} (median of {rounds} batches)")
    model = cascade(device)
    requests = [Request("", image) for image in frames[:size]]
    model.run(requests)
    timings: dict[str, list[float]] = {"preprocess": [], "inference": []}
    with gpu_utilisation() as busy:
        for _ in range(rounds):
            result = model.run(requests)[0]
            for key in timings:
                timings[key].append(result.timings_ms[key] / size)
    print(f"  decode (PyAV, CPU)   {decode_ms:7.2f} ms")
    print(f"  preprocess           {statistics.median(timings['preprocess']):7.2f} ms")
    print(f"  run (and decode out) {statistics.median(timings['inference']):7.2f} ms")
    print(f"  GPU utilisation      {f'{statistics.mean(busy):.0f} %' if busy else 'not measured (no nvidia-smi)'}")


def keeps_up(backend: LocalBackend, clip: Path, streams: int, seconds: float, decoder: str) -> tuple[bool, str]:
    """Whether ``streams`` live copies of ``clip`` (30 fps, played at their own speed, decoded by
    ``decoder``) are all inferred in real time through the real Pipeline (max_batch 32) for ``seconds``:
    >= 95% of the decoded frames inferred and frame age p95 (decoded to delivered) under 250 ms."""
    ages: list[float] = []

    def on_result(result: FrameResult, frame: Frame) -> None:
        ages.append(result.timings_ms["age"])

    pipeline = Pipeline(backend, on_result=on_result, max_batch=32, max_frame_age_ms=1000.0)
    sources = [
        PyAVSource(f"cam{i}", str(clip), realtime=True, loop=True, decoder=decoder, buffer_size=2)
        for i in range(streams)
    ]
    for source in sources:
        pipeline.add(source)
    with pipeline:
        time.sleep(2.0)  # warm-up: every source open and decoding
        decoded = sum(source.stats().decoded for source in sources)
        ages.clear()
        time.sleep(seconds)
        measured = list(ages)
        offered = sum(source.stats().decoded for source in sources) - decoded
        hardware = sum(source.hwaccel is not None for source in sources)
    p95 = float(np.percentile(measured, 95)) if measured else float("inf")
    share = len(measured) / max(1, offered)
    ok = share >= 0.95 and p95 < AGE_P95_MS
    return ok, f"{share:.0%} of {offered / seconds:.0f} frames/s inferred, age p95 {p95:.0f} ms, NVDEC on {hardware}"


def streams(max_streams: int, seconds: float, *, anywhere: bool = False) -> None:
    reason = cuda_status()
    if reason is not None and not anywhere:
        print(f"streams: skipped, it needs a GPU ({reason})")
        return
    device = best_device()
    size = (1920, 1080) if not anywhere else (320, 180)
    with tempfile.TemporaryDirectory() as folder:
        clip = make_clip(Path(folder) / "live.mp4", frames=60, fps=30, size=size)
        backend = LocalBackend(CascadeConfig(stages="cascade", device=device))
        print(
            f"streams: {size[0]}x{size[1]} 30 fps H.264 streams in real time on {device}, NVDEC decoding where it "
            f"can (>= 95% inferred, age p95 < {AGE_P95_MS:.0f} ms), {seconds:.0f} s each"
        )
        try:
            low, high, count = 0, None, 1
            while count <= max_streams and high is None:  # doubling until one fails or the bound
                ok, said = keeps_up(backend, clip, count, seconds, "auto")
                print(f"  {count:>4} streams: {'keeps up' if ok else 'falls behind'}: {said}")
                low, high = (count, None) if ok else (low, count)
                count *= 2
            high = high or max_streams + 1
            while high - low > 1:
                count = (low + high) // 2
                ok, said = keeps_up(backend, clip, count, seconds, "auto")
                print(f"  {count:>4} streams: {'keeps up' if ok else 'falls behind'}: {said}")
                low, high = (count, high) if ok else (low, count)
        finally:
            backend.close()
    bound = f" (the bound, --max-streams {max_streams})" if low == max_streams else ""
    print(f"  sustained: {low} streams{bound}")


def tensorrt_cache(folder: Path) -> None:
    """The TensorRT engine of the embedded classifier built once, then loaded from its cache: seconds each."""
    reason = tensorrt_status()
    if reason is not None:
        print(f"tensorrt cache: not available: {reason}")
        return
    model = Cascade(CascadeConfig(stages="classify", device="cpu")).classifier
    assert model is not None
    options = EngineOptions(device="tensorrt", cache_dir=folder)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        Engine(model.engine.path, options=options)
        times.append(time.perf_counter() - start)
    engines = sorted(p.name for p in (folder / "tensorrt").rglob("*.engine"))
    print(f"tensorrt cache: first session {times[0]:.1f} s (builds), second {times[1]:.1f} s (loads); {engines}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run, numbers are noise")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0, help="per stream-count trial")
    parser.add_argument("--max-streams", type=int, default=64)
    args = parser.parse_args()
    batches = (1, 2) if args.quick else (1, 8, 32)
    rounds = 2 if args.quick else args.rounds
    frames, decode_ms = decode(max(batches))
    devices(frames, batches, rounds)
    preprocess(frames, max(batches) if args.quick else 8, rounds)
    breakdown(frames, decode_ms, max(batches) if args.quick else 8, rounds)
    with tempfile.TemporaryDirectory() as folder:
        tensorrt_cache(Path(folder))
    streams(2 if args.quick else args.max_streams, 1.0 if args.quick else args.seconds, anywhere=args.quick)


if __name__ == "__main__":
    main()
