"""Benchmark: ``streamer annotate`` on a 720p clip with the embedded cascade.

The clip (real photographs panned, 1280x720 H.264, made at start) is
annotated with YOLOv3-tiny + EfficientNet-Lite0. Printed, in frames per
second, on this machine, in one process:

- each stage alone, on the same frames: decode (PyAV, to RGB), inference
  (``Classifier.process`` in batches, on frames decoded beforehand), encode
  (``draw_result`` + H.264, with results computed beforehand), each with the
  CPU time it takes per frame (all threads);
- the annotation job (:func:`streamer.annotation.job.annotate`: the three
  stages overlapped on threads), and the whole command
  (``streamer annotate CLIP -o OUT.mp4 --jsonl R.jsonl``, in process, model
  loading included);
- the naive loop a user would write (read a frame, run the models in VIDEO
  mode, draw, encode, repeat): once with our writer's encoder settings (the
  same work, so the difference is the overlap), once as written with PyAV's
  defaults (x264's ``medium`` preset).

Then the ratio job / slowest stage (target >= 0.85; the stages alone and the
job are measured in ``--rounds`` interleaved rounds, since this machine's
speed drifts by 10-20% within minutes, and the ratio is the median of the
rounds') and job / naive loop (must be > 1). Where the stages share the same CPU cores (no GPU) the job
cannot beat the cores' capacity: ``cores / sum of CPU per frame``; the
ceiling this puts on the ratio is printed too.
Run: ``python benchmarks/bench_annotate.py [--frames N] [--device cpu|cuda] [--threads N]``
(``--threads 1`` leaves the other cores to decoding and encoding).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import av

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.annotation.job import annotate
from streamer.annotation.reader import VideoItem, VideoReader
from streamer.cli import main as streamer_main
from streamer.inference.backend import Request
from streamer.results import FrameResult
from streamer.sinks.video import VideoWriter
from streamer.tasks import Classifier, ClassifierOptions, RunningMode
from streamer.vision.draw import draw_result
from tests.media import make_clip

BATCH = 4
T = TypeVar("T")


def timed(function: Callable[[], T]) -> tuple[T, float, float]:
    """``function()``, its wall seconds and the process's CPU seconds (all threads) meanwhile."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def decode_all(path: Path) -> list[VideoItem]:
    reader = VideoReader(path)
    items = [item for item in reader.items() if isinstance(item, VideoItem)]
    reader.close()
    return items


def infer_all(classifier: Classifier, items: list[VideoItem]) -> list[FrameResult]:
    results: list[FrameResult] = []
    for i in range(0, len(items), BATCH):
        results += classifier.backend.cascade.run([Request("", item.image) for item in items[i : i + BATCH]])
    return results


def encode_all(path: Path, out: Path, items: list[VideoItem], results: list[FrameResult]) -> None:
    reader = VideoReader(path)
    writer = VideoWriter(out, like=reader.video)
    for item, result in zip(items, results, strict=True):
        writer.write(draw_result(item.image, result), item.pts)
    writer.close()
    reader.close()


def job(classifier: Classifier, path: Path, out: Path) -> float:
    reader = VideoReader(path)
    writer = VideoWriter(out, like=reader.video)
    outcome = annotate(classifier.backend, reader, stream_id=path.name, writer=writer, batch=BATCH)
    writer.close()
    reader.close()
    return outcome.frames / outcome.seconds


