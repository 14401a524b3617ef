"""Greedy non-maximum suppression: pure numpy, no I/O.

Boxes are ``[N, 4]`` arrays of corners ``(x1, y1, x2, y2)``, any units, any
float or int dtype; the arithmetic is done in float64. A box with ``x2 <= x1``
or ``y2 <= y1`` has area 0 (an inverted box counts as empty, not negative).
Scores are ``[N]``; class ids ``[N]`` integers.

The IoU of two boxes is ``intersection / union``, and 0 when the union is 0
(two empty boxes), so it is never NaN; an empty box therefore never
suppresses, nor is suppressed by, anything.

Greedy NMS visits boxes by score, highest first, ties in index order (lower
index first), keeps a box unless one already kept overlaps it with
``IoU > iou_threshold`` (strictly greater: a pair at exactly the threshold
both survive), and stops after ``max_detections`` kept boxes. The Python loop
runs once per *kept* box: each round compares the kept box, vectorised, with
only the boxes whose x-range can intersect it (found by binary search in the
boxes sorted by ``x1``), so the cost follows the overlap, not ``N**2``.
"""

from __future__ import annotations

import numpy as np

from streamer.errors import ConfigError

__all__ = ["batched_nms", "iou_matrix", "nms"]

_TINY = float(np.finfo(np.float64).tiny)
_EMPTY = np.zeros(0, np.int64)


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ConfigError(f"{name} must be an [N, 4] array of (x1, y1, x2, y2), got shape {list(array.shape)}")
    return array


def _as_vector(values: np.ndarray, n: int, name: str, dtype: type) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if array.shape != (n,):
        raise ConfigError(f"{name} must have shape [{n}] (one per box), got {list(array.shape)}")
    return array


def _check_threshold(iou_threshold: float) -> float:
    if not 0.0 <= iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold = {iou_threshold!r}; expected a number in 0..1")
    return float(iou_threshold)


def _limit(max_detections: int | None, n: int) -> int:
    """``None`` or a value below 1 keeps every box, as ``select`` does for classes."""
    if max_detections is None or max_detections < 1:
        return n
    return min(int(max_detections), n)


def _areas(boxes: np.ndarray) -> np.ndarray:
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    return widths * heights  # type: ignore[no-any-return]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``[N, 4]`` with every box in ``b`` ``[M, 4]``: float64 ``[N, M]``.

    Empty boxes (zero or negative width or height) give 0, never NaN.
    """
    boxes_a, boxes_b = _as_boxes(a, "a"), _as_boxes(b, "b")
    width = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2]) - np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    height = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3]) - np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
    union = _areas(boxes_a)[:, None] + _areas(boxes_b)[None, :] - inter
    return inter / np.maximum(union, _TINY)  # type: ignore[no-any-return]


def _greedy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Greedy NMS on validated float64 inputs; indices of kept boxes, by score."""
    n = scores.shape[0]
    if n == 0 or limit == 0:
        return _EMPTY.copy()
    order = np.argsort(-scores, kind="stable")  # by score, ties keep the lower index first
    if limit == 1:
        return order[:1].astype(np.int64)
    ranked = boxes[order]  # row r: the box of rank r
    areas = _areas(ranked)
    by_x = np.argsort(ranked[:, 0])  # ranks sorted by x1
    sorted_boxes = ranked[by_x]
    x1, y1 = np.ascontiguousarray(sorted_boxes[:, 0]), np.ascontiguousarray(sorted_boxes[:, 1])
    x2, y2 = np.ascontiguousarray(sorted_boxes[:, 2]), np.ascontiguousarray(sorted_boxes[:, 3])
    sorted_areas = areas[by_x]
    # A box j can intersect box i only if x1_j < x2_i and x2_j > x1_i, and
    # x2_j <= x1_j + widest, so x1_j lies in (x1_i - widest, x2_i). The margin
    # covers float rounding; a wider window only costs time, never changes results.
    widest = max(float((ranked[:, 2] - ranked[:, 0]).max()), 0.0)
    reach = widest + 1e-6 * max(1.0, float(np.abs(ranked).max()))
    rows = ranked.tolist()
    area_list = areas.tolist()
    alive = np.ones(n, bool)  # by rank
    keep: list[int] = []
    rank = 0
    while True:
        if not alive[rank]:
            rank += int(alive[rank:].argmax())
            if not alive[rank]:
                break
        keep.append(rank)
        if len(keep) == limit:
            break
        bx1, by1, bx2, by2 = rows[rank]
        lo = int(x1.searchsorted(bx1 - reach))
        hi = int(x1.searchsorted(bx2))
        if hi - lo > 1:
            width = np.minimum(x2[lo:hi], bx2)
            width -= np.maximum(x1[lo:hi], bx1)
            height = np.minimum(y2[lo:hi], by2)
            height -= np.maximum(y1[lo:hi], by1)
            np.maximum(width, 0.0, out=width)
            np.maximum(height, 0.0, out=height)
            inter = width
            inter *= height
            union = sorted_areas[lo:hi] + area_list[rank]
            union -= inter
            np.maximum(union, _TINY, out=union)
            inter /= union
            alive[by_x[lo:hi][inter > iou_threshold]] = False
        rank += 1
        if rank == n:
            break
    return order[np.asarray(keep, np.int64)].astype(np.int64)


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy NMS over all boxes regardless of class: kept indices into ``boxes``, int64, by score.

    A box is suppressed when its IoU with a kept box is strictly greater than
    ``iou_threshold`` (0..1). ``max_detections`` ``None`` or < 1 keeps all.
    """
    array = _as_boxes(boxes)
    values = _as_vector(scores, array.shape[0], "scores", np.float64)
    threshold = _check_threshold(iou_threshold)
    return _greedy(array, values, threshold, _limit(max_detections, array.shape[0]))


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Class-wise greedy NMS: boxes only suppress boxes of their own class.

    Returns int64 indices into the inputs, by score (ties: lower index first),
    at most ``max_detections`` (``None`` or < 1: all). One :func:`nms` pass does
    every class at once: each class's boxes are shifted by
    ``(class_id - min_class_id) * (max_coordinate - min_coordinate + 1)`` so
    boxes of different classes can never intersect (float64 keeps the shift exact
    for integer coordinates and to ~1e-12 pixel otherwise).
    """
    array = _as_boxes(boxes)
    n = array.shape[0]
    values = _as_vector(scores, n, "scores", np.float64)
    classes = _as_vector(class_ids, n, "class_ids", np.int64)
    threshold = _check_threshold(iou_threshold)
    if n == 0:
        return _EMPTY.copy()
    low = int(classes.min())
    if int(classes.max()) != low:
        span = float(array.max()) - float(array.min()) + 1.0
        array = array + ((classes - low) * span)[:, None]
    return _greedy(array, values, threshold, _limit(max_detections, n))
