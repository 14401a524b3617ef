"""The ``streamer`` command.

::

    streamer classify IMAGE... [--detect] [--top-k N] [--json]
    streamer draw IMAGE -o OUT.png
    streamer run SOURCE... [--jsonl FILE]
    streamer serve [SOURCE...] [--host H] [--port P] [--token T] [--ray ADDRESS]
    streamer cluster stop --ray ADDRESS
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
import contextlib
import json
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2

from streamer.annotation import command as annotation
from streamer.cluster.front import ClusterRuntime
from streamer.config import Config, StreamSpec, load_config
from streamer.errors import ConfigError, ImageError, StreamerError
from streamer.evaluation import command as evaluation
from streamer.events.command import list_events, since_seconds
from streamer.files import atomic_path, check_outputs
from streamer.interrupts import terminate_as_interrupt
from streamer.models import zoo
from streamer.models.engine import cuda_status
from streamer.results import FrameResult
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from streamer.sinks.jsonl import JsonlWriter
from streamer.sources import default_stream_id, open_sources
from streamer.sources.images import read_image
from streamer.tasks import STAGES, Classifier
from streamer.vision.draw import draw_result, object_label

__all__ = ["main"]

log = logging.getLogger("streamer")

#: the status of a command whose standard output was closed by its reader: 128 + SIGPIPE, as a shell shows it
EXIT_STDOUT_CLOSED = 141


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamer", description="Real-time video stream classifier.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="config file (default: $STREAMER_CONFIG or ./config.toml)")
    common.add_argument("--device", help="auto | cpu | cuda | tensorrt")
    common.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        help="both models' (default fp32; int8 is quantized and checked against fp32 when built)",
    )
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
    draw.add_argument("--force", action="store_true", help="replace the picture if it exists")

    run = commands.add_parser("run", parents=[common, stages], help="classify video files, cameras and streams")
    run.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="video file, rtsp:// or http(s):// URL, camera 0; adds to config.toml's [[streams]]",
    )
    run.add_argument(
        "--jsonl",
        type=Path,
        help="write results as JSON lines here (default: stdout); written beside it and moved into place when "
        "the run ends (also on Ctrl-C or SIGTERM), so the file is always whole",
    )
    writing = run.add_mutually_exclusive_group()
    writing.add_argument("--force", action="store_true", help="replace the --jsonl file if it exists")
    writing.add_argument(
        "--append", action="store_true", help="add to the end of the --jsonl file, line by line as results come"
    )
    run.add_argument("--realtime", action="store_true", help="play files at native speed, like cameras")
    run.add_argument("--loop", action="store_true", help="repeat files forever")
    run.add_argument("--max-batch", type=int, default=4, help="frames per inference batch, across streams (>= 1)")
    run.add_argument("--max-frame-age-ms", type=float, default=500.0, help="drop live frames older than this (> 0 ms)")
    run.add_argument("--inference-fps", type=float, help="cap inferences per second per stream (> 0)")
    run.add_argument("--duration", type=float, help="stop after this many seconds (> 0)")
    run.add_argument("--no-events", action="store_true", help="do not record events ([storage] events = false)")
    run.add_argument("--mqtt", metavar="URL", help="publish to this broker: mqtt://user:pass@host:1883, mqtts://...")

    serve = commands.add_parser("serve", parents=[common, stages], help="serve results to browsers over WebSockets")
    serve.add_argument(
        "sources", nargs="*", metavar="SOURCE", help="video file, rtsp:// URL, camera 0; adds to [[streams]]"
    )
    serve.add_argument("--host", help="address to bind (default 127.0.0.1; others need a token)")
    serve.add_argument("--port", type=int, help="port (default 8080; 0 picks a free one)")
    serve.add_argument("--token", help="access token for /ws, /api and /metrics (or STREAMER_TOKEN)")
    serve.add_argument("--loop", action="store_true", help="repeat files forever, like cameras")
    serve.add_argument("--no-events", action="store_true", help="do not record events ([storage] events = false)")
    serve.add_argument("--mqtt", metavar="URL", help="publish to this broker: mqtt://user:pass@host:1883, mqtts://...")
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the streams on a Ray cluster: auto, local, ray://host:port or host:port ([cluster] ray)",
    )

    cluster = commands.add_parser("cluster", parents=[common], help="the camera groups on a Ray cluster")
    cluster.add_argument("cluster_command", choices=["stop"], help="stop: stop every camera group and its streams")
    cluster.add_argument("--ray", metavar="ADDRESS", help="the cluster: auto, ray://host:port or host:port")

    events = commands.add_parser("events", parents=[common], help="list the recorded events, newest first")
    events.add_argument("--stream", help="only this stream's")
    events.add_argument("--label", help="only objects of this class (detector class or settled label)")
    events.add_argument("--zone", help="only objects that entered this zone")
    events.add_argument("--since", type=since_seconds, help="only events started since: 90s, 15m, 1h, 2d")
    events.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    events.add_argument("--json", action="store_true", help="one JSON object per event")

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
    overrides = {key: getattr(args, attr) for attr, key in keys.items() if getattr(args, attr, None) is not None}
    if getattr(args, "precision", None) is not None:
        overrides |= {"classifier.precision": args.precision, "detector.precision": args.precision}
    return overrides


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
    limits = config.image_limits()
    with Classifier.create_from_options(config.classifier_options()) as classifier:
        for path in args.images:
            try:
                result = classifier.classify(read_image(path, limits=limits))
            except (StreamerError, OSError, MemoryError) as exc:  # one bad image never stops the others
                print(f"streamer: error: {_reason(exc, path)}", file=sys.stderr)
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


def _reason(exc: BaseException, path: Path) -> str:
    """One line saying why ``path`` failed: our errors say it themselves; others are named."""
    if isinstance(exc, StreamerError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"{path}: not enough memory to process it"
    return f"{path}: {getattr(exc, 'strerror', None) or exc}"


def _draw(args: argparse.Namespace, config: Config) -> int:
    output: Path = args.output
    if not cv2.haveImageWriter(str(output)):
        raise ConfigError(
            f"-o {output}: OpenCV cannot write {output.suffix or 'files without a suffix'}; use .png or .jpg"
        )
    check_outputs([output], [args.image], force=args.force)
    image = read_image(args.image, limits=config.image_limits())
    stages = args.stages or "cascade"  # a picture of boxes unless told otherwise
    with Classifier.create_from_options(config.classifier_options(stages=stages)) as classifier:
        result = classifier.classify(image)
    picture = cv2.cvtColor(draw_result(image, result), cv2.COLOR_RGB2BGR)
    try:
        ok, encoded = cv2.imencode(output.suffix, picture)
    except cv2.error:
        ok = False
    if not ok:
        raise ImageError(f"cannot encode {output}; use a .png or .jpg name")
    try:
        with atomic_path(output) as tmp:
            tmp.write_bytes(encoded.tobytes())
    except OSError as exc:
        raise ConfigError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(_table(args.image, result))
    print(f"wrote {output}")
    return 0


def _positive(value: float | None, flag: str, *, allow_none: bool = True) -> None:
    """Refuse a flag's value unless it is a finite number > 0 (or absent, when ``allow_none``)."""
    if value is None and allow_none:
        return
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{flag} {value}: expected a number > 0")


