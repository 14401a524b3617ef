"""Turning model outputs into ranked categories: pure numpy, no I/O."""

from __future__ import annotations

import numpy as np

__all__ = ["apply_head", "select", "sigmoid", "softmax"]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)  # type: ignore[no-any-return]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow warnings for large negative inputs."""
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # type: ignore[no-any-return]


def apply_head(raw: np.ndarray, head: str) -> np.ndarray:
    """Scores from raw outputs ``[batch, classes]``: softmax, sigmoid or the values as they are."""
    flat = raw.reshape(raw.shape[0], -1).astype(np.float32, copy=False)
    if head == "softmax":
        return softmax(flat)
    if head == "sigmoid":
        return sigmoid(flat)
    return flat


def select(
    scores: np.ndarray,
    *,
    max_results: int,
    score_threshold: float,
    allowed: np.ndarray | None = None,
) -> list[tuple[int, float]]:
    """Best classes of one score vector: ``(class_id, score)``, highest first.

    ``allowed`` is a boolean mask over classes (``None``: all). Only scores
    ``>= score_threshold`` are kept; ``max_results`` < 1 keeps them all.
    Ties keep the lower class id first.
    """
    candidates = scores if allowed is None else np.where(allowed, scores, -np.inf)
    keep = np.flatnonzero(candidates >= score_threshold)
    if 0 < max_results < keep.size:  # only the best few need sorting; ties with the k-th all stay
        kth = np.partition(candidates[keep], keep.size - max_results)[keep.size - max_results]
        keep = keep[candidates[keep] >= kth]
    if keep.size == 0:
        return []
    order = keep[np.lexsort((keep, -candidates[keep]))]
    if max_results > 0:
        order = order[:max_results]
    return [(int(i), float(scores[i])) for i in order]
