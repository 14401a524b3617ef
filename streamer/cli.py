"""The ``streamer`` command.

::

    streamer classify IMAGE... [--detect] [--top-k N] [--json]
    streamer draw IMAGE -o OUT.png
    streamer run SOURCE... [--jsonl FILE]
    streamer serve [SOURCE...] [--host H] [--port P] [--token T]
    streamer annotate INPUT... [-o OUTPUT] [--jsonl R.jsonl] [--csv R.csv] [--every N] [--start S] [--end S]
    streamer eval DATASET [-o OUTDIR]
    streamer models list
    streamer models build [NAME...] [--force]

Global flags (``--config``, ``--device``, ``--cache-dir``, ``--log-level``)
override ``config.toml`` and ``STREAMER_*`` variables. Errors print one line
on stderr and exit non-zero: 2 for bad usage or configuration, 1 when some
inputs failed (the others are still processed), 3 when ``annotate`` had to
stop early in a truncated or corrupt file, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2

from streamer.annotation import command as annotation
from streamer.config import Config, load_config
from streamer.errors import ImageError, StreamerError
from streamer.evaluation import command as evaluation
from streamer.models import zoo
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.server.app import ServerConfig, StreamerServer
from streamer.sinks.jsonl import JsonlWriter
from streamer.sources import SourceState, open_source
from streamer.sources.images import read_image
from streamer.tasks import STAGES, Classifier
from streamer.vision.draw import draw_result, object_label

__all__ = ["main"]

log = logging.getLogger("streamer")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer", description="Real-time video stream classifier.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $STREAMER_CONFIG or ./config.toml)")
    common.add_argument("--device", help="auto | cpu | cuda | tensorrt")
    common.add_argument("--cache-dir", help="where converted models are cached")
    common.add_argument("--threads", type=int, help="CPU threads per model (default: one per core)")
    common.add_argument("--log-level", help="debug | info | warning | error")
    commands = parser.add_subparsers(dest="command", required=True)

    stages = argparse.ArgumentParser(add_help=False)
    stages.add_argument("--top-k", type=int, dest="max_results", help="classes to show per image or object")
    stages.add_argument("--threshold", type=float, dest="score_threshold", help="minimum class confidence")
    stages.add_argument("--locale", dest="display_names_locale", help="display names locale")
    stages.add_argument("--model", help="classifier: embedded model name or .onnx path")
    stages.add_argument("--detector", help="detector: embedded model name or .onnx path")
    stages.add_argument("--stages", choices=STAGES, help="classify | detect | cascade")
    stages.add_argument(
        "--detect", action="store_const", const="cascade", dest="stages", help="detect objects, classify each"
    )

    classify = commands.add_parser("classify", parents=[common, stages], help="classify image files")
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    classify.add_argument("--json", action="store_true", help="one JSON object per image")

    draw = commands.add_parser(
        "draw", parents=[common, stages], help="draw boxes and labels on an image (default stages: cascade)"
    )
    draw.add_argument("image", type=Path, metavar="IMAGE")
    draw.add_argument("-o", "--output", type=Path, required=True, help="where to write the picture (PNG, JPEG)")

    run = commands.add_parser("run", parents=[common, stages], help="classify video files, cameras and streams")
    run.add_argument("sources", nargs="+", metavar="SOURCE", help="video file, rtsp:// or http(s):// URL, camera 0")
    run.add_argument("--jsonl", type=Path, help="write results as JSON lines here (default: stdout)")
    run.add_argument("--realtime", action="store_true", help="play files at native speed, like cameras")
    run.add_argument("--loop", action="store_true", help="repeat files forever")
    run.add_argument("--max-batch", type=int, default=4, help="frames per inference batch, across streams")
    run.add_argument("--max-frame-age-ms", type=float, default=500.0, help="drop live frames older than this")
    run.add_argument("--inference-fps", type=float, help="cap inferences per second per stream")
    run.add_argument("--duration", type=float, help="stop after this many seconds")

    serve = commands.add_parser("serve", parents=[common, stages], help="serve results to browsers over WebSockets")
    serve.add_argument("sources", nargs="*", metavar="SOURCE", help="video file, rtsp:// URL, camera 0")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; others need a token)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--token", help="access token for /ws, /api and /metrics (or STREAMER_TOKEN)")
    serve.add_argument("--loop", action="store_true", help="repeat files forever, like cameras")

    annotation.add_parser(commands, [common, stages])
    evaluation.add_parser(commands, [common])

    models = commands.add_parser("models", help="embedded default models")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_commands.add_parser("list", parents=[common], help="show the embedded models and their cache state")
    build = models_commands.add_parser("build", parents=[common], help="convert embedded models to ONNX now")
    build.add_argument("names", nargs="*", metavar="NAME", help="models to build (default: all)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        "device": "device",
        "cache_dir": "cache_dir",
        "threads": "threads",
        "log_level": "log_level",
        "max_results": "classifier.max_results",
        "score_threshold": "classifier.score_threshold",
        "display_names_locale": "classifier.display_names_locale",
        "model": "classifier.model",
        "detector": "detector.model",
        "stages": "stages",
        "host": "server.host",
        "port": "server.port",
        "token": "token",
    }
    return {key: getattr(args, attr) for attr, key in keys.items() if getattr(args, attr, None) is not None}


def _table(path: Path, result: FrameResult) -> str:
    timings = result.timings_ms
    lines = [
        f"{path}  {result.width}x{result.height}  "
        f"preprocess {timings['preprocess']:.1f} ms, inference {timings['inference']:.1f} ms"
    ]
    width = max((len(c.display_name) for c in result.classes), default=0)
    lines += [
        f"  {rank}. {c.display_name:<{width}}  {c.confidence * 100:6.2f}%  (class {c.class_id})"
        for rank, c in enumerate(result.classes, 1)
    ]
    if result.values:
        lines.append("  values: " + ", ".join(f"{v:.4f}" for v in result.values))
    for obj in result.objects:
        box = ", ".join(f"{v:.0f}" for v in obj.box)
        lines.append(f"  [{box}]  {object_label(obj)}")
    return "\n".join(lines)


def _classify(args: argparse.Namespace, config: Config) -> int:
    failures = 0
    with Classifier.create_from_options(config.classifier_options()) as classifier:
        for path in args.images:
            try:
                result = classifier.classify(read_image(path))
            except StreamerError as exc:
                print(f"streamer: error: {exc}", file=sys.stderr)
                failures += 1
                continue
            if args.json:
                wire = result.to_dict()
                record = {"path": str(path), **{k: wire[k] for k in ("width", "height", "classes", "timings_ms")}}
                if classifier.detector is not None:
                    record["objects"] = wire["objects"]
                if "values" in wire:
                    record["values"] = wire["values"]
                print(json.dumps(record), flush=True)
            else:
                print(_table(path, result), flush=True)
    return 1 if failures else 0


def _draw(args: argparse.Namespace, config: Config) -> int:
    image = read_image(args.image)
    stages = args.stages or "cascade"  # a picture of boxes unless told otherwise
    with Classifier.create_from_options(config.classifier_options(stages=stages)) as classifier:
        result = classifier.classify(image)
    picture = cv2.cvtColor(draw_result(image, result), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(args.output.suffix or ".png", picture)
    if not ok:
        raise ImageError(f"cannot encode {args.output}; use a .png or .jpg name")
    args.output.write_bytes(encoded.tobytes())
    print(_table(args.image, result))
    print(f"wrote {args.output}")
    return 0


def _run(args: argparse.Namespace, config: Config) -> int:
    sources = []
    ids: set[str] = set()
    for spec in args.sources:
        source = open_source(spec, realtime=args.realtime, loop=args.loop)
        while source.stream_id in ids:  # two sources with one name: number them
            source.stream_id += "+"
        ids.add(source.stream_id)
        sources.append(source)
    out = open(args.jsonl, "w", encoding="utf-8") if args.jsonl else sys.stdout  # noqa: SIM115
    lossless = any(not source.live for source in sources)

    sink = JsonlWriter(out, flush=out is sys.stdout)

    try:
        with Classifier.create_from_options(config.classifier_options(stages=args.stages or config["stages"])) as model:
            pipeline = Pipeline(
                model,
                on_result=lambda result, frame: sink.write(result),
                max_batch=args.max_batch,
                max_frame_age_ms=args.max_frame_age_ms,
                lossless=lossless,
            )
            for source in sources:
                pipeline.add(source, inference_fps=args.inference_fps)
            pipeline.start()
            try:
                pipeline.wait(args.duration)
            except KeyboardInterrupt:
                log.info("stopping")
            finally:
                pipeline.stop()
    finally:
        if out is not sys.stdout:
            out.close()
    failed = [s.stats() for s in sources if s.state is SourceState.FAILED]
    for stats in failed:
        print(f"streamer: error: {stats.stream_id}: {stats.last_error}", file=sys.stderr)
    return 1 if failed else 0


def _serve(args: argparse.Namespace, config: Config) -> int:
    sources = [open_source(spec, realtime=True, loop=args.loop) for spec in args.sources]
    server_config = ServerConfig(
        host=config["server.host"],
        port=config["server.port"],
        token=config["token"],
        allowed_origins=tuple(config["server.allowed_origins"]),
    )
    stages = args.stages or config["stages"]
    with Classifier.create_from_options(config.classifier_options(stages=stages)) as model:
        pipeline = Pipeline(
            model,
            on_result=lambda result, frame: server.publish_result(result),
            on_frame=lambda frame: server.publish_frame(frame.stream_id, frame.image, frame.pts_ms),
            max_batch=config["server.max_batch"],
            max_frame_age_ms=config["server.max_frame_age_ms"],
        )
        server = StreamerServer(
            server_config, model, stats=pipeline.stats, add_source=pipeline.add, remove_source=pipeline.remove
        )

        async def main() -> None:
            async with server:  # logs "serving on URL"; print it too, for scripts reading stdout
                print(f"streamer: serving on {server.url}", flush=True)
                for source in sources:
                    pipeline.add(source)
                pipeline.start()
                try:
                    await asyncio.Event().wait()
                finally:
                    await asyncio.to_thread(pipeline.stop)

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            log.info("stopped")
    return 0


def _models(args: argparse.Namespace, config: Config) -> int:
    cache = config.cache_dir or zoo.default_cache_dir()
    if args.models_command == "list":
        for name, model in zoo.EMBEDDED.items():
            folder = cache / "models" / name
            state = "built" if (folder / "build.json").is_file() else "not built"
            print(f"{name:<20} {model.task:<11} {model.license:<11} {state:<10} {model.description}")
        print(f"cache: {cache}")
        return 0
    for name in args.names or list(zoo.EMBEDDED):
        built = zoo.build(name, cache, force=args.force)
        print(f"{name}: {built.onnx_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config, overrides=_overrides(args))
        logging.basicConfig(level=config["log_level"].upper(), format="streamer: %(message)s", stream=sys.stderr)
        for chatty in ("websockets", "aiortc", "aioice"):  # a line per request or packet otherwise
            logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
        if args.command == "classify":
            return _classify(args, config)
        if args.command == "draw":
            return _draw(args, config)
        if args.command == "run":
            return _run(args, config)
        if args.command == "serve":
            return _serve(args, config)
        if args.command == "annotate":
            return annotation.run(args, config)
        if args.command == "eval":
            return evaluation.run(args, config)
        return _models(args, config)
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
