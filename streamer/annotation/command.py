"""``streamer annotate``: annotated copies of video files, and their results as JSON lines or CSV.

::

    streamer annotate clip.mp4 -o clip.annotated.mp4 [--jsonl r.jsonl] [--csv r.csv]
    streamer annotate a.mp4 b.mkv recordings/ -o annotated/      # several inputs: -o is a folder
    streamer annotate long.mp4 --csv r.csv --every 5 --start 60 --end 120

Exit status: 0 when every input was annotated whole; 3 when some were cut
short (a truncated or corrupt file: what could be decoded is written, and
the message says where it stopped); 1 when some could not be annotated at
all (the others still are); 2 for bad usage, and 130 when interrupted. No
output is ever left half-written under its final name, and none that exists
is replaced without ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import av.error

from streamer.annotation.job import Outcome, ResultSink, annotate
from streamer.annotation.progress import Progress
from streamer.annotation.reader import VideoReader
from streamer.config import Config
from streamer.errors import ConfigError, InputNotFoundError, SourceError, StreamerError
from streamer.events import Event, EventRecorder
from streamer.events.clips import follow_event
from streamer.events.encoder import FrameClipEncoder
from streamer.files import atomic_path, check_outputs
from streamer.frames import Frame
from streamer.inference.backend import LocalBackend
from streamer.interrupts import terminate_as_interrupt
from streamer.results import FrameResult
from streamer.sinks.jsonl import JsonlWriter
from streamer.sinks.table import CsvWriter
from streamer.sinks.video import VideoWriter
from streamer.tracking.objects import ObjectTracker

__all__ = ["EXIT_PARTIAL", "VIDEO_SUFFIXES", "add_parser", "find_videos", "run"]

log = logging.getLogger("streamer")

EXIT_FAILED = 1
EXIT_PARTIAL = 3
VIDEO_SUFFIXES = (
    ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv",
    ".3gp", ".ogv", ".h264", ".hevc", ".y4m",
)  # fmt: skip


def add_parser(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add ``annotate`` to the ``streamer`` sub-commands."""
    parser = commands.add_parser(
        "annotate",
        parents=parents,
        help="write annotated copies of video files (default stages: cascade)",
        description="Classify every frame of video files; write copies with boxes and labels, and the results.",
        epilog=(
            "exit status: 0 all annotated whole; 3 some input cut short (truncated or corrupt: what decodes is "
            "written); 1 some input not annotated at all (the others are); 2 bad usage; 130 interrupted"
        ),
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video files or folders of them")
    parser.add_argument(
        "-o", "--output", type=Path, help="annotated video (.mp4, .mkv, .mov, .webm); a folder for several inputs"
    )
    parser.add_argument("--jsonl", type=Path, help="write the results here, one JSON object per frame")
    parser.add_argument("--csv", type=Path, help="write the results here, one row per object per frame")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="classify every N-th frame (default 1)")
    parser.add_argument("--start", type=float, metavar="SECONDS", help="begin this far into each input")
    parser.add_argument("--end", type=float, metavar="SECONDS", help="stop this far into each input")
    parser.add_argument("--codec", help="video codec of the output (default h264)")
    parser.add_argument("--batch", type=int, default=4, help="frames per inference batch (default 4)")
    parser.add_argument("--force", action="store_true", help="replace outputs that already exist")
    parser.add_argument(
        "--events", action="store_true", help="record the objects' events, snapshots and clips in [storage] dir"
    )


