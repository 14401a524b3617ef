"""Greedy non-maximum suppression: pure numpy, no I/O.

Boxes are ``[N, 4]`` arrays of corners ``(x1, y1, x2, y2)``, any units, any
numeric dtype; the geometry is computed in float64. A box with ``x2 <= x1`` or
``y2 <= y1`` has area 0 (an inverted box counts as empty, not negative).
Scores are ``[N]`` floats; class ids ``[N]`` integers.

The IoU of two boxes is ``intersection / union``, and 0 when the union is 0
(two empty boxes), so it is never NaN; an empty box therefore never
suppresses, nor is suppressed by, anything. Neither is a box with a NaN
coordinate.

Greedy NMS visits boxes by score, highest first, equal scores in index order
(lower index first; NaN scores last), keeps a box unless one already kept
overlaps it with ``IoU > iou_threshold`` (strictly greater: a pair at exactly
the threshold both survive), and stops after ``max_detections`` kept boxes.
The result is exactly that of the textbook loop, computed faster:

* boxes are sorted once by a 16-bit bucket of ``x1``; IoU > t is only
  possible with boxes whose ``x1`` lies in a window around a box's own, found
  by binary search, so no step compares all pairs;
* class-wise, the best undecided box of every class is kept at once (it
  always is) and suppresses its windows, vectorised over classes, round after
  round while that keeps several boxes;
* otherwise boxes are kept one at a time (the Python loop runs once per
  *kept* box), with suppressed boxes compacted away as they pile up;
* once the undecided boxes form few candidate pairs, the suppression graph
  among them is built at once and settled in a few vectorised rounds.
"""

from __future__ import annotations

import math

import numpy as np

from streamer.errors import ConfigError

__all__ = ["batched_nms", "batched_nms_columns", "iou_matrix", "nms"]

_TINY = float(np.finfo(np.float64).tiny)
_SIGN = np.uint32(0x80000000)
_LOW32 = np.uint64(0xFFFFFFFF)
_PAIRS_FROM = 2048  # at most this many undecided boxes: try settling them all at once,
_PAIR_BUDGET = 16  # if they make at most this many candidate pairs per box (+1024)
_CHECK_EVERY = 8  # kept boxes between checks whether half the active boxes are gone
_MAX_ROUNDS = 32  # vectorised rounds before going on one kept box at a time
_MIN_HEADS = 4  # class-wise: keep the best box of every class at once while that keeps this many
_PACK_LIMIT = 0xFFFF  # most boxes whose index fits beside a 16-bit x key in a uint32


