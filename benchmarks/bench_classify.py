"""Images/s of Classifier.classify against a bare loop, in one process.

The bare loop is what a user would write by hand with the same model: the
same resize + centre crop, normalisation and ``session.run`` on
onnxruntime directly, its session built with the options ours have
(``streamer.models.engine.session_options``: idle threads sleep rather than
spin). Both run interleaved in rounds (ABBA order) on the same photo, so
machine noise hits both alike; rounds are short (~0.2 s a side), so a burst
of noise on the shared machine moves few of them. The ratio ours / bare (the
median of the per-round ratios) is the cost of streamer's API: validation,
timings, category selection, result objects.
Target: ratio >= 0.95 at batch 1.

It also states what antialiasing costs: ``resize_center_crop`` (Pillow's
antialiased bicubic on OpenCV: pixel pairs averaged on large downscales, a
short filter, one warp) against what streamer did before (one cubic warp
of the source pixels that map onto the crop, aliasing), in ms per image
(median of rounds, the two interleaved), on the photo and on a 1080p and a
4000x3000 frame.

    python benchmarks/bench_classify.py [--rounds 48] [--images 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
import onnxruntime as ort
from skimage import data

from streamer.models.engine import session_options
from streamer.tasks import Classifier, ClassifierOptions
from streamer.vision.preprocess import resize_center_crop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=48)
    parser.add_argument("--images", type=int, default=15, help="images per round and side")
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
    print("the cost of antialiasing, resize + centre crop to 224x224 (ms per image, median of rounds):")
    frames = (("coffee 600x400", image), ("1920x1080", _frame(1920, 1080)), ("4000x3000", _frame(4000, 3000)))
    for label, frame in frames:
        antialiased, cubic = _resize_ms(frame, args.rounds)
        print(f"  {label:<15} antialiased {antialiased:6.2f}   plain cubic {cubic:6.2f}   ({antialiased - cubic:+.2f})")


def _frame(width: int, height: int) -> np.ndarray:
    """A photo-like frame with fine detail: a 3x3 mosaic of the coffee photo at ``width`` x ``height``."""
    return cv2.resize(np.tile(data.coffee(), (3, 3, 1)), (width, height), interpolation=cv2.INTER_AREA)


def _plain_cubic(image: np.ndarray, size: tuple[int, int] = (224, 224), shorter: int = 256) -> np.ndarray:
    """What streamer did before: one cubic warp of the source pixels that map onto the crop (no antialiasing)."""
    height, width = image.shape[:2]
    scale = shorter / min(height, width)
    new_w, new_h = max(round(width * scale), size[0]), max(round(height * scale), size[1])
    left, top = (new_w - size[0]) // 2, (new_h - size[1]) // 2
    step_x, step_y = width / new_w, height / new_h
    to_source = np.array([[step_x, 0.0, (left + 0.5) * step_x - 0.5], [0.0, step_y, (top + 0.5) * step_y - 0.5]])
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(image, to_source, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _resize_ms(frame: np.ndarray, rounds: int, repeats: int = 10) -> tuple[float, float]:
    """Median ms per call of the antialiased resize and of the plain cubic one, in alternating rounds."""
    timings: dict[str, list[float]] = {"antialiased": [], "cubic": []}
    sides: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("antialiased", lambda: resize_center_crop(frame, (224, 224), 256)),
        ("cubic", lambda: _plain_cubic(frame)),
    ]
    for round_ in range(rounds):
        for label, fn in sides if round_ % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            timings[label].append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(timings["antialiased"]), statistics.median(timings["cubic"])


if __name__ == "__main__":
    main()
