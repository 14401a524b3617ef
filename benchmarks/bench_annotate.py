"""Benchmark: ``streamer annotate`` on a 720p clip with the embedded cascade.

The clip (real photographs panned, 1280x720 H.264, made at start) is
annotated with YOLOv3-tiny + EfficientNet-Lite0. Printed, in frames per
second, on this machine, in one process:

- each stage alone, on the same frames: decode (PyAV, to RGB), inference
  (``Classifier.process`` in batches, on frames decoded beforehand), encode
  (``draw_result`` + H.264 encoding, with results computed beforehand);
- the annotation job (:func:`streamer.annotation.job.annotate`: the three
  stages overlapped on threads), and the whole command
  (``streamer annotate CLIP -o OUT.mp4 --jsonl R.jsonl``, in process, model
  loading included);
- the naive loop a user would write (read a frame, run the models in VIDEO
  mode, draw, encode, repeat) with the same models and encoder settings.

Then the ratio job / slowest stage (target >= 0.85) and job / naive loop
(must be > 1). Run: ``python benchmarks/bench_annotate.py [--frames N]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import av

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.annotation.job import annotate
from streamer.annotation.reader import VideoItem, VideoReader
from streamer.cli import main as streamer_main
from streamer.results import FrameResult
from streamer.sinks.video import VideoWriter
from streamer.tasks import Classifier, ClassifierOptions, RunningMode
from streamer.vision.draw import draw_result
from tests.media import make_clip

BATCH = 4


def decode_alone(path: Path) -> tuple[list[VideoItem], float]:
    reader = VideoReader(path)
    start = time.perf_counter()
    items = [item for item in reader.items() if isinstance(item, VideoItem)]
    seconds = time.perf_counter() - start
    reader.close()
    return items, len(items) / seconds


def inference_alone(classifier: Classifier, items: list[VideoItem]) -> tuple[list[FrameResult], float]:
    start = time.perf_counter()
    results: list[FrameResult] = []
    for i in range(0, len(items), BATCH):
        results += classifier.process([item.image for item in items[i : i + BATCH]])
    return results, len(items) / (time.perf_counter() - start)


def encode_alone(path: Path, out: Path, items: list[VideoItem], results: list[FrameResult]) -> float:
    reader = VideoReader(path)
    writer = VideoWriter(out, like=reader.video)
    start = time.perf_counter()
    for item, result in zip(items, results, strict=True):
        writer.write(draw_result(item.image, result), item.pts)
    writer.close()
    seconds = time.perf_counter() - start
    reader.close()
    return len(items) / seconds


def job(classifier: Classifier, path: Path, out: Path) -> float:
    reader = VideoReader(path)
    writer = VideoWriter(out, like=reader.video)
    outcome = annotate(classifier, reader, stream_id=path.name, writer=writer, batch=BATCH)
    writer.close()
    reader.close()
    return outcome.frames / outcome.seconds


def naive(options: ClassifierOptions, path: Path, out: Path) -> float:
    """Read a frame, classify it (VIDEO mode), draw, encode, write; repeat."""
    with Classifier.create_from_options(options) as classifier, av.open(str(path)) as container:
        stream = container.streams.video[0]
        writer = VideoWriter(out, like=stream)
        frames = 0
        start = time.perf_counter()
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            result = classifier.classify_for_video(image, round(frame.time * 1000))
            writer.write(draw_result(image, result), frame.pts)
            frames += 1
        writer.close()
        return frames / (time.perf_counter() - start)


def command(path: Path, folder: Path) -> float:
    start = time.perf_counter()
    code = streamer_main(
        ["annotate", str(path), "-o", str(folder / "cmd.mp4"), "--jsonl", str(folder / "cmd.jsonl"), "--force"]
    )
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"streamer annotate exited with {code}")
    with av.open(str(folder / "cmd.mp4")) as container:
        return container.streams.video[0].frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames in the 720p clip (25 fps)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    args = parser.parse_args()
    options = ClassifierOptions(stages="cascade", device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_clip(folder / "clip.mp4", frames=args.frames, fps=25, size=(1280, 720))
        with Classifier.create_from_options(options) as classifier:
            print(f"clip: {args.frames} frames, 1280x720 H.264, 25 fps; cascade on {classifier.provider}")
            items, decode_fps = decode_alone(clip)
            results, infer_fps = inference_alone(classifier, items)
            objects = sum(len(r.objects) for r in results) / len(results)
            encode_fps = encode_alone(clip, folder / "encode.mp4", items, results)
            del items
            job_fps = job(classifier, clip, folder / "job.mp4")
        naive_fps = naive(dataclasses.replace(options, running_mode=RunningMode.VIDEO), clip, folder / "naive.mp4")
        command_fps = command(clip, folder)
    slowest = min(decode_fps, infer_fps, encode_fps)
    print(f"  decode alone:    {decode_fps:7.1f} frames/s")
    print(f"  inference alone: {infer_fps:7.1f} frames/s  ({objects:.1f} objects per frame, batches of {BATCH})")
    print(f"  encode alone:    {encode_fps:7.1f} frames/s  (draw + H.264)")
    print(f"  annotate job:    {job_fps:7.1f} frames/s")
    print(f"  whole command:   {command_fps:7.1f} frames/s  (model loading included)")
    print(f"  naive loop:      {naive_fps:7.1f} frames/s")
    print(f"ratio job / slowest stage = {job_fps / slowest:.2f} (target >= 0.85)")
    print(f"ratio job / naive loop = {job_fps / naive_fps:.2f} (must be > 1)")


if __name__ == "__main__":
    main()
