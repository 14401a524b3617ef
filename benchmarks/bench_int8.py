"""INT8 against fp32 on the CPU: agreement, cascade frames/s, and each model alone.

The int8 models are built as ``precision = "int8"`` builds them
(``streamer.models.quantize``: calibrated on the shipped samples), but with
the agreement check off (``build_int8(check=False)``): a build that misses
the targets is measured here, not refused; the builds go to a temporary
folder, removed at the end, never to the model cache. Printed:

- whether this CPU has VNNI (int8 dot products; without it ONNX Runtime's
  int8 kernels can saturate, and the build uses 7-bit weights);
- agreement with fp32 on the build's check images: the classifier's top-1
  class (target >= 97% of the images), the detector's boxes, same class and
  IoU >= 0.5 (target >= 95% of the boxes; the count of boxes);
- cascade frames/s (yolov3-tiny, then EfficientNet-Lite0 on every crop it
  can describe; ``Cascade.run``, one frame per call, CPU) of int8 against
  fp32 in one process, over frames of ``samples/street.mp4`` and
  ``samples/collage.jpg``, in ABBA rounds; the ratio int8 / fp32 is the
  median of the per-round ratios. Target: >= 1.7;
- each model alone at batch 1 (``Engine.run`` on the tensor the stage
  builds: the collage for the detector, its cat crop for the classifier),
  ms per image, int8 against fp32, ABBA, medians of rounds.

    python benchmarks/bench_int8.py [--quick] [--rounds 10] [--frames 8] [--runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamer.inference.cascade import Cascade, CascadeConfig, Request
from streamer.models import quantize
from streamer.models.spec import ClassifierModel, DetectorModel
from streamer.sources.images import read_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def street_frames(count: int) -> list[np.ndarray]:
    """``count`` frames of street.mp4, evenly spread, RGB."""
    capture = cv2.VideoCapture(str(SAMPLES / "street.mp4"))
    frames: list[np.ndarray] = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    step = max(1, len(frames) // count)
    return frames[::step][:count]


def abba(sides: dict[str, Callable[[], None]], rounds: int, per_call: int) -> dict[str, list[float]]:
    """Items/s of each side per round (``per_call`` items a call), the order reversed every other round."""
    for fn in sides.values():
        fn()  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    for round_ in range(rounds):
        for name in order if round_ % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn = sides[name]
            fn()
            rates[name].append(per_call / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run, numbers are noise")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--frames", type=int, default=8, help="street.mp4 frames per cascade call (+ the collage)")
    parser.add_argument("--runs", type=int, default=20, help="batch-1 runs per round and side, each model alone")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.frames, args.runs = 2, 1, 2
        quantize.CALIBRATION_IMAGES, quantize.CHECK_IMAGES = 4, 4

    flags = quantize.cpu_flags()
    vnni = quantize.has_vnni(flags)
    print(f"cpu: VNNI {'yes' if vnni else 'no'} (avx512_vnni/avx_vnni in /proc/cpuinfo flags)")

    # precision = "int8", as configured, with the build's agreement check off: measured, not enforced.
    built: dict[str, quantize.Int8Build] = {}
    checked = quantize.build_int8

    scratch = tempfile.TemporaryDirectory(prefix="bench-int8-")

    def unchecked(fp32: Path, declaration: Any, task: str, **options: Any) -> quantize.Int8Build:
        options["cache_dir"] = Path(scratch.name)
        built[task] = checked(fp32, declaration, task, **options, check=False)
        return built[task]

    quantize.build_int8 = unchecked  # for_precision calls it by this name
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # ONNX Runtime's calibration prints its progress
            cascades = {
                precision: Cascade(
                    CascadeConfig(
                        model=ClassifierModel(model="efficientnet-lite0", precision=precision),
                        detector=DetectorModel(model="yolov3-tiny", precision=precision),
                        stages="cascade",
                        device="cpu",
                    )
                )
                for precision in ("fp32", "int8")
            }
    finally:
        quantize.build_int8 = checked
    size = "quick: 4 calibration and 4 check images" if args.quick else f"{quantize.CHECK_IMAGES} check images"
    print(f"agreement of int8 with fp32 ({size}):")
    for task, build in built.items():
        what = "top-1 class" if task == "classifier" else "boxes (same class, IoU >= 0.5)"
        print(
            f"  {task:10s} {what}: {build.agreement:6.1%} of {build.count} {build.unit} "
            f"(target {build.needed:.0%}: {'met' if build.agrees else 'NOT met'})"
        )

    frames = [*street_frames(args.frames), read_image(SAMPLES / "collage.jpg")]
    requests = [[Request("", frame)] for frame in frames]
    found = {p: sum(len(c.run(r)[0].objects) for r in requests) for p, c in cascades.items()}
    print(f"cascade, one frame per call: {len(frames) - 1} street.mp4 frames + collage.jpg; objects found: {found}")

    def cascade_side(cascade: Cascade) -> Callable[[], None]:
        def run() -> None:
            for request in requests:
                cascade.run(request)

        return run

    rates = abba({p: cascade_side(c) for p, c in cascades.items()}, args.rounds, len(frames))
    ratio = statistics.median(i / f for i, f in zip(rates["int8"], rates["fp32"], strict=True))
    for precision in cascades:
        print(f"  {precision}: {statistics.median(rates[precision]):7.2f} frames/s")
    print(f"ratio int8 / fp32 cascade: {ratio:.3f}  (median of per-round ratios; target >= 1.7)")

    fp32, int8 = cascades["fp32"], cascades["int8"]
    assert fp32.detector and fp32.classifier and int8.detector and int8.classifier
    collage = frames[-1]
    det_tensor, _ = fp32.detector.prepare([collage])
    assert isinstance(det_tensor, np.ndarray)
    height, width = collage.shape[:2]
    cat = collage[height // 2 :, width // 2 :]  # the collage's cat tile
    fitted = fp32.classifier.fit(cat)
    assert isinstance(fitted, np.ndarray)
    cls_tensor = fp32.classifier.tensor([fitted])
    print(f"each model alone, batch 1, ms per image (median of {args.rounds} rounds x {args.runs} runs):")
    for task, sides, tensor in (
        ("classifier", (fp32.classifier, int8.classifier), cls_tensor),
        ("detector", (fp32.detector, int8.detector), det_tensor),
    ):
        engines = {"fp32": sides[0].engine, "int8": sides[1].engine}

        def runs(engine: Any, tensor: np.ndarray = tensor) -> Callable[[], None]:
            def run() -> None:
                for _ in range(args.runs):
                    engine.run(tensor)

            return run

        per_s = abba({p: runs(e) for p, e in engines.items()}, args.rounds, args.runs)
        ms = {p: 1e3 / statistics.median(r) for p, r in per_s.items()}
        speedup = statistics.median(i / f for i, f in zip(per_s["int8"], per_s["fp32"], strict=True))
        print(
            f"  {task:10s} fp32 {ms['fp32']:7.2f} ms   int8 {ms['int8']:7.2f} ms   speed-up int8 / fp32 {speedup:.2f}"
        )
    scratch.cleanup()


if __name__ == "__main__":
    main()
