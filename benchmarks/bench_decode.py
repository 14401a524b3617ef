"""Benchmark: detector decoding + class-wise NMS on 10,000 boxes that pass the threshold.

Synthetic YOLOv5-layout output (``[1, rows, 85]``: cx, cy, w, h, objectness,
80 class scores) for a 1280x720 source letterboxed into 640x640. 10,000 rows
pass ``conf_threshold = 0.25``: they are jittered copies of 50 objects, each
of one of the 80 classes (centre jitter 5% of the object size, size jitter
~8%); the rest, if any, are background with objectness below 0.2. Three cases:
all 10,000 rows passing (the target), 10,000 of 25,200 rows (YOLOv5 at
640x640) passing, and a stress case where 5% of the boxes are won by a random
other class (so ~500 lone boxes survive NMS instead of ~50).

Prints the median of 200 runs of :func:`streamer.vision.detect.decode`, of a
hand-written minimal numpy decode (product, argmax, threshold, map, clip)
calling the same :func:`~streamer.vision.nms.batched_nms` (so the ratio is
our overhead), and of the NMS alone. Run: ``python benchmarks/bench_decode.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from streamer.vision.detect import Detections, decode
from streamer.vision.nms import batched_nms
from streamer.vision.preprocess import Letterbox, letterbox

SOURCE = (1280, 720)
INPUT = (640, 640)
CLASSES = 80
OBJECTS = 50
PASSING = 10_000
CONF, IOU, MAX_DET = 0.25, 0.45, 300
RUNS = 200


def synthetic_output(rows: int, confusion: float = 0.0, seed: int = 0) -> np.ndarray:
    """``[1, rows, 85]`` float32 with exactly ``PASSING`` rows scoring >= ``CONF``."""
    rng = np.random.default_rng(seed)
    _, box = letterbox(np.zeros((SOURCE[1], SOURCE[0], 3), np.uint8), INPUT)
    top, bottom = box.pad_y, INPUT[1] - box.pad_y
    centres = np.column_stack([rng.uniform(0, INPUT[0], OBJECTS), rng.uniform(top, bottom, OBJECTS)])
    sizes = rng.uniform(20, 200, (OBJECTS, 2))
    labels = rng.integers(0, CLASSES, OBJECTS)

    owner = rng.integers(0, OBJECTS, PASSING)
    wh = sizes[owner] * np.exp(rng.normal(0, 0.08, (PASSING, 2)))
    xy = centres[owner] + rng.normal(0, 0.05, (PASSING, 2)) * sizes[owner]
    scores = rng.uniform(0, 0.3, (PASSING, CLASSES))
    winner = labels[owner].copy()
    confused = rng.random(PASSING) < confusion
    winner[confused] = rng.integers(0, CLASSES, int(confused.sum()))
    scores[np.arange(PASSING), winner] = rng.uniform(0.6, 1.0, PASSING)
    objectness = rng.uniform(0.5, 1.0, PASSING)
    passing = np.column_stack([xy, wh, objectness, scores])

    background = np.column_stack(
        [
            rng.uniform(0, INPUT[0], (rows - PASSING, 2)),
            rng.uniform(5, 100, (rows - PASSING, 2)),
            rng.uniform(0, 0.2, rows - PASSING),
            rng.random((rows - PASSING, CLASSES)),
        ]
    )
    out = np.concatenate([passing, background])[rng.permutation(rows)]
    return out[None].astype(np.float32)


def baseline(out: np.ndarray, box: Letterbox) -> np.ndarray:
    """The minimal numpy one would write by hand: product, argmax, threshold, map, clip, NMS."""
    x = out[0]
    scores = x[:, 4:5] * x[:, 5:]
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(x.shape[0]), class_ids]
    keep = best >= CONF
    xy, half = x[keep, :2], x[keep, 2:4] / 2
    boxes = (np.concatenate([xy - half, xy + half], axis=1) - [box.pad_x, box.pad_y] * 2) / box.scale
    np.clip(boxes, 0, [SOURCE[0], SOURCE[1]] * 2, out=boxes)
    return batched_nms(boxes, best[keep], class_ids[keep], IOU, MAX_DET)


def median_ms(function: Callable[[], object], runs: int = RUNS) -> float:
    for _ in range(10):
        function()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def passing_columns(out: np.ndarray) -> tuple[np.ndarray, ...]:
    """Corners (model pixels), scores and class ids of the rows that pass, for timing the NMS alone."""
    x = out[0]
    scores = x[:, 4:5] * x[:, 5:]
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(x.shape[0]), class_ids]
    keep = best >= CONF
    cx, cy, w, h = x[keep, :4].T
    return np.column_stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), best[keep], class_ids[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per case (median reported)")
    runs = parser.parse_args().runs
    _, box = letterbox(np.zeros((SOURCE[1], SOURCE[0], 3), np.uint8), INPUT)
    for rows, confusion in ((PASSING, 0.0), (25_200, 0.0), (PASSING, 0.05)):
        out = synthetic_output(rows, confusion)
        boxes, scores, class_ids = passing_columns(out)

        def ours(out: np.ndarray = out) -> Detections:
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

        kept = len(ours())
        ours_ms, hand_ms, nms_ms = median_ms(ours, runs), median_ms(hand, runs), median_ms(nms_alone, runs)
        print(
            f"output [1, {rows}, 85]: {scores.size} boxes pass conf {CONF} "
            f"({confusion:.0%} of them won by a random other class), {kept} kept after NMS"
        )
        print(f"  decode+nms 10k boxes: {ours_ms:.2f} ms (target <= 2 ms)")
        print(f"  hand-written baseline: {hand_ms:.2f} ms; ratio ours/baseline = {ours_ms / hand_ms:.2f}")
        print(f"  batched_nms alone: {nms_ms:.2f} ms")


if __name__ == "__main__":
    main()
