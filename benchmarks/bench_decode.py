"""Benchmark: class-wise NMS against OpenCV at 50, 300 and 10,000 boxes, then decode + NMS on 10,000 boxes.

Synthetic YOLOv5-layout output (``[1, rows, 85]``: cx, cy, w, h, objectness,
80 class scores) for a 1280x720 source letterboxed into 640x640. ``passing``
rows pass ``conf_threshold = 0.25``: they are jittered copies of 50 objects,
each of one of the 80 classes (centre jitter 5% of the object size, size
jitter ~8%); the rest, if any, are background with objectness below 0.2.

NMS: :func:`streamer.vision.nms.batched_nms` on the passing boxes as
``decode`` hands them over (float32 corners in source pixels, clipped to the
image; float32 scores; int64 class ids; IoU 0.45, at most 300 kept) against
bare OpenCV, what a user would write on the same inputs: corners to
float64 x, y, w, h, ``cv2.dnn.NMSBoxesBatched``, the first 300. Both must
keep the same boxes. They run interleaved in rounds (ABBA), timed in CPU time
of the calling thread (both are single-threaded), which a busy shared machine
moves much less than wall time; the ratio OpenCV / ours is the median of the
per-round ratios. Targets: ratio >= 0.9 at 300 and 10,000 boxes, >= 0.8 at 50
boxes, where ours pays ~5 us of input checks (they keep OpenCV's answer equal
to ours) on a ~45 us call; the script exits 1 if one is missed. With fewer
than 20 rounds (a smoke run) the targets are not checked.

Decode: the median of ``--runs`` runs of :func:`streamer.vision.detect.decode`,
of a hand-written minimal numpy decode (product, argmax, threshold, map,
clip) calling the same ``batched_nms`` (so the ratio is our overhead), in
three cases: all 10,000 rows passing, 10,000 of 25,200 rows (YOLOv5 at
640x640) passing, and a stress case where 5% of the boxes are won by a random
other class (so ~500 lone boxes survive NMS instead of ~50).

    python benchmarks/bench_decode.py [--runs 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np

from streamer.vision.detect import decode
from streamer.vision.nms import batched_nms
from streamer.vision.preprocess import Letterbox, letterbox

SOURCE = (1280, 720)
INPUT = (640, 640)
CLASSES = 80
OBJECTS = 50
PASSING = 10_000
CONF, IOU, MAX_DET = 0.25, 0.45, 300
RUNS = 200
TARGETS = {50: 0.8, 300: 0.9, 10_000: 0.9}  # boxes: the least OpenCV time / our time (see above)
CHECKED_FROM = 20  # rounds: fewer is a smoke run, too noisy to hold a target


def synthetic_output(rows: int, confusion: float = 0.0, seed: int = 0, passing: int = PASSING) -> np.ndarray:
    """``[1, rows, 85]`` float32 with exactly ``passing`` rows scoring >= ``CONF``."""
    rng = np.random.default_rng(seed)
    _, box = letterbox(np.zeros((SOURCE[1], SOURCE[0], 3), np.uint8), INPUT)
    top, bottom = box.pad_y, INPUT[1] - box.pad_y
    centres = np.column_stack([rng.uniform(0, INPUT[0], OBJECTS), rng.uniform(top, bottom, OBJECTS)])
    sizes = rng.uniform(20, 200, (OBJECTS, 2))
    labels = rng.integers(0, CLASSES, OBJECTS)

    owner = rng.integers(0, OBJECTS, passing)
    wh = sizes[owner] * np.exp(rng.normal(0, 0.08, (passing, 2)))
    xy = centres[owner] + rng.normal(0, 0.05, (passing, 2)) * sizes[owner]
    scores = rng.uniform(0, 0.3, (passing, CLASSES))
    winner = labels[owner].copy()
    confused = rng.random(passing) < confusion
    winner[confused] = rng.integers(0, CLASSES, int(confused.sum()))
    scores[np.arange(passing), winner] = rng.uniform(0.6, 1.0, passing)
    objectness = rng.uniform(0.5, 1.0, passing)
    kept = np.column_stack([xy, wh, objectness, scores])

    background = np.column_stack(
        [
            rng.uniform(0, INPUT[0], (rows - passing, 2)),
            rng.uniform(5, 100, (rows - passing, 2)),
            rng.uniform(0, 0.2, rows - passing),
            rng.random((rows - passing, CLASSES)),
        ]
    )
    out = np.concatenate([kept, background])[rng.permutation(rows)]
    return out[None].astype(np.float32)


def detections(out: np.ndarray, box: Letterbox) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What one would write by hand before NMS: product, argmax, threshold, map to source pixels, clip.

    Returns corners (float64; ``decode``'s are float32), float32 scores and int64 class ids.
    """
    x = out[0]
    scores = x[:, 4:5] * x[:, 5:]
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(x.shape[0]), class_ids]
    keep = best >= CONF
    xy, half = x[keep, :2], x[keep, 2:4] / 2
    boxes = (np.concatenate([xy - half, xy + half], axis=1) - [box.pad_x, box.pad_y] * 2) / box.scale
    np.clip(boxes, 0, [SOURCE[0], SOURCE[1]] * 2, out=boxes)
    return boxes, best[keep], class_ids[keep]


