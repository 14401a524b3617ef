"""Heads and category selection on hand-made score vectors."""

from __future__ import annotations

import numpy as np

from streamer.vision.postprocess import apply_head, select, sigmoid, softmax


def test_softmax_is_stable_and_normalised() -> None:
    scores = softmax(np.array([[1000.0, 1001.0, 1002.0]]))
    np.testing.assert_allclose(scores, softmax(np.array([[0.0, 1.0, 2.0]])))
    assert scores.sum() == 1.0 or abs(scores.sum() - 1.0) < 1e-12


def test_sigmoid_without_overflow() -> None:
    with np.errstate(all="raise"):
        values = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0])


def test_apply_head_flattens_batches() -> None:
    raw = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    assert apply_head(raw, "regression").shape == (2, 3)
    np.testing.assert_allclose(apply_head(raw, "softmax").sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_select_ranks_filters_and_breaks_ties_by_id() -> None:
    scores = np.array([0.1, 0.4, 0.4, 0.05, 0.05])
    assert select(scores, max_results=3, score_threshold=0.0) == [(1, 0.4), (2, 0.4), (0, 0.1)]
    assert select(scores, max_results=0, score_threshold=0.1) == [(1, 0.4), (2, 0.4), (0, 0.1)]
    allowed = np.array([True, False, True, True, False])
    assert select(scores, max_results=10, score_threshold=0.0, allowed=allowed) == [(2, 0.4), (0, 0.1), (3, 0.05)]
    assert select(scores, max_results=5, score_threshold=0.9) == []