def _check_run_options(args: argparse.Namespace) -> None:
    if args.max_batch < 1:
        raise ConfigError(f"--max-batch {args.max_batch}: expected an integer >= 1")
    _positive(args.max_frame_age_ms, "--max-frame-age-ms", allow_none=False)
    _positive(args.inference_fps, "--inference-fps")
    _positive(args.duration, "--duration")
    if (args.force or args.append) and args.jsonl is None:
        raise ConfigError("--force and --append are about the --jsonl file; give --jsonl FILE too")


class _StdoutClosed(Exception):
    """The reader of our standard output has gone (``streamer run ... | head``)."""


@contextlib.contextmanager
def _results_file(args: argparse.Namespace, inputs: list[Path]) -> Iterator[TextIO]:
    """Where ``run`` writes its JSON lines: stdout, a file made whole at the end, or a file appended to."""
    path: Path | None = args.jsonl
    if path is None:
        yield sys.stdout
        return
    check_outputs([path], inputs, force=args.force, append=args.append)
    with contextlib.ExitStack() as stack:
        try:  # only opening is the file's fault; errors of the run itself pass through
            if args.append:
                handle = stack.enter_context(open(path, "a", encoding="utf-8"))
            else:
                handle = stack.enter_context(open(stack.enter_context(atomic_path(path)), "w", encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        yield handle


def _run(args: argparse.Namespace, config: Config) -> int:
    _check_run_options(args)
    if not args.sources and not config["streams"]:
        raise ConfigError("nothing to run: give SOURCE... or [[streams]] tables in config.toml")
    sources = open_sources(args.sources, realtime=args.realtime, loop=args.loop)
    inputs = [Path(spec) for spec in args.sources if Path(spec).exists()]
    lossless = any(not source.live for source in sources)
    closed = threading.Event()  # stdout's reader is gone

    with _results_file(args, inputs) as out:
        sink = JsonlWriter(out, flush=out is sys.stdout or args.append)

        def deliver(result: FrameResult, frame: object) -> None:
            if closed.is_set():
                return
            try:
                sink.write(result)
            except BrokenPipeError:
                closed.set()

        with terminate_as_interrupt():
            runtime = Runtime(
                config,
                stages=args.stages,
                lossless=lossless,
                max_batch=args.max_batch,
                max_frame_age_ms=args.max_frame_age_ms,
                events=False if args.no_events else None,
                mqtt=config.mqtt_config(args.mqtt),
            )
        try:
            runtime.subscribe(deliver)
            for source in sources:
                runtime.add_source(source, inference_fps=args.inference_fps)
            runtime.start()
            with terminate_as_interrupt():
                runtime.run_until(closed, args.duration)
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            with terminate_as_interrupt():  # a second signal while stopping changes nothing
                runtime.stop()
    if closed.is_set():
        raise _StdoutClosed
    failed = runtime.failed
    for reason in failed:
        print(f"streamer: error: {reason}", file=sys.stderr)
    return 1 if failed else 0


def _server_config(config: Config) -> ServerConfig:
    return ServerConfig(
        host=config["server.host"],
        port=config["server.port"],
        token=config["token"],
        allowed_origins=tuple(config["server.allowed_origins"]),
        allowed_hosts=tuple(config["server.allowed_hosts"]),
        max_pending_classify=config["server.max_pending_classify"],
        image_limits=config.image_limits(),
        ice_timeout_s=config["server.ice_timeout_s"],
        max_peers=config["server.max_peers"],
        max_peers_per_client=config["server.max_peers_per_client"],
        share_cameras=config["server.share_cameras"],
        max_body_bytes=config["server.max_body_bytes"],
    )


def _serve(args: argparse.Namespace, config: Config) -> int:
    server_config = _server_config(config)
    cluster = config.cluster_config(args.ray)
    runtime: Runtime | ClusterRuntime
    if cluster is not None:  # the streams run on the cluster's camera groups; this process is the front
        specs = [StreamSpec(id=default_stream_id(source), source=source, loop=args.loop) for source in args.sources]
        runtime = ClusterRuntime(
            config,
            cluster,
            stages=args.stages,
            streams=specs,
            reread=lambda: load_config(args.config, overrides=_overrides(args)),
            events=False if args.no_events else None,
            mqtt=config.mqtt_config(args.mqtt),
        )
        server = StreamerServer(server_config, runtime)
        runtime.start()  # connects (a ClusterError names an unreachable address) before serving
    else:
        sources = open_sources(args.sources, realtime=True, loop=args.loop)
        runtime = Runtime(
            config,
            stages=args.stages,
            reread=lambda: load_config(args.config, overrides=_overrides(args)),
            events=False if args.no_events else None,
            mqtt=config.mqtt_config(args.mqtt),
        )
        if runtime.provider == "CPUExecutionProvider" and config["device"] == "auto":
            log.info("running on CPU: %s", cuda_status() or "the CUDA provider is not available")
        for source in sources:
            runtime.add_source(source)
        server = StreamerServer(server_config, runtime)

    async def reload() -> None:
        try:
            models = await asyncio.to_thread(runtime.reload)
        except StreamerError as exc:
            log.error("reload (SIGHUP) failed; the running models stay: %s", exc)
            return
        log.info("reloaded (SIGHUP): %s", ", ".join(f"{m.task} {m.tag}" for m in models))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)  # as Ctrl-C: a clean stop
        reloads: set[asyncio.Task[None]] = set()

        def on_hangup() -> None:
            task = loop.create_task(reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hangup)
        async with server:  # logs "serving on URL"; print it too, for scripts reading stdout
            print(f"streamer: serving on {server.url}", flush=True)
            if cluster is None:
                runtime.start()
            try:
                await stop.wait()
                log.info("stopping (SIGTERM)")
            finally:
                await asyncio.to_thread(runtime.stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        log.info("stopped")
    return 0


def _cluster(args: argparse.Namespace, config: Config) -> int:
    """``streamer cluster stop``: stop every camera group of the namespace (their streams end)."""
    cluster = config.cluster_config(args.ray)
    if cluster is None:
        raise ConfigError("streamer cluster stop needs the cluster's address: --ray ADDRESS or [cluster] ray")
    front = ClusterRuntime(config, cluster, events=False)
    stopped = front.stop_groups()
    print(f"stopped {len(stopped)} camera groups: {', '.join(stopped) or 'none'}")
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


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown flag is reported with the usage of the sub-command it was given to."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        owner = parser
        for name in (args.command, getattr(args, "models_command", None)):
            actions = [a for a in owner._actions if isinstance(a, argparse._SubParsersAction)]
            if name is None or not actions:
                break
            owner = actions[0].choices[name]
        owner.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _quiet_stdout() -> None:
    """After the reader of stdout left: point stdout at /dev/null, so exiting writes nothing more."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parse(argv)
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
        if args.command == "cluster":
            return _cluster(args, config)
        if args.command == "annotate":
            return annotation.run(args, config)
        if args.command == "eval":
            return evaluation.run(args, config)
        if args.command == "events":
            return list_events(args, config)
        return _models(args, config)
    except StreamerError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except (_StdoutClosed, BrokenPipeError):  # `streamer ... | head`: end quietly, as Unix tools do
        _quiet_stdout()
        return EXIT_STDOUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