def naive(options: ClassifierOptions, path: Path, out: Path, *, our_writer: bool) -> float:
    """Read a frame, classify it (VIDEO mode), draw, encode, write; repeat."""
    with (
        Classifier.create_from_options(options) as classifier,
        av.open(str(path)) as container,
        av.open(str(out), "w") as output,
    ):
        stream = container.streams.video[0]
        writer = VideoWriter(out.with_suffix(".ours.mp4"), like=stream) if our_writer else None
        encoder = output.add_stream("libx264", rate=stream.average_rate)
        encoder.width, encoder.height, encoder.pix_fmt = stream.width, stream.height, "yuv420p"
        frames = 0
        start = time.perf_counter()
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            picture = draw_result(image, classifier.classify_for_video(image, round(frame.time * 1000)))
            if writer is not None:
                writer.write(picture, frame.pts)
            else:
                output.mux(encoder.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
            frames += 1
        if writer is not None:
            writer.close()
        else:
            output.mux(encoder.encode(None))
        return frames / (time.perf_counter() - start)


def stages_alone(classifier: Classifier, clip: Path, folder: Path) -> tuple[int, float, dict[str, tuple[float, float]]]:
    """Frames, objects per frame, and (wall, CPU) seconds of each stage alone; the frames are freed on return."""
    classifier.backend.cascade.run([Request("", decode_all(clip)[0].image)] * BATCH)  # warm up
    items, decode_s, decode_cpu = timed(lambda: decode_all(clip))
    results, infer_s, infer_cpu = timed(lambda: infer_all(classifier, items))
    _, encode_s, encode_cpu = timed(lambda: encode_all(clip, folder / "encode.mp4", items, results))
    objects = sum(len(r.objects) for r in results) / len(results)
    times = {"decode": (decode_s, decode_cpu), "inference": (infer_s, infer_cpu), "encode": (encode_s, encode_cpu)}
    return len(items), objects, times


def command(path: Path, folder: Path, device: str, threads: int | None) -> float:
    start = time.perf_counter()
    out, jsonl = str(folder / "cmd.mp4"), str(folder / "cmd.jsonl")
    extra = ["--threads", str(threads)] if threads else []
    code = streamer_main(["annotate", str(path), "-o", out, "--jsonl", jsonl, "--force", "--device", device, *extra])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"streamer annotate exited with {code}")
    with av.open(str(folder / "cmd.mp4")) as container:
        return container.streams.video[0].frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames in the 720p clip (25 fps)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, help="CPU threads per model (default: one per core)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the stages alone and the job, interleaved")
    args = parser.parse_args()
    options = ClassifierOptions(stages="cascade", device=args.device, threads=args.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = make_clip(folder / "clip.mp4", frames=args.frames, fps=25, size=(1280, 720))
        with Classifier.create_from_options(options) as classifier:
            threads = f"{args.threads} thread(s) per model" if args.threads else "one thread per core per model"
            print(f"clip: {args.frames} frames, 1280x720 H.264, 25 fps; cascade on {classifier.provider}, {threads}")
            rounds: list[tuple[dict[str, tuple[float, float]], float]] = []  # (stages alone, job fps)
            for round_ in range(args.rounds):  # interleaved: this machine's speed drifts by 10-20% in minutes
                if round_ % 2:
                    job_fps = job(classifier, clip, folder / "job.mp4")
                    frames, objects, stages = stages_alone(classifier, clip, folder)
                else:
                    frames, objects, stages = stages_alone(classifier, clip, folder)
                    job_fps = job(classifier, clip, folder / "job.mp4")
                rounds.append((stages, job_fps))
        video_mode = dataclasses.replace(options, running_mode=RunningMode.VIDEO)
        naive_fps = naive(video_mode, clip, folder / "naive.mp4", our_writer=True)
        naive_default_fps = naive(video_mode, clip, folder / "naive-default.mp4", our_writer=False)
        command_fps = command(clip, folder, args.device, args.threads)
    notes = {"inference": f", {objects:.1f} objects per frame, batches of {BATCH}", "encode": ", draw + H.264"}
    for name in rounds[0][0]:
        fps = statistics.median(frames / stages[name][0] for stages, _ in rounds)
        cpu = statistics.median(stages[name][1] for stages, _ in rounds)
        print(
            f"  {name + ' alone:':17}{fps:7.1f} frames/s  "
            f"({cpu / frames * 1000:.1f} ms CPU per frame{notes.get(name, '')})"
        )
    job_fps = statistics.median(fps for _, fps in rounds)
    print(f"  annotate job:    {job_fps:7.1f} frames/s")
    print(f"  whole command:   {command_fps:7.1f} frames/s  (model loading included)")
    print(f"  naive loop:      {naive_fps:7.1f} frames/s  (same encoder settings as ours)")
    print(f"  naive loop:      {naive_default_fps:7.1f} frames/s  (as written with PyAV's defaults)")
    ratios, ceilings = [], []
    for stages, fps in rounds:
        slowest = min(frames / seconds for seconds, _ in stages.values())
        ratios.append(fps / slowest)
        ceilings.append(min(1.0, cores / sum(cpu / frames for _, cpu in stages.values()) / slowest))
    print(
        f"ratio job / slowest stage = {statistics.median(ratios):.2f} (median of {len(rounds)} rounds, each "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.85; CPU ceiling {statistics.median(ceilings):.2f})"
    )
    print(
        f"ratio job / naive loop = {job_fps / naive_fps:.2f} (same work), {job_fps / naive_default_fps:.2f} (defaults)"
    )
    print(f"({cores} cores; CPU ceiling = cores / the stages' CPU per frame, over the slowest stage's frames/s)")


if __name__ == "__main__":
    main()
