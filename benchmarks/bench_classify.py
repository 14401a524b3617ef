"""Images/s of Classifier.classify against a bare loop, in one process.

The bare loop is what a user would write by hand with the same model: the
same resize + centre crop, normalisation and ``session.run`` on
onnxruntime directly, its session built with the options ours have
(``streamer.models.engine.session_options``: idle threads sleep rather than
spin). Both run interleaved in rounds (ABBA order) on the same
photo, so machine noise hits both alike; the ratio ours / bare (the median of
the per-round ratios) is the cost of streamer's API: validation, timings,
category selection, result objects.
Target: ratio >= 0.95 at batch 1.

It also states what antialiasing costs: ``resize_center_crop`` (Pillow's
antialiased bicubic, after averaging whole pixel blocks on large
downscales) against plain cubic interpolation of the same crop
(``cv2.resize`` of the whole image, then the crop), in ms per image, on the
photo and on a 1080p and a 4000x3000 frame.

    python benchmarks/bench_classify.py [--rounds 12] [--images 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import onnxruntime as ort
from skimage import data

from streamer.models.engine import session_options
from streamer.tasks import Classifier, ClassifierOptions
from streamer.vision.preprocess import resize_center_crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--images", type=int, default=60, help="images per round and side")
    args = parser.parse_args()

    image = data.coffee()
    classifier = Classifier.create_from_options(ClassifierOptions(device="cpu"))
    assert classifier.classifier is not None
    path = str(classifier.classifier.engine.path)
    session = ort.InferenceSession(path, session_options(), providers=["CPUExecutionProvider"])  # as ours
    name = session.get_inputs()[0].name

    def bare() -> int:
        crop = resize_center_crop(image, (224, 224), 256)
        tensor = ((crop.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        logits = session.run(None, {name: np.ascontiguousarray(tensor)})[0][0]
        return int(np.argmax(logits))

    def ours() -> int:
        return classifier.classify(image).classes[0].class_id

    assert bare() == ours() == 967, "both sides must see espresso"
    for _ in range(10):  # warm-up
        bare(), ours()
    rates: dict[str, list[float]] = {"bare": [], "streamer": []}
    sides = [("bare", bare), ("streamer", ours)]
    for round_ in range(args.rounds):
        for label, fn in sides if round_ % 2 == 0 else sides[::-1]:  # ABBA: no side always goes first
            start = time.perf_counter()
            for _ in range(args.images):
                fn()
            rates[label].append(args.images / (time.perf_counter() - start))
    bare_ips, our_ips = statistics.median(rates["bare"]), statistics.median(rates["streamer"])
    ratio = statistics.median(o / b for o, b in zip(rates["streamer"], rates["bare"], strict=True))
    print(f"provider: {classifier.provider}, batch 1, {args.rounds} rounds x {args.images} images, coffee 600x400")
    print(f"bare loop (resize+crop, normalise, session.run): {bare_ips:7.1f} images/s")
    print(f"Classifier.classify:                             {our_ips:7.1f} images/s")
    print(f"ratio streamer / bare: {ratio:.3f}  (median of per-round ratios; target >= 0.95)")
    print("the cost of antialiasing (ms per image, median of rounds):")
    for label, frame in (("coffee 600x400", image), ("1080p", _frame(1920, 1080)), ("4000x3000", _frame(4000, 3000))):
        antialiased, cubic = _resize_ms(frame, args.rounds)
        print(f"  {label:<15} antialiased {antialiased:6.2f}   plain cubic {cubic:6.2f}   (+{antialiased - cubic:.2f})")


def _frame(width: int, height: int) -> np.ndarray:
    """A photo-like frame with fine detail: a 3x3 mosaic of the coffee photo at ``width`` x ``height``."""
    return cv2.resize(np.tile(data.coffee(), (3, 3, 1)), (width, height), interpolation=cv2.INTER_AREA)


def _plain_cubic(image: np.ndarray) -> np.ndarray:
    """What streamer did before: the whole image resized by cubic interpolation (no antialiasing), then cropped."""
    height, width = image.shape[:2]
    scale = 256 / min(height, width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    top, left = (new_h - 224) // 2, (new_w - 224) // 2
    return resized[top : top + 224, left : left + 224]


def _resize_ms(frame: np.ndarray, rounds: int, repeats: int = 10) -> tuple[float, float]:
    timings: dict[str, list[float]] = {"antialiased": [], "cubic": []}
    sides = (
        ("antialiased", lambda: resize_center_crop(frame, (224, 224), 256)),
        ("cubic", lambda: _plain_cubic(frame)),
    )
    for _ in range(rounds):
        for label, fn in sides:
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            timings[label].append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(timings["antialiased"]), statistics.median(timings["cubic"])


if __name__ == "__main__":
    main()
