"""Greedy non-maximum suppression: OpenCV's C++ loop, numpy class rounds first on many boxes; no I/O.

Boxes are ``[N, 4]`` arrays of corners ``(x1, y1, x2, y2)``, any units, any
numeric dtype; the geometry is computed in float64. A box with ``x2 <= x1`` or
``y2 <= y1`` has area 0 (an inverted box counts as empty, not negative).
Scores are ``[N]`` floats; class ids ``[N]`` integers.

The IoU of two boxes is ``intersection / union``, and 0 when the union is 0
(two empty boxes), so it is never NaN; an empty box therefore never
suppresses, nor is suppressed by, anything. Neither is a box with a NaN
coordinate.

Greedy NMS visits boxes by score, highest first, equal scores in index order
(lower index first; NaN scores last), keeps a box unless one already kept (of
its class, for the batched functions) overlaps it with ``IoU > iou_threshold``
(strictly greater: a pair at exactly the threshold both survive; where
OpenCV decides, a pair less than ~1e-7 above it may survive too, see below),
and stops after ``max_detections`` kept boxes.

What runs when, and why (``benchmarks/bench_decode.py``: boxes as ``decode``
hands them to NMS, jittered copies of 50 objects of 80 classes; CPU time per
call on the 2-core dev machine)::

    boxes     cv2.dnn.NMSBoxesBatched   here
    50        0.03 ms                   0.04 ms
    300       0.19 ms                   0.17 ms
    10,000    9.8 ms                    1.3 ms

* Below ``_ROUNDS_FROM`` boxes, OpenCV alone: ``cv2.dnn.NMSBoxesBatched``
  compares each box with every kept one in C++, a few us in all at these
  counts, where numpy costs several us per kept box. Most of OpenCV's time is
  converting the boxes from numpy (~0.7 us a box); given a list of rows it
  takes half that. It is used only where it decides as we do: finite corners
  (translated to >= 0 for its class offsets), width and height > 1e-7, class
  ids in ``0..65535``; scores go as they are when float32 and neither NaN nor
  -inf, else as their greedy order. OpenCV rounds each IoU to float32 before
  comparing, so there a pair whose IoU exceeds ``iou_threshold`` by less than
  ~1e-7 may survive; given the threshold rounded the same way, a pair at
  exactly the threshold survives as here.
* From ``_ROUNDS_FROM`` boxes, numpy first, exact in float64: each round keeps
  the best undecided box of every class at once and drops the boxes of its
  class it overlaps, a few vector operations however many classes, while
  OpenCV's loop grows as boxes x kept boxes. A round that would keep a single
  box (one class left, or one class all along) is OpenCV's loop in slow
  motion: OpenCV decides the rest.
* Inputs OpenCV cannot take (NaN or infinite coordinates, empty boxes, other
  class ids) are decided by numpy rounds alone.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from streamer.errors import ConfigError

__all__ = ["batched_nms", "batched_nms_columns", "iou_matrix", "nms"]

_ROUNDS_FROM = 1000  # boxes: from here numpy's class rounds go first
_MIN_HEADS = 2  # a round that would keep one box (OpenCV's loop, slower) leaves the rest to OpenCV
_TINY = float(np.finfo(np.float64).tiny)


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    """``[N, 4]`` float corners, of the dtype given when it is a float one (else float64)."""
    array = np.asarray(boxes)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ConfigError(f"{name} must be an [N, 4] array of (x1, y1, x2, y2), got shape {list(array.shape)}")
    return array


def _inputs(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray | None,
    iou_threshold: float,
    max_detections: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Checked inputs: float corners, float scores, int64 class ids (``None``: all 0), threshold, limit.

    ``max_detections`` ``None`` or below 1 keeps every box, as ``select`` does for classes.
    """
    corners = _as_boxes(boxes)
    n = corners.shape[0]
    values = np.asarray(scores)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    classes = np.zeros(n, np.int64) if class_ids is None else np.asarray(class_ids, np.int64)
    for array, name in ((values, "scores"), (classes, "class_ids")):
        if array.shape != (n,):
            raise ConfigError(f"{name} must have shape [{n}] (one per box), got {list(array.shape)}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold = {iou_threshold!r}; expected a number in 0..1")
    limit = n if max_detections is None or max_detections < 1 else min(int(max_detections), n)
    return corners, values, classes, float(iou_threshold), limit


