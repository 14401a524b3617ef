"""An :class:`~streamer.evaluation.metrics.EvalReport` written to files.

Call order: ``write_report(report, folder)`` writes ``metrics.json`` and
``confusion.png`` there; or :func:`write_json` / :func:`write_confusion_png`
for one file. Every file is written to a temporary file beside it and then
renamed over the final name, so an interrupted run leaves either the old file
or the new one, never half of one. matplotlib is imported only when a picture
is drawn, and only its Agg canvas is used: no window, no pyplot global state.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from streamer.errors import ConfigError
from streamer.evaluation.metrics import EvalReport
from streamer.files import atomic_path

__all__ = [
    "CONFUSION_PNG",
    "METRICS_JSON",
    "confusion_png",
    "write_atomic",
    "write_confusion_png",
    "write_json",
    "write_report",
]

METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion.png"
_MAX_LABEL = 28


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees all of it or none (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(report: EvalReport, path: Path) -> Path:
    """``report.to_dict()`` as indented JSON at ``path``; returns ``path``."""
    write_atomic(path, (json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def _short(label: str) -> str:
    return label if len(label) <= _MAX_LABEL else label[: _MAX_LABEL - 1] + "\u2026"


def confusion_png(report: EvalReport) -> bytes:
    """The confusion matrix drawn as a PNG: counts in the cells, colour the fraction of the row's samples.

    Rows are the true classes, columns the top-1 predictions (the dataset's
    classes, then ``other``). The picture grows with the number of classes so
    that about 50 stay readable.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = report.confusion
    rows, columns = matrix.shape
    cell = 0.5 if rows <= 20 else 0.4
    figure = Figure(figsize=(max(6.0, 3.5 + cell * columns), max(5.0, 3.0 + cell * rows)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    support = matrix.sum(axis=1, keepdims=True)
    fractions = matrix / (support + (support == 0))
    image = axes.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    colorbar = figure.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
    colorbar.set_label("fraction of the true class's samples")
    size = 10.0 if rows <= 12 else max(7.0, 10.0 - (rows - 12) / 8)
    for i in range(rows):
        for j in range(columns):
            if matrix[i, j] or rows <= 20:
                colour = "white" if fractions[i, j] > 0.5 else "black"
                axes.text(j, i, str(int(matrix[i, j])), ha="center", va="center", color=colour, fontsize=size)
    axes.axvline(columns - 1.5, color="grey", linewidth=1.0)  # the dataset's classes | other
    axes.set_xticks(range(columns), [_short(label) for label in report.columns], rotation=60, ha="right")
    axes.set_yticks(range(rows), [_short(c.label) for c in report.classes])
    axes.tick_params(labelsize=size)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{report.samples} images, top-1 {report.top1:.1%}, top-{report.k} {report.topk:.1%}", fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_confusion_png(report: EvalReport, path: Path) -> Path:
    """The confusion matrix as a PNG at ``path`` (see :func:`confusion_png`); returns ``path``."""
    write_atomic(path, confusion_png(report))
    return path


def write_report(report: EvalReport, folder: Path) -> tuple[Path, Path]:
    """``folder/metrics.json`` and ``folder/confusion.png``, the folder made if needed; returns both paths."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"output folder {folder} is a file; give a folder name with -o")
    folder.mkdir(parents=True, exist_ok=True)
    return write_json(report, folder / METRICS_JSON), write_confusion_png(report, folder / CONFUSION_PNG)