def baseline(out: np.ndarray, box: Letterbox) -> np.ndarray:
    """The minimal numpy one would write by hand: product, argmax, threshold, map, clip, NMS."""
    return batched_nms(*detections(out, box), IOU, MAX_DET)


def median_ms(function: Callable[[], object], runs: int = RUNS) -> float:
    for _ in range(10):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def opencv_nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
    """Bare OpenCV on the same inputs: corners to float64 x, y, w, h, ``NMSBoxesBatched``, the first ``MAX_DET``."""
    xywh = boxes.astype(np.float64)
    xywh[:, 2:] -= xywh[:, :2]
    return np.asarray(cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids, 0.0, IOU))[:MAX_DET]


def interleaved(ours: Callable[[], object], bare: Callable[[], object], rounds: int, calls: int) -> tuple[float, ...]:
    """CPU ms per call of each side (median over rounds) and the median per-round ratio bare / ours."""
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    sides = [("ours", ours), ("bare", bare)]
    for _ in range(3):
        ours(), bare()
    for round_ in range(rounds):
        for label, function in sides if round_ % 2 == 0 else sides[::-1]:  # ABBA: no side always goes first
            start = time.thread_time()
            for _ in range(calls):
                function()
            times[label].append((time.thread_time() - start) / calls * 1000)
    ratio = statistics.median(b / o for o, b in zip(times["ours"], times["bare"], strict=True))
    return statistics.median(times["ours"]), statistics.median(times["bare"]), ratio


def nms_against_opencv(rounds: int, box: Letterbox) -> list[str]:
    """Print ours vs OpenCV at each count; returns the targets missed."""
    check = rounds >= CHECKED_FROM
    print(f"NMS alone, ours (batched_nms) vs bare OpenCV (NMSBoxesBatched), CPU ms per call, {rounds} rounds ABBA:")
    missed = []
    for count, target in TARGETS.items():
        boxes, scores, class_ids = detections(synthetic_output(count, passing=count), box)
        boxes = boxes.astype(np.float32)  # as decode hands them to NMS

        def ours(boxes: np.ndarray = boxes, scores: np.ndarray = scores, ids: np.ndarray = class_ids) -> object:
            return batched_nms(boxes, scores, ids, IOU, MAX_DET)

        def bare(boxes: np.ndarray = boxes, scores: np.ndarray = scores, ids: np.ndarray = class_ids) -> object:
            return opencv_nms(boxes, scores, ids)

        kept = batched_nms(boxes, scores, class_ids, IOU, MAX_DET)
        if not np.array_equal(kept, opencv_nms(boxes, scores, class_ids)):
            raise SystemExit(f"{count} boxes: ours and OpenCV keep different boxes")
        ours_ms, bare_ms, ratio = interleaved(ours, bare, rounds, max(1, 3000 // count))
        verdict = ("ok" if ratio >= target else "MISSED") if check else "not checked"
        print(
            f"  {count:6,} boxes ({len(kept)} kept): ours {ours_ms:7.3f} ms, OpenCV {bare_ms:7.3f} ms, "
            f"ratio OpenCV / ours {ratio:5.2f} (target >= {target}: {verdict})"
        )
        if check and ratio < target:
            missed.append(f"{count} boxes: ratio {ratio:.2f} < {target}")
    if not check:
        print(f"  (targets not checked: {rounds} rounds < {CHECKED_FROM})")
    return missed


def decode_against_hand_written(runs: int, box: Letterbox) -> None:
    for rows, confusion in ((PASSING, 0.0), (25_200, 0.0), (PASSING, 0.05)):
        out = synthetic_output(rows, confusion)
        boxes, scores, class_ids = detections(out, box)

        def ours(out: np.ndarray = out) -> object:
            return decode(
                [out],
                "yolov5",
                0,
                letterbox=box,
                source_size=SOURCE,
                conf_threshold=CONF,
                iou_threshold=IOU,
                max_detections=MAX_DET,
            )

        def hand(out: np.ndarray = out) -> np.ndarray:
            return baseline(out, box)

        def nms_alone(boxes: np.ndarray = boxes, scores: np.ndarray = scores, ids: np.ndarray = class_ids) -> object:
            return batched_nms(boxes, scores, ids, IOU, MAX_DET)

        kept = len(hand())
        ours_ms, hand_ms, nms_ms = median_ms(ours, runs), median_ms(hand, runs), median_ms(nms_alone, runs)
        print(
            f"output [1, {rows}, 85]: {scores.size} boxes pass conf {CONF} "
            f"({confusion:.0%} of them won by a random other class), {kept} kept after NMS"
        )
        print(f"  decode+nms 10k boxes: {ours_ms:.2f} ms (wall, median)")
        print(f"  hand-written baseline: {hand_ms:.2f} ms; ratio ours/baseline = {ours_ms / hand_ms:.2f}")
        print(f"  batched_nms alone: {nms_ms:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="NMS rounds, and timed decode runs (medians reported)")
    runs = parser.parse_args().runs
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    _, box = letterbox(np.zeros((SOURCE[1], SOURCE[0], 3), np.uint8), INPUT)
    missed = nms_against_opencv(runs, box)
    decode_against_hand_written(runs, box)
    if missed:
        print("targets missed: " + "; ".join(missed))
        sys.exit(1)


if __name__ == "__main__":
    main()
