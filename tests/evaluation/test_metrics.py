"""Metrics on hand-made predictions, every expected figure worked out by hand below."""

from __future__ import annotations

import json
from fractions import Fraction as F

import numpy as np
import pytest

from streamer.evaluation.metrics import OTHER, DatasetClass, EvalReport, compute_metrics

# Three dataset classes with the model's (non-contiguous) ids; 99 and 7 are model classes outside the dataset.
A, B, C = 10, 20, 30
CLASSES = [DatasetClass("a", A, "alpha"), DatasetClass("b", B, "beta"), DatasetClass("c", C, "gamma")]

# sample: true class, the model's 6 best classes (best first), top-1 confidence
SAMPLES = [
    (A, [A, B, C, 1, 2, 3], 0.9),  # top-1 hit
    (A, [A, 1, 2, 3, 4, 5], 0.8),  # top-1 hit
    (A, [B, 1, A, 2, 3, 4], 0.5),  # predicted b; a is 3rd: top-5 hit
    (A, [99, 1, 2, 3, A, 4], 0.3),  # predicted "other"; a is 5th: top-5 hit
    (B, [B, A, 1, 2, 3, 4], 0.7),  # top-1 hit
    (B, [B, 1, 2, 3, 4, 5], 0.6),  # top-1 hit
    (B, [A, 1, 2, 3, 4, 5], 0.4),  # predicted a; b nowhere: miss
    (C, [A, C, 1, 2, 3, 4], 0.2),  # predicted a; c 2nd: top-5 hit
    (C, [7, 1, 2, 3, 4, 5], 0.5),  # predicted "other"; miss
    (C, [B, 1, 2, 3, 4, C], 0.35),  # predicted b; c only 6th: not a top-5 hit
]

# rows: true a, b, c; columns: predicted a, b, c, other
CONFUSION = [
    [2, 1, 0, 1],
    [1, 2, 0, 0],
    [1, 1, 0, 1],
]


def report() -> EvalReport:
    true = np.array([s[0] for s in SAMPLES])
    topk = np.array([s[1] for s in SAMPLES])
    confidences = np.array([s[2] for s in SAMPLES])
    return compute_metrics(true, topk, confidences, CLASSES)


def test_accuracies() -> None:
    r = report()
    assert r.samples == 10
    assert r.top1 == pytest.approx(4 / 10)  # samples 0, 1, 4, 5
    assert r.k == 5
    assert r.topk == pytest.approx(7 / 10)  # and 2, 3, 7; not 9 (6th) nor 6, 8
    assert r.mean_confidence == pytest.approx((0.9 + 0.8 + 0.5 + 0.3 + 0.7 + 0.6 + 0.4 + 0.2 + 0.5 + 0.35) / 10)


def test_confusion_matrix_has_an_other_column() -> None:
    r = report()
    assert r.confusion.tolist() == CONFUSION
    assert r.columns == ["a", "b", "c", OTHER]
    assert not r.confusion.flags.writeable


def test_per_class_figures() -> None:
    a, b, c = report().classes
    # a: 2 right of 4 samples; predicted a 4 times (2 right, 1 from b, 1 from c)
    assert (a.label, a.class_id, a.name, a.support) == ("a", A, "alpha", 4)
    assert a.precision == pytest.approx(float(F(2, 4)))
    assert a.recall == pytest.approx(float(F(2, 4)))
    assert a.f1 == pytest.approx(float(F(1, 2)))
    assert a.mean_confidence == pytest.approx((0.9 + 0.8 + 0.5 + 0.3) / 4)
    # b: 2 right of 3 samples; predicted b 4 times (2 right, 1 from a, 1 from c)
    assert b.support == 3
    assert b.precision == pytest.approx(float(F(2, 4)))
    assert b.recall == pytest.approx(float(F(2, 3)))
    assert b.f1 == pytest.approx(float(2 * F(1, 2) * F(2, 3) / (F(1, 2) + F(2, 3))))  # 4/7
    assert b.f1 == pytest.approx(4 / 7)
    assert b.mean_confidence == pytest.approx((0.7 + 0.6 + 0.4) / 3)
    # c: never predicted: precision 0 by definition, recall 0, F1 0
    assert c.support == 3
    assert (c.precision, c.recall, c.f1) == (0.0, 0.0, 0.0)
    assert c.mean_confidence == pytest.approx((0.2 + 0.5 + 0.35) / 3)


