"""``streamer eval DATASET``: the command-line face of :mod:`streamer.evaluation`.

::

    streamer eval DATASET [-o OUTDIR] [--batch N] [--json] [--model M] [--locale L]

Call order: :func:`add_parser` while the ``streamer`` parser is built, then,
for ``args.command == "eval"``, ``run(args, config)`` with the loaded
:class:`~streamer.config.Config`. ``run`` returns the exit code: 0, or 1 when
some images could not be read (the others are evaluated). Other failures are
:class:`~streamer.errors.StreamerError` s for the caller to print (exit 2).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from streamer.config import Config
from streamer.errors import ConfigError
from streamer.evaluation import evaluate
from streamer.evaluation.dataset import load_dataset
from streamer.evaluation.metrics import TOP_K, EvalReport
from streamer.evaluation.report import write_report
from streamer.tasks import Classifier, ClassifierOptions

__all__ = ["add_parser", "default_output", "eval_options", "format_table", "run"]

log = logging.getLogger("streamer")


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], parents: Sequence[argparse.ArgumentParser]
) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to ``commands``; ``parents`` bring the shared flags (``--config``, ``--device``).

    It adds its own ``--model`` (dest ``model``) and ``--locale`` (dest
    ``display_names_locale``), so ``parents`` must not define them.
    """
    parser = commands.add_parser(
        "eval",
        parents=list(parents),
        help="measure the classifier on a labelled image dataset",
        description=(
            "Classify every image of a labelled dataset and report top-1/top-5 accuracy, per-class precision, "
            "recall and F1, and a confusion matrix. DATASET is a folder with one sub-folder per class (named after "
            "the model's class, e.g. 'tabby') or a CSV file with 'filename,label' columns."
        ),
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET", help="class-folder tree or filename,label CSV")
    parser.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        dest="outdir",
        metavar="OUTDIR",
        help="folder for metrics.json and confusion.png (default: ./eval-<dataset folder name>)",
    )
    parser.add_argument("--batch", type=int, default=16, metavar="N", help="images per inference batch (default 16)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON instead of a table")
    parser.add_argument("--model", help="classifier: embedded model name or .onnx path")
    parser.add_argument(
        "--locale", dest="display_names_locale", metavar="LOCALE", help="display names locale (labels may use them)"
    )
    return parser


def eval_options(config: Config) -> ClassifierOptions:
    """The configured classifier, whole-frame only, keeping at least the 5 best of all classes of every image.

    ``max_results`` is raised to 5 (``None`` stays: all classes), ``score_threshold`` is 0, and the
    category allow/deny lists are dropped (with a warning), so top-5 accuracy is always measurable.
    """
    options = config.classifier_options(stages="classify")
    for key in ("category_allowlist", "category_denylist"):
        if getattr(options, key):
            log.warning("eval ignores classifier.%s: the model is measured on all its classes", key)
    keep = None if options.max_results is None else max(options.max_results, TOP_K)
    return replace(options, max_results=keep, score_threshold=0.0, category_allowlist=(), category_denylist=())


def default_output(dataset: Path) -> Path:
    """``./eval-<name>``: the dataset folder's name, or the CSV's folder's name."""
    folder = dataset if dataset.is_dir() else dataset.parent
    return Path(f"eval-{folder.resolve().name or 'dataset'}")


def _percent(value: float) -> str:
    return f"{value * 100:6.2f}%"


def format_table(report: EvalReport) -> str:
    """The report as a readable table: accuracies, then one row per class, then the macro means."""
    lines = [
        f"images            {report.samples}"
        + (f"  ({len(report.unreadable)} unreadable)" if report.unreadable else ""),
        f"top-1 accuracy   {_percent(report.top1)}",
        f"top-{report.k} accuracy   {_percent(report.topk)}",
        f"mean confidence  {_percent(report.mean_confidence)}",
        "",
    ]
    names = [c.label if c.label == c.name else f"{c.label} ({c.name})" for c in report.classes]
    width = max(len("class"), len("macro average"), *(len(n) for n in names))
    lines.append(f"{'class':<{width}}  {'precision':>9}  {'recall':>7}  {'F1':>7}  {'support':>7}  {'mean conf':>9}")
    for name, c in zip(names, report.classes, strict=True):
        lines.append(
            f"{name:<{width}}  {_percent(c.precision):>9}  {_percent(c.recall):>7}  {_percent(c.f1):>7}  "
            f"{c.support:>7}  {_percent(c.mean_confidence):>9}"
        )
    lines.append(
        f"{'macro average':<{width}}  {_percent(report.macro_precision):>9}  {_percent(report.macro_recall):>7}  "
        f"{_percent(report.macro_f1):>7}  {report.samples:>7}  {_percent(report.mean_confidence):>9}"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace, config: Config) -> int:
    """Evaluate the configured classifier on ``args.dataset``; write the files, print the figures.

    ``args`` carries ``dataset``, ``outdir`` (``None``: :func:`default_output`),
    ``batch`` and ``json``; ``--model`` and ``--locale`` reach it through ``config``.
    """
    if args.batch < 1:
        raise ConfigError(f"--batch {args.batch}; expected an integer >= 1")
    samples = load_dataset(args.dataset)
    output = args.outdir or default_output(args.dataset)
    log.info("evaluating %d images of %s", len(samples), args.dataset)
    with Classifier.create_from_options(eval_options(config)) as classifier:
        report = evaluate(
            classifier,
            samples,
            batch_size=args.batch,
            progress=lambda done, total: log.debug("evaluated %d/%d images", done, total),
            limits=config.image_limits(),
        )
    written = write_report(report, output)
    for path, reason in report.unreadable:
        print(f"streamer: error: {reason}" if path in reason else f"streamer: error: {path}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), flush=True)
        for file in written:
            print(f"wrote {file}", file=sys.stderr)
    else:
        print(format_table(report))
        for file in written:
            print(f"wrote {file}")
    return 1 if report.unreadable else 0
