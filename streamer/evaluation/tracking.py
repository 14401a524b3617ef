"""Identity metrics of a tracker against ground truth. Pure: no I/O, no model.

Call order: gather, per frame, the true objects and the tracker's as
``(id, box)`` pairs (boxes ``(x1, y1, x2, y2)``), one list per frame, the same
frames in both; then ``metrics = identity_metrics(truth, predicted)``.

Two views of the same run:

* IDF1 (Ristani et al., "Performance Measures and a Data Set for Multi-Target,
  Multi-Camera Tracking", 2016): each true id is paired with at most one
  predicted id for the whole run, the pairing that agrees on the most boxes
  (a global bipartite matching, ``linear_sum_assignment``); a box agrees when
  its paired box in that frame overlaps it with ``IoU >= iou_threshold``.
  ``IDTP`` is that count; ``IDP = IDTP / predicted boxes``,
  ``IDR = IDTP / true boxes``, ``IDF1 = 2 IDTP / (true + predicted boxes)``.
* CLEAR MOT (Bernardin and Stiefelhagen, 2008): frame by frame, a true object
  keeps the predicted id it was matched to in the previous frame while they
  still overlap enough; the others are matched by an optimal assignment on
  IoU. An ID switch is a true id matched to another predicted id than at its
  last match. ``MOTA = 1 - (misses + false positives + switches) / true boxes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamer.errors import ConfigError
from streamer.vision.nms import iou_matrix

__all__ = ["IdentityMetrics", "identity_metrics"]

#: One frame's objects: ``(id, (x1, y1, x2, y2))`` pairs.
Frame = Sequence[tuple[int, Sequence[float] | np.ndarray]]


@dataclass(frozen=True, slots=True)
class IdentityMetrics:
    """Figures of one tracking run; ratios are 0 when their denominator is 0 (1 for IDF1 of two empty runs)."""

    idf1: float
    idp: float
    idr: float
    idtp: int  # boxes whose true and predicted ids are paired and overlap
    id_switches: int  # CLEAR MOT
    matches: int  # CLEAR MOT matched boxes, summed over frames
    misses: int  # true boxes left unmatched (CLEAR MOT)
    false_positives: int  # predicted boxes left unmatched (CLEAR MOT)
    mota: float
    truth_boxes: int
    predicted_boxes: int
    id_pairs: dict[int, int]  # true id -> the predicted id IDF1 paired it with (pairs that agree at least once)


def _frame(objects: Frame, what: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids ``[N]`` int64 and boxes ``[N, 4]`` float64 of one frame, checked."""
    ids = np.array([int(i) for i, _ in objects], np.int64)
    boxes = np.array([np.asarray(b, np.float64).reshape(4) for _, b in objects], np.float64).reshape(-1, 4)
    if np.unique(ids).size != ids.size:
        raise ConfigError(f"{what} frame {index} has the same id twice: {sorted(ids.tolist())}; ids must be unique")
    return ids, boxes


def identity_metrics(truth: Sequence[Frame], predicted: Sequence[Frame], iou_threshold: float = 0.5) -> IdentityMetrics:
    """IDF1 and CLEAR MOT figures of ``predicted`` against ``truth`` (see the module).

    ``truth`` and ``predicted``: one list of ``(id, box)`` per frame, the same
    number of frames. Raises :class:`ConfigError` for different frame counts,
    an id twice in a frame, or ``iou_threshold`` outside ``(0, 1]``.
    """
    if len(truth) != len(predicted):
        raise ConfigError(f"truth has {len(truth)} frames but predicted has {len(predicted)}; give the same frames")
    if not 0 < iou_threshold <= 1:
        raise ConfigError(f"iou_threshold = {iou_threshold!r}; expected a number in (0, 1]")
    frames = [
        (_frame(t, "truth", i), _frame(p, "predicted", i))
        for i, (t, p) in enumerate(zip(truth, predicted, strict=True))
    ]
    true_ids = np.unique(np.concatenate([t[0] for t, _ in frames] + [np.zeros(0, np.int64)]))
    pred_ids = np.unique(np.concatenate([p[0] for _, p in frames] + [np.zeros(0, np.int64)]))
    agree = np.zeros((true_ids.size, pred_ids.size), np.int64)
    switches = matches = 0
    last: dict[int, int] = {}  # true id -> predicted id at its last CLEAR MOT match
    current: dict[int, int] = {}  # true id -> predicted id matched in the previous frame
    for (t_ids, t_boxes), (p_ids, p_boxes) in frames:
        iou = iou_matrix(t_boxes, p_boxes)
        overlap = iou >= iou_threshold
        rows, cols = np.nonzero(overlap)
        np.add.at(agree, (np.searchsorted(true_ids, t_ids[rows]), np.searchsorted(pred_ids, p_ids[cols])), 1)
        pairs = _clear_pairs(t_ids, p_ids, iou, overlap, current)
        current = {}
        for row, col in pairs:
            t_id, p_id = int(t_ids[row]), int(p_ids[col])
            if last.get(t_id, p_id) != p_id:
                switches += 1
            last[t_id] = current[t_id] = p_id
        matches += len(pairs)
    n_truth = sum(t[0].size for t, _ in frames)
    n_pred = sum(p[0].size for _, p in frames)
    r, c = linear_sum_assignment(agree, maximize=True) if agree.size else (np.zeros(0, int), np.zeros(0, int))
    idtp = int(agree[r, c].sum())
    id_pairs = {int(true_ids[i]): int(pred_ids[j]) for i, j in zip(r, c, strict=True) if agree[i, j] > 0}
    misses, false_positives = n_truth - matches, n_pred - matches
    return IdentityMetrics(
        idf1=2 * idtp / (n_truth + n_pred) if n_truth + n_pred else 1.0,
        idp=idtp / n_pred if n_pred else 0.0,
        idr=idtp / n_truth if n_truth else 0.0,
        idtp=idtp,
        id_switches=switches,
        matches=matches,
        misses=misses,
        false_positives=false_positives,
        mota=1 - (misses + false_positives + switches) / n_truth if n_truth else 0.0,
        truth_boxes=n_truth,
        predicted_boxes=n_pred,
        id_pairs=id_pairs,
    )


def _clear_pairs(
    t_ids: np.ndarray, p_ids: np.ndarray, iou: np.ndarray, overlap: np.ndarray, previous: dict[int, int]
) -> list[tuple[int, int]]:
    """One frame's CLEAR MOT pairs (truth row, predicted row): last frame's pairs kept where they still overlap."""
    col_of = {int(p): j for j, p in enumerate(p_ids)}
    pairs: list[tuple[int, int]] = []
    free_t = np.ones(t_ids.size, bool)
    free_p = np.ones(p_ids.size, bool)
    for row, t_id in enumerate(t_ids):
        before = previous.get(int(t_id))
        col = None if before is None else col_of.get(before)
        if col is not None and overlap[row, col]:
            pairs.append((row, col))
            free_t[row] = free_p[col] = False
    rows, cols = np.flatnonzero(free_t), np.flatnonzero(free_p)
    sub = overlap[np.ix_(rows, cols)]
    if sub.any():
        cost = np.where(sub, 1.0 - iou[np.ix_(rows, cols)], 1e6)
        r, c = linear_sum_assignment(cost)
        pairs += [(int(rows[i]), int(cols[j])) for i, j in zip(r, c, strict=True) if sub[i, j]]
    return pairs