def test_macro_averages() -> None:
    r = report()
    assert r.macro_precision == pytest.approx(float((F(1, 2) + F(1, 2) + 0) / 3))  # 1/3
    assert r.macro_recall == pytest.approx(float((F(1, 2) + F(2, 3) + 0) / 3))  # 7/18
    assert r.macro_f1 == pytest.approx(float((F(1, 2) + F(4, 7) + 0) / 3))  # 5/14


def test_to_dict_is_plain_json_with_rounded_floats() -> None:
    wire = report().to_dict()
    assert json.loads(json.dumps(wire)) == wire
    assert wire["samples"] == 10
    assert wire["top1_accuracy"] == 0.4 and wire["top5_accuracy"] == 0.7 and wire["k"] == 5
    assert wire["macro"] == {"precision": 0.333333, "recall": 0.388889, "f1": 0.357143}
    assert wire["classes"][1] == {
        "label": "b",
        "class_id": B,
        "name": "beta",
        "support": 3,
        "precision": 0.5,
        "recall": 0.666667,
        "f1": 0.571429,
        "mean_confidence": 0.566667,
    }
    assert wire["confusion"] == {"rows": ["a", "b", "c"], "columns": ["a", "b", "c", "other"], "matrix": CONFUSION}
    assert wire["unreadable"] == []
    assert all(type(v) is int for row in wire["confusion"]["matrix"] for v in row)


def test_fewer_predictions_than_five_give_top_k_of_that_many() -> None:
    # a model with 2 classes: top-2 always holds the true class
    classes = [DatasetClass("x", 0, "x"), DatasetClass("y", 1, "y")]
    r = compute_metrics(np.array([0, 1, 1]), np.array([[0, 1], [0, 1], [1, 0]]), np.array([0.6, 0.7, 0.9]), classes)
    assert (r.k, r.topk) == (2, 1.0)
    assert r.top1 == pytest.approx(2 / 3)
    assert r.confusion.tolist() == [[1, 0, 0], [1, 1, 0]]
    x, y = r.classes
    assert (x.precision, x.recall, y.precision, y.recall) == (0.5, 1.0, 1.0, 0.5)


def test_a_class_without_samples_counts_zero_in_the_macro_means() -> None:
    classes = [DatasetClass("x", 0, "x"), DatasetClass("y", 1, "y")]
    r = compute_metrics(np.array([0, 0]), np.array([[0], [1]]), np.array([0.5, 0.5]), classes)
    x, y = r.classes
    assert (y.support, y.precision, y.recall, y.f1, y.mean_confidence) == (0, 0.0, 0.0, 0.0, 0.0)
    assert (x.precision, x.recall) == (1.0, 0.5)
    assert r.macro_recall == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("true", "topk", "confidences", "message"),
    [
        (
            np.zeros((0,), int),
            np.zeros((0, 5), int),
            np.zeros(0),
            r"true_ids must have shape \[N\] with N >= 1, got \[0\]",
        ),
        (
            np.array([10, 20]),
            np.array([10, 20]),
            np.zeros(2),
            r"topk_ids must have shape \[2, k\] with k >= 1, got \[2\]",
        ),
        (np.array([10, 20]), np.array([[10], [20]]), np.zeros(3), r"confidences must have shape \[2\], got \[3\]"),
        (np.array([10, 20]), np.array([[1.0], [2.0]]), np.zeros(2), "topk_ids must hold integer class ids"),
        (np.array([10, 5]), np.array([[10], [20]]), np.zeros(2), r"true_ids holds class ids \[5\]"),
    ],
)
def test_bad_shapes_say_expected_and_actual(
    true: np.ndarray, topk: np.ndarray, confidences: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(true, topk, confidences, CLASSES)


def test_duplicate_class_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct class ids"):
        compute_metrics(np.array([1]), np.array([[1]]), np.array([1.0]), [DatasetClass("p", 1, "p")] * 2)