def _areas(boxes: np.ndarray) -> np.ndarray:
    widths = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    return widths * heights  # type: ignore[no-any-return]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` ``[N, 4]`` with every box in ``b`` ``[M, 4]``: float64 ``[N, M]``.

    Empty boxes (zero or negative width or height) give 0, never NaN.
    """
    boxes_a = _as_boxes(a, "a").astype(np.float64, copy=False)
    boxes_b = _as_boxes(b, "b").astype(np.float64, copy=False)
    width = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2]) - np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    height = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3]) - np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
    union = _areas(boxes_a)[:, None] + _areas(boxes_b)[None, :] - inter
    return inter / np.maximum(union, _TINY)  # type: ignore[no-any-return]


@lru_cache(maxsize=64)
def _opencv_threshold(threshold: float) -> float:
    """The float32 threshold OpenCV needs to keep every pair with IoU <= ``threshold``.

    OpenCV keeps a box while ``1.f - (float)(1.0 - iou) <= threshold``; that
    rounding is monotone, so the threshold rounded the same way is the bound.
    """
    return float(np.float32(1.0) - np.float32(1.0 - threshold))


def _opencv(corners: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float) -> np.ndarray | None:
    """``cv2.dnn.NMSBoxesBatched``: kept indices in greedy order, or ``None`` where its answer could differ.

    ``corners`` ``[N, 4]`` (N > 0) any float dtype. OpenCV orders by float32
    scores, equal ones in index order, and drops NaN and -inf: other scores
    are given as their greedy order.
    """
    if scores.dtype != np.float32 or not float(scores.min()) > -np.inf:  # NaN fails too
        priority = np.empty(scores.shape[0], np.float32)
        priority[_greedy_order(scores)] = np.arange(scores.shape[0], 0, -1)
        scores = priority
    low, high = float(corners.min()), float(corners.max())
    if not -np.inf < low <= high < np.inf:  # NaN fails too
        return None
    xywh = corners.T.astype(np.float64, order="C")  # rows x1, y1, x2, y2: a copy
    if low < 0.0:
        xywh -= low  # OpenCV's class offsets assume coordinates >= 0
    xywh[2:] -= xywh[:2]  # width, height
    if not float(xywh[2:].min()) > 1e-7:  # empty; OpenCV counts two areas summing to <= DBL_EPSILON as IoU 1
        return None
    if not 0 <= int(np.bitwise_or.reduce(classes)) <= 0xFFFF:  # also keeps OpenCV's class offsets exact
        return None
    rows = xywh.T.tolist()  # OpenCV converts a list of rows ~2x faster than an array
    ids = classes.astype(np.int32)
    kept = cv2.dnn.NMSBoxesBatched(rows, scores, ids, -np.inf, _opencv_threshold(threshold))  # type: ignore[arg-type]
    return np.asarray(kept, np.int64)


def _greedy_order(scores: np.ndarray) -> np.ndarray:
    """Indices by score, highest first, equal scores in index order, NaN last.

    float32 scores (what ``decode`` gives) sort as one int64 key each, their
    bits made monotone above the index, ~5x faster than a stable argsort.
    """
    if scores.dtype != np.float32:
        return np.argsort(-scores, kind="stable")
    bits = (scores + np.float32(0.0)).view(np.int32).astype(np.int64)  # + 0.0: -0.0 becomes +0.0
    rising = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # ordered as the floats are
    rising[np.isnan(scores)] = np.iinfo(np.int32).min  # below -inf
    keys = (~rising << 32) | np.arange(scores.shape[0])
    return np.sort(keys) & 0xFFFFFFFF  # type: ignore[no-any-return]


def _rounds(
    corners: np.ndarray, classes: np.ndarray, threshold: float, boxes: np.ndarray, min_heads: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """Exact greedy NMS of ``boxes`` (indices, in greedy order) in numpy, all classes at once.

    Each round keeps the best undecided box of every class (greedy NMS keeps
    it: every better box of its class is decided) and drops the boxes of its
    class it overlaps, so there are as many rounds as one class keeps boxes.
    Stops before a round that would keep fewer than ``min_heads`` boxes.
    Returns the kept boxes and the undecided ones, in greedy order.
    """
    keys = classes[boxes]
    if 0 <= int(np.bitwise_or.reduce(keys)) <= 0xFFFF:
        keys = keys.astype(np.uint16)  # 16-bit keys sort by radix, ~5x faster
    box = boxes[np.argsort(keys, kind="stable")]  # by class, then greedy order
    cls = classes[box]
    new_class = np.ones(box.size, bool)
    np.not_equal(cls[1:], cls[:-1], out=new_class[1:])
    # One float64 row per quantity, a column per box, so a round compresses them all at once:
    # x2, y2, -x1, -y1 (np.minimum of two columns gives the intersection's), area, class number, index.
    table = np.empty((7, box.size))
    x1y1x2y2 = np.take(corners, box, axis=0).T
    table[:2] = x1y1x2y2[2:]
    np.negative(x1y1x2y2[:2], out=table[2:4])
    table[5] = np.cumsum(new_class)
    table[6] = box
    kept: list[np.ndarray] = []
    with np.errstate(invalid="ignore", divide="ignore"):
        size = np.maximum(table[:2] + table[2:4], 0.0)  # width, height
        np.multiply(size[0], size[1], out=table[4])
        while table.shape[1]:
            first = np.ones(table.shape[1], bool)  # the best undecided box of its class
            np.not_equal(table[5, 1:], table[5, :-1], out=first[1:])
            heads = np.flatnonzero(first)
            if heads.size < min_heads:
                break
            head = np.repeat(table[:5, heads], np.diff(heads, append=first.size), axis=1)  # each box's
            extent = np.minimum(table[:4], head[:4])
            size = np.maximum(extent[:2] + extent[2:], 0.0)
            inter = size[0] * size[1]
            union = table[4] + head[4]
            union -= inter
            live = ~first & ~(inter / union > threshold)  # 0 / 0 (two empty boxes) is NaN, and NaN > t is False
            kept.append(table[6, heads].astype(np.int64))
            table = np.compress(live, table, axis=1)
    undecided = np.zeros(corners.shape[0], bool)
    undecided[table[6].astype(np.int64)] = True
    return kept, boxes[undecided[boxes]]


def _batched(corners: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float, limit: int) -> np.ndarray:
    """Class-wise greedy NMS on ``[N, 4]`` float corners: kept indices, int64, in greedy order, at most ``limit``."""
    n = scores.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    if n < _ROUNDS_FROM:
        found = _opencv(corners, scores, classes, threshold)
        if found is not None:
            return found[:limit]
    order = _greedy_order(scores)
    kept, rest = _rounds(corners, classes, threshold, order, _MIN_HEADS if n >= _ROUNDS_FROM else 1)
    if rest.size:
        found = _opencv(corners[rest], np.arange(rest.size, 0, -1, dtype=np.float32), classes[rest], threshold)
        kept += [rest[found]] if found is not None else _rounds(corners, classes, threshold, rest, 1)[0]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    result: np.ndarray = order[np.sort(rank[np.concatenate(kept)])][:limit]
    return result


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
    return _batched(*_inputs(boxes, scores, None, iou_threshold, max_detections))


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Class-wise greedy NMS: boxes only suppress boxes of their own class.

    Returns int64 indices into the inputs, by score (ties: lower index first),
    at most ``max_detections`` (``None`` or < 1: all).
    """
    return _batched(*_inputs(boxes, scores, class_ids, iou_threshold, max_detections))


def batched_nms_columns(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """:func:`batched_nms` with the corners as four ``[N]`` columns."""
    left = np.asarray(x1)
    if left.ndim != 1:
        raise ConfigError(f"x1 must be a column [N], got shape {list(left.shape)}")
    n = left.shape[0]
    for column, name in ((y1, "y1"), (x2, "x2"), (y2, "y2")):
        if np.shape(column) != (n,):
            raise ConfigError(f"{name} must have shape [{n}] (one per box), got {list(np.shape(column))}")
    corners = np.stack((left, y1, x2, y2), axis=1)
    return batched_nms(corners, scores, class_ids, iou_threshold, max_detections)