def _as_boxes(boxes: np.ndarray, name: str = "boxes") -> np.ndarray:
    array = np.asarray(boxes, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ConfigError(f"{name} must be an [N, 4] array of (x1, y1, x2, y2), got shape {list(array.shape)}")
    return array


def _as_column(values: np.ndarray, n: int, name: str, dtype: type | None = None) -> np.ndarray:
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if dtype is None and not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
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


def _ascending_key(values: np.ndarray) -> np.ndarray:
    """uint32 keys that sort like the float32 ``values`` (-0.0 like 0.0, NaN last)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    key: np.ndarray = np.where(bits >= _SIGN, ~bits, bits | _SIGN)
    return key


def _rank_keys(scores: np.ndarray) -> np.ndarray:
    """One unique uint64 per box, ascending in greedy order; the low 32 bits are the box index.

    The high 32 bits order by score, highest first (NaN last): the score's own
    bits when it is a float32 value, else its rank from a sort that puts equal
    scores in index order. Sorting these keys, or taking the minimum of a
    subset, gives greedy order and best box without an argsort.
    """
    n = scores.shape[0]
    index = np.arange(n, dtype=np.uint64)
    if scores.dtype.itemsize <= 4 or np.array_equal(scores.astype(np.float32), scores):
        descending = ~_ascending_key(scores)
        descending[np.isnan(scores)] = np.uint32(0xFFFFFFFF)
        return (descending.astype(np.uint64) << np.uint64(32)) | index
    key = -scores.astype(np.float64)
    order = np.argsort(key)  # unstable (NaN last); put runs of equal scores in index order
    ranked = np.take(key, order)
    same = ranked[1:] == ranked[:-1]
    if same.any():
        member = np.zeros(n, bool)
        member[1:] |= same
        member[:-1] |= same
        positions = np.flatnonzero(member)
        group = np.cumsum(np.concatenate(([True], ~same)))[positions]
        order[positions] = np.sort(group * n + order[positions]) % n
    rank = np.empty(n, np.uint64)
    rank[order] = index
    return (rank << np.uint64(32)) | index


def _by_key(keys: np.ndarray) -> np.ndarray:
    """Box indices in greedy order, from their rank keys."""
    return (np.sort(keys) & _LOW32).astype(np.int64)


def _pairs(xs: np.ndarray, ends: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Positions ``(i, j)``, ``i < j``, in the sorted keys ``xs`` with ``xs[j] <= ends[i]``.

    ``None`` when there would be more than ``budget``.
    """
    m = xs.shape[0]
    counts = np.maximum(xs.searchsorted(ends, "right") - np.arange(1, m + 1), 0)
    total = int(counts.sum())
    if total > budget:
        return None
    first = np.repeat(np.arange(m), counts)
    second = np.arange(total) - np.repeat(np.cumsum(counts) - counts - 1, counts) + first
    return first, second


def _resolve(
    first: np.ndarray,
    second: np.ndarray,
    corners: np.ndarray,
    areas: np.ndarray,
    ranks: np.ndarray,
    n: int,
    iou_threshold: float,
) -> np.ndarray:
    """Greedy NMS among the boxes at ``ranks``, given all their candidate pairs: the kept ranks, ascending.

    The suppression graph (edges where IoU > threshold, from the better rank to
    the worse) is built at once. Each round keeps every undecided box none of
    whose better neighbours is undecided, then drops the boxes those overlap;
    the best undecided box is decided every round. After ``_MAX_ROUNDS``
    rounds (long chains of overlaps) the rest goes one kept box at a time.
    """
    extent = np.minimum(np.take(corners, first, axis=1), np.take(corners, second, axis=1))
    extent = extent[:2] + extent[2:]  # min(x2) - max(x1), min(y2) - max(y1)
    np.maximum(extent, 0.0, out=extent)
    inter = extent[0] * extent[1]
    union = np.take(areas, first) + np.take(areas, second)
    union -= inter
    inter /= union  # 0 / 0 (two empty boxes) is NaN, and NaN > t is False
    edge = np.flatnonzero(inter > iou_threshold)
    rank_a, rank_b = np.take(ranks, np.take(first, edge)), np.take(ranks, np.take(second, edge))
    src, dst = np.minimum(rank_a, rank_b), np.maximum(rank_a, rank_b)
    undecided = np.zeros(n, bool)
    undecided[ranks] = True
    kept = np.zeros(n, bool)
    for _ in range(_MAX_ROUNDS):
        if src.size == 0:
            kept |= undecided
            return np.flatnonzero(kept)
        blocked = np.zeros(n, bool)
        blocked[dst[undecided[src]]] = True
        new = undecided & ~blocked
        kept |= new
        undecided &= ~new
        undecided[dst[new[src]]] = False
        live = undecided[dst]
        src, dst = src[live], dst[live]
        if not undecided.any():
            return np.flatnonzero(kept)
    by_src = np.argsort(src, kind="stable")
    src, dst = src[by_src], dst[by_src]
    rank = 0
    while True:
        rank += int(undecided[rank:].argmax())
        if not undecided[rank]:
            return np.flatnonzero(kept)
        kept[rank] = True
        undecided[rank] = False
        undecided[dst[src.searchsorted(rank) : src.searchsorted(rank, "right")]] = False


class _Greedy:
    """One greedy NMS run over float64 corner columns.

    Per box (by index): ``corners`` (rows ``x2, y2, -x1, -y1``: one
    ``np.minimum`` of two columns gives ``min(x2), min(y2), -max(x1),
    -max(y1)``), ``areas``, rank ``keys``, and the window bounds ``starts`` /
    ``ends`` as uint16 buckets of x. The active boxes are kept sorted by their
    x1 bucket: ``xs``, ``boxes`` (indices), ``sorted_corners``,
    ``sorted_areas``, ``sorted_ends``, and, once ranked, ``ranks``.
    """

    def __init__(
        self, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray, keys: np.ndarray, threshold: float
    ) -> None:
        n = keys.shape[0]
        self.threshold = threshold
        self.keys = keys
        corners = np.empty((4, n))
        corners[0], corners[1] = x2, y2
        np.negative(x1, out=corners[2])
        np.negative(y1, out=corners[3])
        width, height = corners[0] + corners[2], corners[1] + corners[3]  # x2 - x1 exactly
        # Where box j must start to reach IoU > t with box i (exact arithmetic; the
        # x-overlap o is at most x2_j - x1_i and x2_i - x1_j, and above t * w_j and
        # t * w_i since the intersection exceeds t * each area):
        #     x1_i - (1 - t) * widest  <  x1_j  <  x2_i - t * w_i,
        # widened by ``margin`` for rounding, then bucketed (a monotone map). A
        # wider window only costs time, never changes the result.
        widest = max(float(np.fmax.reduce(width)), 0.0)
        margin = 1e-6 * max(1.0, widest, float(np.fmax.reduce(np.abs(x1))), float(np.fmax.reduce(np.abs(x2))))
        starts = x1 - ((1.0 - threshold) * widest + margin)
        np.maximum(width, 0.0, out=width)
        ends = x2 - (threshold * width - margin)
        np.maximum(height, 0.0, out=height)
        self.corners = corners
        self.areas = width * height
        low, high = float(np.fmin.reduce(starts)), float(np.fmax.reduce(x1))
        scale = 65535.0 / (high - low) if high > low else 0.0
        if not math.isfinite(scale) or not math.isfinite(low):
            low, scale = 0.0, 0.0  # infinite coordinates: one bucket, windows hold everything

        def bucket(values: np.ndarray) -> np.ndarray:
            return np.clip((values - low) * scale, 0.0, 65535.0).astype(np.uint16)  # NaN: any bucket

        self.starts, self.ends = bucket(starts), bucket(ends)
        x_keys = bucket(x1)
        if n <= _PACK_LIMIT:  # one uint32 sort of (key << 16 | index) beats argsort
            packed = np.sort((x_keys.astype(np.uint32) << np.uint32(16)) | np.arange(n, dtype=np.uint32))
            self.boxes = (packed & np.uint32(0xFFFF)).astype(np.int64)
            self.xs = (packed >> np.uint32(16)).astype(np.uint16)
        else:
            self.boxes = np.argsort(x_keys, kind="stable")  # radix sort
            self.xs = np.take(x_keys, self.boxes)
        self.alive = np.ones(n, bool)  # by box until ranked, then by rank
        self.kept: list[np.ndarray] = []  # box indices
        self.order = np.zeros(0, np.int64)
        self.ranks = np.zeros(0, np.int64)
        self.sorted_corners, self.sorted_areas, self.sorted_ends = self.corners, self.areas, self.ends
        self.sorted = False  # whether the three above are in x order (else by box index)
        self.pairs: tuple[np.ndarray, np.ndarray] | None = None  # candidate pairs, once few

    def compact(self, live: np.ndarray | None = None) -> None:
        """Drop the decided boxes from the active arrays (or keep the positions ``live``)."""
        self.pairs = None
        if live is None:
            live = np.flatnonzero(np.take(self.alive, self.ranks if self.order.size else self.boxes))
        if not self.sorted:  # first compaction: gather by box index
            self.sorted, self.boxes = True, np.take(self.boxes, live)
            self.xs = np.take(self.xs, live)
            self.sorted_corners = np.take(self.corners, self.boxes, axis=1)
            self.sorted_areas, self.sorted_ends = np.take(self.areas, self.boxes), np.take(self.ends, self.boxes)
            return
        self.boxes, self.xs, self.sorted_ends, self.sorted_areas = (
            np.take(a, live) for a in (self.boxes, self.xs, self.sorted_ends, self.sorted_areas)
        )
        self.sorted_corners = np.take(self.sorted_corners, live, axis=1)
        if self.order.size:
            self.ranks = np.take(self.ranks, live)

    def suppressed(self, owners: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The box indices at active ``positions`` whose IoU with box ``owners`` (aligned) exceeds the threshold."""
        others = np.take(self.boxes, positions)
        if self.sorted:
            corners, areas = np.take(self.sorted_corners, positions, axis=1), np.take(self.sorted_areas, positions)
        else:
            corners, areas = np.take(self.corners, others, axis=1), np.take(self.areas, others)
        extent = np.minimum(corners, np.take(self.corners, owners, axis=1))
        extent = extent[:2] + extent[2:]  # min(x2) - max(x1), min(y2) - max(y1)
        np.maximum(extent, 0.0, out=extent)
        inter = extent[0] * extent[1]
        union = areas + np.take(self.areas, owners)
        union -= inter
        inter /= union  # 0 / 0 (two empty boxes) is NaN, and NaN > t is False
        result: np.ndarray = others[inter > self.threshold]
        return result

    def keep_classes(self, groups: np.ndarray, count: int) -> None:
        """Keep the best undecided box of every group at once, round after round.

        The best undecided box of a class is always kept (every better box of
        its class is decided), and boxes of different classes never overlap.
        Rounds go on while they keep at least ``_MIN_HEADS`` boxes each, and
        until the undecided boxes are few enough to settle as a graph.
        """
        none = np.uint64(0xFFFFFFFFFFFFFFFF)
        while self.boxes.size and not self.sparse():
            best = np.full(count, none)
            np.minimum.at(best, np.take(groups, self.boxes), np.take(self.keys, self.boxes))
            heads = (best[best != none] & _LOW32).astype(np.int64)
            if heads.shape[0] < _MIN_HEADS:
                return
            lo = self.xs.searchsorted(np.take(self.starts, heads))
            counts = np.maximum(self.xs.searchsorted(np.take(self.ends, heads), "right") - lo, 0)
            positions = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts - lo, counts)
            self.alive[self.suppressed(np.repeat(heads, counts), positions)] = False
            self.alive[heads] = False
            self.kept.append(heads)
            self.compact()

    def sparse(self) -> bool:
        """Whether the active boxes make few enough candidate pairs for :func:`_resolve` (kept in ``pairs``)."""
        m = self.boxes.shape[0]
        if m > _PAIRS_FROM:
            return False
        if not self.sorted:
            self.compact(np.arange(m))
        self.pairs = _pairs(self.xs, self.sorted_ends, _PAIR_BUDGET * m + 1024)
        return self.pairs is not None

    def rank(self) -> None:
        """Switch to rank space: ``order`` (box by rank) over the active boxes, ``alive`` by rank."""
        if not self.sorted:
            self.compact(np.arange(self.boxes.shape[0]))
        self.order = _by_key(np.take(self.keys, self.boxes))
        m = self.order.shape[0]
        rank_of = np.empty(self.keys.shape[0], np.int64)
        rank_of[self.order] = np.arange(m)
        self.ranks = np.take(rank_of, self.boxes)
        self.alive = np.ones(m, bool)

    def keep_one(self, rank: int) -> None:
        """Keep the box of ``rank`` (every better box decided) and suppress what it overlaps."""
        box = self.order[rank]
        lo, hi = self.xs.searchsorted(self.starts[box]), self.xs.searchsorted(self.ends[box], "right")
        if hi - lo > 1:
            extent = np.minimum(self.sorted_corners[:, lo:hi], self.corners[:, box, None])
            extent = extent[:2] + extent[2:]
            np.maximum(extent, 0.0, out=extent)
            inter = extent[0] * extent[1]
            union = self.sorted_areas[lo:hi] + self.areas[box]
            union -= inter
            inter /= union
            self.alive[self.ranks[lo:hi][inter > self.threshold]] = False
        self.alive[rank] = False

    def run(self, limit: int) -> np.ndarray:
        """Decide the remaining boxes; the first ``limit`` kept box indices, in greedy order."""
        self.rank()
        m = self.order.shape[0]
        keep: list[int] = []
        stop = 0 if self.kept else limit  # counting kept boxes by rank only holds without class rounds
        rank = 0
        while rank < m:
            if self.pairs is None:
                self.sparse()
            if self.pairs is not None:
                rest = _resolve(*self.pairs, self.sorted_corners, self.sorted_areas, self.ranks, m, self.threshold)
                keep.extend(rest.tolist())
                break
            rank = self.sequential(rank, keep, stop)
            self.compact()
        kept = np.concatenate([np.take(self.order, np.asarray(keep, np.int64)), *self.kept])
        return _by_key(np.take(self.keys, kept))[:limit]

    def sequential(self, rank: int, keep: list[int], stop: int) -> int:
        """Keep boxes one at a time, by rank from ``rank``, appending to ``keep``.

        Returns the next rank to look at once half the active boxes are decided,
        or the box count when all are (or ``keep`` reached ``stop``).
        """
        m, active = self.order.shape[0], self.ranks.shape[0]
        done = 0
        while True:
            if not self.alive[rank]:
                rank += int(self.alive[rank:].argmax())
                if not self.alive[rank]:
                    return m
            keep.append(rank)
            if len(keep) == stop:
                return m
            self.keep_one(rank)
            rank += 1
            if rank == m:
                return m
            done += 1
            if done % _CHECK_EVERY == 0 and np.count_nonzero(self.alive[rank:]) * 2 <= active:
                return rank


def _greedy(
    x1: np.ndarray,
    y1: np.ndarray,
    x2: np.ndarray,
    y2: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    limit: int,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Greedy NMS on float64 corner columns: kept indices, int64, in greedy order.

    ``groups`` (ints in ``0..n-1``, e.g. class ids) may mark boxes that cannot
    overlap across groups; it only makes things faster.
    """
    n = scores.shape[0]
    if n == 0 or limit == 0:
        return np.zeros(0, np.int64)
    keys = _rank_keys(scores)
    if limit == 1:
        return np.array([int(keys.min() & _LOW32)], np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        state = _Greedy(x1, y1, x2, y2, keys, iou_threshold)
        if groups is not None and limit >= _MIN_HEADS:
            state.keep_classes(groups, int(groups.max()) + 1)
        return state.run(limit)


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
    n = array.shape[0]
    values = _as_column(scores, n, "scores")
    threshold = _check_threshold(iou_threshold)
    x1, y1, x2, y2 = (np.ascontiguousarray(array[:, k]) for k in range(4))
    return _greedy(x1, y1, x2, y2, values, threshold, _limit(max_detections, n))


def batched_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Class-wise greedy NMS: boxes only suppress boxes of their own class.

    Returns int64 indices into the inputs, by score (ties: lower index first),
    at most ``max_detections`` (``None`` or < 1: all). One greedy pass does
    every class at once: each class's boxes are shifted along x by
    ``(class_id - min_class_id) * (max_x - min_x + 1)`` so boxes of different
    classes never intersect (in float64 the shift is exact for integer
    coordinates and within ~1e-11 otherwise).
    """
    array = _as_boxes(boxes)
    return batched_nms_columns(
        array[:, 0], array[:, 1], array[:, 2], array[:, 3], scores, class_ids, iou_threshold, max_detections
    )


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
    """:func:`batched_nms` with the corners as four ``[N]`` columns (no ``[N, 4]`` array to build)."""
    left = np.asarray(x1, dtype=np.float64)
    if left.ndim != 1:
        raise ConfigError(f"x1 must be a column [N], got shape {list(left.shape)}")
    n = left.shape[0]
    top, right, bottom = (_as_column(c, n, name, np.float64) for c, name in ((y1, "y1"), (x2, "x2"), (y2, "y2")))
    values = _as_column(scores, n, "scores")
    classes = _as_column(class_ids, n, "class_ids", np.int64)
    threshold = _check_threshold(iou_threshold)
    limit = _limit(max_detections, n)
    if n == 0:
        return np.zeros(0, np.int64)
    low, high = int(classes.min()), int(classes.max())
    if high == low:
        return _greedy(left, top, right, bottom, values, threshold, limit)
    groups = classes - low if high - low < n else np.unique(classes, return_inverse=True)[1].reshape(-1)
    span = max(float(np.fmax.reduce(right)), float(np.fmax.reduce(left))) - min(
        float(np.fmin.reduce(left)), float(np.fmin.reduce(right))
    )
    if math.isfinite(span):
        shift = groups * (span + 1.0)
        return _greedy(left + shift, top, right + shift, bottom, values, threshold, limit, groups)
    # Infinite coordinates: no shift separates the classes, so one pass per class.
    kept = []
    for members in (np.flatnonzero(classes == c) for c in np.unique(classes)):
        columns = (left[members], top[members], right[members], bottom[members])
        kept.append(members[_greedy(*columns, values[members], threshold, limit)])
    return _by_key(np.take(_rank_keys(values), np.concatenate(kept)))[:limit]
