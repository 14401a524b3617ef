"""Classification metrics from arrays of predictions. Pure: no I/O, no model.

Call order: gather, per sample, the true class id, the model's best class ids
(highest first) and the best class's confidence; describe the dataset's
classes as :class:`DatasetClass` es; then
``report = compute_metrics(true_ids, topk_ids, confidences, classes)`` and
``report.to_dict()`` for JSON.

Class ids are the model's. The dataset may use only some of the model's
classes; a prediction of any other class counts as wrong and lands in the
confusion matrix's last column, ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["OTHER", "TOP_K", "ClassMetrics", "DatasetClass", "EvalReport", "compute_metrics"]

#: The confusion matrix's last column: predictions of classes the dataset does not have.
OTHER = "other"
#: The k of top-k accuracy.
TOP_K = 5
_DIGITS = 6


class DatasetClass(NamedTuple):
    """One class of the dataset: its label there, the model's id for it, and the model's name for it."""

    label: str
    class_id: int
    name: str


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """Figures for one dataset class.

    ``support``: samples of the class. ``precision``: correct top-1
    predictions of the class / all samples predicted as the class; 0 when the
    class is never predicted. ``recall``: correct / ``support``; 0 when there is
    no sample. ``f1``: their harmonic mean; 0 when both are 0.
    ``mean_confidence``: mean top-1 confidence over the class's samples
    (whatever class was predicted); 0 when there is no sample.
    """

    label: str
    class_id: int
    name: str
    support: int
    precision: float
    recall: float
    f1: float
    mean_confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "class_id": self.class_id,
            "name": self.name,
            "support": self.support,
            "precision": round(self.precision, _DIGITS),
            "recall": round(self.recall, _DIGITS),
            "f1": round(self.f1, _DIGITS),
            "mean_confidence": round(self.mean_confidence, _DIGITS),
        }


@dataclass(frozen=True, eq=False)
class EvalReport:
    """How well a classifier did on a labelled dataset.

    ``top1``/``topk``: fraction of samples whose true class is the best
    prediction / among the ``k`` best (``k`` is :data:`TOP_K`, or fewer when the
    predictions carry fewer). ``macro_*``: unweighted means over ``classes``
    (dataset classes with no sample count too). ``mean_confidence``: mean top-1
    confidence over all samples. ``confusion``: ``[len(classes), len(classes)
    + 1]`` counts, rows the true class, columns the top-1 prediction, in
    ``classes`` order, then :data:`OTHER`; read-only. ``unreadable``: ``(path,
    reason)`` of the samples that could not be read and are in no figure.
    """

    samples: int
    k: int
    top1: float
    topk: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    mean_confidence: float
    classes: tuple[ClassMetrics, ...]
    confusion: np.ndarray
    unreadable: tuple[tuple[str, str], ...] = ()

    @property
    def columns(self) -> list[str]:
        """The confusion matrix's column labels: the dataset's labels, then :data:`OTHER`."""
        return [c.label for c in self.classes] + [OTHER]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: ints, floats rounded to 6 places, strings, lists."""
        return {
            "samples": self.samples,
            "unreadable": [{"path": path, "reason": reason} for path, reason in self.unreadable],
            "top1_accuracy": round(self.top1, _DIGITS),
            f"top{TOP_K}_accuracy": round(self.topk, _DIGITS),
            "k": self.k,
            "mean_confidence": round(self.mean_confidence, _DIGITS),
            "macro": {
                "precision": round(self.macro_precision, _DIGITS),
                "recall": round(self.macro_recall, _DIGITS),
                "f1": round(self.macro_f1, _DIGITS),
            },
            "classes": [c.to_dict() for c in self.classes],
            "confusion": {
                "rows": [c.label for c in self.classes],
                "columns": self.columns,
                "matrix": [[int(v) for v in row] for row in self.confusion],
            },
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def _check(
    true_ids: np.ndarray, topk_ids: np.ndarray, confidences: np.ndarray, classes: Sequence[DatasetClass]
) -> None:
    if true_ids.ndim != 1 or true_ids.size == 0:
        raise ValueError(f"true_ids must have shape [N] with N >= 1, got {list(true_ids.shape)}")
    n = true_ids.shape[0]
    if topk_ids.ndim != 2 or topk_ids.shape[0] != n or topk_ids.shape[1] < 1:
        raise ValueError(f"topk_ids must have shape [{n}, k] with k >= 1, got {list(topk_ids.shape)}")
    if confidences.shape != (n,):
        raise ValueError(f"confidences must have shape [{n}], got {list(confidences.shape)}")
    for name, array in (("true_ids", true_ids), ("topk_ids", topk_ids)):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name} must hold integer class ids, got dtype {array.dtype}")
    ids = [c.class_id for c in classes]
    if not ids or len(set(ids)) != len(ids):
        raise ValueError(f"classes must be non-empty with distinct class ids, got ids {ids}")
    stray = sorted(set(true_ids.tolist()) - set(ids))
    if stray:
        raise ValueError(f"true_ids holds class ids {stray[:10]} that are not among the classes' ids {ids[:10]}")


