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

    python benchmarks/bench_classify.py [--rounds 12] [--images 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

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


if __name__ == "__main__":
    main()