def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` (any depth, by suffix), sorted; hidden files skipped."""
    found = [
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in VIDEO_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return sorted(found)


@dataclass(frozen=True)
class _Job:
    source: Path
    output: Path | None


def _plan(args: argparse.Namespace) -> list[_Job]:
    """Inputs expanded and paired with their outputs; usage errors raised before any work."""
    if args.output is None and args.jsonl is None and args.csv is None and not args.events:
        raise ConfigError("nothing to write: give -o OUTPUT.mp4, --jsonl FILE, --csv FILE and/or --events")
    if args.every < 1:
        raise ConfigError(f"--every must be 1 or more, got {args.every}")
    if args.batch < 1:
        raise ConfigError(f"--batch must be 1 or more, got {args.batch}")
    if args.start is not None and args.start < 0:
        raise ConfigError(f"--start must be 0 or more seconds, got {args.start}")
    if args.end is not None and args.end <= (args.start or 0.0):
        raise ConfigError(f"--end ({args.end}) must be after --start ({args.start or 0.0})")
    pairs: list[tuple[Path, Path]] = []  # (source, its name under an output folder)
    for given in args.inputs:
        if given.is_dir():
            videos = find_videos(given)
            if not videos:
                raise InputNotFoundError(f"folder {given} has no video files ({', '.join(VIDEO_SUFFIXES[:6])}, ...)")
            pairs += [(video, video.relative_to(given)) for video in videos]
        else:
            pairs.append((given, Path(given.name)))
    many = len(pairs) > 1 or any(given.is_dir() for given in args.inputs)
    out: Path | None = args.output
    if out is not None and many and out.suffix and not out.is_dir():
        raise ConfigError(f"-o {out}: with several inputs, -o names a folder (the annotated copies go inside)")
    if out is not None and not many and out.is_dir():
        out = out / pairs[0][1].with_suffix(".mp4")
    jobs = [
        _Job(source, None if out is None else out / name.with_suffix(".mp4") if many else out) for source, name in pairs
    ]
    outputs = [job.output for job in jobs if job.output is not None] + [p for p in (args.jsonl, args.csv) if p]
    check_outputs(outputs, [job.source for job in jobs], force=args.force, make_folders=many)
    return jobs


class _NothingAnnotated(Exception):
    """Raised inside the outputs' block when every input failed: the results files are discarded, not left empty."""


@contextlib.contextmanager
def _text_output(path: Path | None) -> Iterator[TextIO | None]:
    """An open text file written through :func:`atomic_path`, or ``None``."""
    if path is None:
        yield None
        return
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _whole(job: _Job, outcome: Outcome) -> Outcome:
    """``outcome``, unless not one frame was decoded."""
    if outcome.frames == 0:
        raise SourceError(f"{job.source}: no video frames could be decoded ({outcome.stopped or 'the video is empty'})")
    return outcome


Watcher = Callable[[FrameResult, Frame], None]


@contextlib.contextmanager
def _recording(config: Config, enabled: bool) -> Iterator[tuple[list[Watcher], Callable[[str], None]]]:
    """With ``enabled``: the watchers that record events (and encode their clips) into the event store, and
    what ends a file's open events once it is done."""
    if not enabled:
        yield [], lambda stream: None
        return
    store = config.event_store()
    clips = (
        FrameClipEncoder(store.clips_dir, config.clip_config(), on_done=store.attach_clip)
        if config["storage.clips"]
        else None
    )

    def clip(event: Event, frame: Frame) -> None:
        if clips is not None:
            follow_event(clips, event, frame.pts_ms)

    recorder = EventRecorder(store, on_event=clip)
    recorder.start()
    watchers: list[Watcher] = [recorder.on_result]
    if clips is not None:
        watchers.insert(0, lambda result, frame: clips.frame(frame.stream_id, frame.image, frame.pts_ms))
    try:
        yield watchers, recorder.end_stream
    finally:
        recorder.close()
        if clips is not None:
            clips.close()
        store.close()


def _annotate_one(
    backend: LocalBackend,
    job: _Job,
    args: argparse.Namespace,
    sinks: list[ResultSink],
    watchers: list[Watcher],
) -> Outcome:
    reader = VideoReader(job.source)
    try:
        expected = reader.expected_frames(args.start, args.end)
        progress = Progress(str(job.source), expected)
        options: dict[str, Any] = {
            "stream_id": str(job.source),
            "sinks": sinks,
            "every": args.every,
            "start": args.start,
            "end": args.end,
            "batch": args.batch,
            "progress": progress,
            "watchers": watchers,
        }
        if job.output is None:
            return _whole(job, annotate(backend, reader, **options))
        with atomic_path(job.output) as tmp:  # a failure below removes tmp: no empty or partial file
            writer = VideoWriter(
                tmp, like=reader.video, size=reader.size, audio=reader.audio, codec=args.codec, output_name=job.output
            )
            try:
                outcome = _whole(job, annotate(backend, reader, writer=writer, **options))
            except BaseException:
                writer.abort()
                raise
            writer.close()
        return outcome
    finally:
        reader.close()


def run(args: argparse.Namespace, config: Config) -> int:
    """The ``annotate`` command; returns the exit status (see the module docstring)."""
    jobs = _plan(args)
    stages = args.stages or "cascade"  # pictures of boxes unless told otherwise
    tracking = config.tracking_config()
    tracks = stages != "classify" and bool(config["tracking.enabled"])
    if args.events and not tracks:
        raise ConfigError(
            "--events records tracked objects: it needs --stages detect or cascade and [tracking] enabled"
        )
    failed = partial = 0
    with (
        contextlib.suppress(_NothingAnnotated),
        terminate_as_interrupt(),
        contextlib.closing(
            LocalBackend(config.cascade_config(stages), hooks=(lambda _: ObjectTracker(tracking)) if tracks else None)
        ) as backend,
        _recording(config, args.events) as (watchers, end_events),
        _text_output(args.jsonl) as jsonl,
        _text_output(args.csv) as table,
    ):
        sinks: list[ResultSink] = []
        if jsonl is not None:
            sinks.append(JsonlWriter(jsonl))
        if table is not None:
            sinks.append(CsvWriter(table))
        for job in jobs:
            try:
                try:
                    outcome = _annotate_one(backend, job, args, sinks, watchers)
                finally:
                    end_events(str(job.source))
            except ConfigError:  # bad usage (--codec, an output format): the same for every input, exit 2
                raise
            except (StreamerError, av.error.FFmpegError) as exc:
                print(f"streamer: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            where = f" -> {job.output}" if job.output else ""
            print(
                f"{job.source}: {outcome.frames} frames ({outcome.inferred} classified) in {outcome.seconds:.1f} s, "
                f"{outcome.fps:.1f} fps{where}",
                flush=True,
            )
            if outcome.stopped is not None:
                print(f"streamer: warning: {job.source}: {outcome.stopped}", file=sys.stderr)
                partial += 1
        if failed == len(jobs):
            raise _NothingAnnotated
    if failed:
        return EXIT_FAILED
    return EXIT_PARTIAL if partial else 0