def compute_metrics(
    true_ids: np.ndarray,
    topk_ids: np.ndarray,
    confidences: np.ndarray,
    classes: Sequence[DatasetClass],
) -> EvalReport:
    """Top-1 and top-k accuracy, per-class precision/recall/F1, macro means and the confusion matrix.

    ``true_ids`` ``[N]``: each sample's true class id. ``topk_ids`` ``[N, k]``:
    the model's best class ids per sample, best first (only the first
    :data:`TOP_K` columns are used). ``confidences`` ``[N]``: each sample's
    top-1 confidence. ``classes``: the dataset's classes, in the order rows and
    columns should have; every true id must be one of theirs. Undefined ratios
    (no prediction, no sample) are 0, see :class:`ClassMetrics`.
    """
    true_ids, topk_ids = np.asarray(true_ids), np.asarray(topk_ids)
    confidences = np.asarray(confidences, dtype=np.float64)
    _check(true_ids, topk_ids, confidences, classes)
    k = min(TOP_K, topk_ids.shape[1])
    predicted = topk_ids[:, 0]
    ids = np.array([c.class_id for c in classes])
    count = len(classes)
    # column of each prediction: the index of its class in `classes`, or `count` for "other"
    matches = predicted[:, None] == ids[None, :]
    column = np.where(matches.any(axis=1), matches.argmax(axis=1), count)
    row = (true_ids[:, None] == ids[None, :]).argmax(axis=1)
    confusion = np.zeros((count, count + 1), dtype=np.int64)
    np.add.at(confusion, (row, column), 1)
    confusion.flags.writeable = False
    per_class: list[ClassMetrics] = []
    for i, c in enumerate(classes):
        support = int(confusion[i].sum())
        correct = int(confusion[i, i])
        precision = _ratio(correct, int(confusion[:, i].sum()))
        recall = _ratio(correct, support)
        f1 = _ratio(2 * precision * recall, precision + recall)
        mean_confidence = float(confidences[row == i].mean()) if support else 0.0
        per_class.append(ClassMetrics(c.label, c.class_id, c.name, support, precision, recall, f1, mean_confidence))
    return EvalReport(
        samples=int(true_ids.shape[0]),
        k=k,
        top1=float(np.mean(predicted == true_ids)),
        topk=float(np.mean((topk_ids[:, :k] == true_ids[:, None]).any(axis=1))),
        macro_precision=float(np.mean([m.precision for m in per_class])),
        macro_recall=float(np.mean([m.recall for m in per_class])),
        macro_f1=float(np.mean([m.f1 for m in per_class])),
        mean_confidence=float(confidences.mean()),
        classes=tuple(per_class),
        confusion=confusion,
    )
