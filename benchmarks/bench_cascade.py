"""Frames/s of the cascade (detect, then classify every crop it can describe) against its bare model runs.

The frame is samples/collage.jpg, a 2x2 grid of real photographs (a cup, a
motorbike, a person, a cat: scikit-image's coffee, stereo_motorcycle,
astronaut, chelsea), so the
detector finds >= 3 objects. The bare baseline is the two ``session.run``
calls alone, on the very tensors our code builds for that frame (detector
input; the crops our code classifies in one classifier batch: every object but
the person, which ImageNet has no class for), with plain onnxruntime sessions
built with the options ours have (``session_options``: idle threads sleep):
the floor no implementation can beat. Both sides run interleaved in rounds
(ABBA); the ratio is the median of per-round ratios. Target: >= 0.95 (issue 14; it was 0.9).

    python benchmarks/bench_cascade.py [--rounds 10] [--frames 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from streamer.models.engine import session_options
from streamer.sources.images import read_image
from streamer.tasks import Classifier, ClassifierOptions
from streamer.vision.preprocess import crop_box


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--frames", type=int, default=10, help="frames per round and side")
    args = parser.parse_args()

    frame = read_image(Path(__file__).resolve().parents[1] / "samples" / "collage.jpg")
    cascade = Classifier.create_from_options(ClassifierOptions(stages="cascade", device="cpu"))
    assert cascade.detector is not None and cascade.classifier is not None
    objects = cascade.classify(frame).objects
    assert len(objects) >= 3, f"the benchmark frame needs >= 3 objects, found {len(objects)}"

    # The exact inputs our code feeds the two models for this frame.
    det_tensor, _ = cascade.detector.prepare([frame])
    crops = [crop_box(frame, np.array(o.box), cascade.options.crop_margin) for o in objects if o.classes]
    cls_tensor = cascade.classifier.tensor([cascade.classifier.fit(c) for c in crops if c is not None])
    cpu = ["CPUExecutionProvider"]  # and the session options ours have
    det = ort.InferenceSession(str(cascade.detector.engine.path), session_options(), providers=cpu)
    cls = ort.InferenceSession(str(cascade.classifier.engine.path), session_options(), providers=cpu)
    det_feed = {det.get_inputs()[0].name: det_tensor}
    cls_feed = {cls.get_inputs()[0].name: cls_tensor}

    def bare() -> None:
        det.run(None, det_feed)
        cls.run(None, cls_feed)

    def ours() -> None:
        cascade.classify(frame)

    for _ in range(3):
        bare(), ours()
    rates: dict[str, list[float]] = {"bare": [], "streamer": []}
    sides = [("bare", bare), ("streamer", ours)]
    for round_ in range(args.rounds):
        for label, fn in sides if round_ % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            for _ in range(args.frames):
                fn()
            rates[label].append(args.frames / (time.perf_counter() - start))
    ratio = statistics.median(o / b for o, b in zip(rates["streamer"], rates["bare"], strict=True))
    print(f"provider: {cascade.provider}; frame {frame.shape[1]}x{frame.shape[0]}, {len(objects)} objects:")
    print("  " + ", ".join(f"{o.name} -> {o.classes[0].name if o.classes else '(not cascaded)'}" for o in objects))
    bare_fps, our_fps = statistics.median(rates["bare"]), statistics.median(rates["streamer"])
    print(f"bare (detector run + one classifier run of {len(cls_tensor)} crops): {bare_fps:6.2f} frames/s")
    print(f"Classifier.classify, stages=cascade:                {our_fps:6.2f} frames/s")
    print(f"ratio streamer / bare: {ratio:.3f}  (median of per-round ratios; target >= 0.95)")


if __name__ == "__main__":
    main()
