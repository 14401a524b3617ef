"""Greedy NMS against a brute-force pure-Python reference (seeded and hypothesis-generated boxes), on every path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.errors import ConfigError
from streamer.vision import nms as nms_module
from streamer.vision.nms import batched_nms, batched_nms_columns, iou_matrix, nms

Box = tuple[float, float, float, float]

# Each entry forces one way through the module; all must give the textbook result.
PATHS = {
    "opencv": {"_ROUNDS_FROM": 10**9},  # OpenCV alone where it can take the input, numpy rounds where not
    "rounds-then-opencv": {"_ROUNDS_FROM": 0},  # numpy rounds while they keep >= _MIN_HEADS boxes, then OpenCV
    "numpy": {"_ROUNDS_FROM": 0, "_MIN_HEADS": 1},  # numpy rounds to the end
}


@contextmanager
def path(name: str) -> Iterator[None]:
    saved = {key: getattr(nms_module, key) for key in PATHS[name]}
    for key, value in PATHS[name].items():
        setattr(nms_module, key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            setattr(nms_module, key, value)


def ref_iou(a: Box, b: Box) -> float:
    """IoU the textbook way, in Python floats; 0 for an empty union."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def ref_nms(boxes: list[Box], scores: list[float], threshold: float, limit: int | None = None) -> list[int]:
    """Greedy NMS: by score, ties by index; keep unless IoU > threshold with a kept box."""
    keep: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: (-scores[i], i)):
        if all(ref_iou(boxes[i], boxes[k]) <= threshold for k in keep):
            keep.append(i)
            if limit and len(keep) == limit:
                break
    return keep


def ref_batched(
    boxes: list[Box], scores: list[float], classes: list[int], threshold: float, limit: int | None = None
) -> list[int]:
    """Greedy NMS class by class, merged by score (ties by index)."""
    keep: list[int] = []
    for c in set(classes):
        members = [i for i in range(len(boxes)) if classes[i] == c]
        kept = ref_nms([boxes[i] for i in members], [scores[i] for i in members], threshold)
        keep.extend(members[k] for k in kept)
    keep.sort(key=lambda i: (-scores[i], i))
    return keep[:limit] if limit else keep


def as_lists(boxes: np.ndarray, scores: np.ndarray) -> tuple[list[Box], list[float]]:
    return [tuple(map(float, b)) for b in boxes], [float(s) for s in scores]  # type: ignore[misc]


def near_threshold(boxes: np.ndarray, classes: np.ndarray, threshold: float) -> bool:
    """Whether two boxes of a class have ``threshold < IoU <= threshold + 1e-6``: OpenCV may keep both (see nms)."""
    iou = iou_matrix(boxes, boxes)
    same = classes[:, None] == classes[None, :]
    return bool((same & (iou > threshold) & (iou <= threshold + 1e-6)).any())


boxes_strategy = st.lists(
    st.tuples(
        st.integers(-5, 24),  # x1
        st.integers(-5, 24),  # y1
        st.integers(-2, 12),  # width: 0 is a zero-area box, negative an inverted one
        st.integers(-2, 12),  # height
        st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1)),  # exact ties, or not
        st.integers(0, 3),  # class
    ),
    max_size=40,
)
# What OpenCV takes: coordinates >= 0 (float32 values, not only integers), width and height > 0, float32 scores.
opencv_boxes_strategy = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 24), st.floats(0, 24, width=32)),
        st.one_of(st.integers(0, 24), st.floats(0, 24, width=32)),
        st.one_of(st.integers(1, 12), st.floats(0.5, 12, width=32)),
        st.one_of(st.integers(1, 12), st.floats(0.5, 12, width=32)),
        st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1, width=32)),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)
thresholds = st.one_of(st.sampled_from([0.0, 0.1, 0.3, 0.35, 0.45, 0.47, 0.5, 0.7, 1.0]), st.floats(0, 1))
limits = st.one_of(st.none(), st.integers(0, 8))


def unpack(rows: list[tuple[float, float, float, float, float, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h, _, _ in rows], np.float64).reshape(-1, 4)
    scores = np.array([r[4] for r in rows], np.float64)
    classes = np.array([r[5] for r in rows], np.int64)
    return boxes, scores, classes


@settings(max_examples=200, deadline=None)
@given(rows=boxes_strategy, threshold=thresholds, limit=limits, float32=st.booleans())
def test_nms_matches_reference(
    rows: list[tuple[float, float, float, float, float, int]], threshold: float, limit: int | None, float32: bool
) -> None:
    boxes, scores, classes = unpack(rows)
    if float32:
        scores = scores.astype(np.float32)
    expected = ref_nms(*as_lists(boxes, scores), threshold, limit)
    banded = near_threshold(boxes, np.zeros_like(classes), threshold)
    for name in PATHS:
        with path(name):
            kept = nms(boxes, scores, threshold, limit)
        assert kept.dtype == np.int64
        assert kept.tolist() == expected or (banded and name != "numpy"), name


@settings(max_examples=200, deadline=None)
@given(rows=boxes_strategy, threshold=thresholds, limit=limits)
def test_batched_nms_matches_reference(
    rows: list[tuple[float, float, float, float, float, int]], threshold: float, limit: int | None
) -> None:
    boxes, scores, classes = unpack(rows)
    expected = ref_batched(*as_lists(boxes, scores), classes.tolist(), threshold, limit)
    banded = near_threshold(boxes, classes, threshold)
    for name in PATHS:
        with path(name):
            kept = batched_nms(boxes, scores, classes, threshold, limit)
        assert kept.tolist() == expected or (banded and name != "numpy"), name


@settings(max_examples=200, deadline=None)
@given(rows=opencv_boxes_strategy, threshold=thresholds, limit=limits)
def test_opencv_matches_reference(
    rows: list[tuple[float, float, float, float, float, int]], threshold: float, limit: int | None
) -> None:
    boxes, scores, classes = unpack(rows)
    scores = scores.astype(np.float32)
    assert nms_module._opencv(boxes, scores, classes, threshold) is not None  # OpenCV really decides
    expected = ref_batched(*as_lists(boxes, scores), classes.tolist(), threshold, limit)
    if not near_threshold(boxes, classes, threshold):
        assert batched_nms(boxes, scores, classes, threshold, limit).tolist() == expected


def clustered(rng: np.random.Generator, n: int, objects: int, classes: int) -> tuple[np.ndarray, ...]:
    """Jittered copies of ``objects`` boxes in a 640x640 image, mostly of their object's class."""
    centres = rng.uniform(0, 640, (objects, 2))
    sizes = rng.uniform(10, 150, (objects, 2))
    labels = rng.integers(0, classes, objects)
    owner = rng.integers(0, objects, n)
    wh = sizes[owner] * np.exp(rng.normal(0, 0.15, (n, 2)))
    xy = centres[owner] + rng.normal(0, 0.1, (n, 2)) * sizes[owner]
    boxes = np.column_stack([xy - wh / 2, xy + wh / 2])
    label = np.where(rng.random(n) < 0.1, rng.integers(0, classes, n), labels[owner])
    return boxes, rng.random(n).astype(np.float32), label


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_clustered_boxes_match_reference(threshold: float) -> None:
    rng = np.random.default_rng(7)
    boxes, scores, classes = clustered(rng, 2500, objects=30, classes=12)
    box_list, score_list = as_lists(boxes, scores)
    expected = ref_batched(box_list, score_list, classes.tolist(), threshold)
    expected_plain = ref_nms(box_list[:600], score_list[:600], threshold)
    assert 30 < len(expected) < 2500  # clusters really collapse, and not to nothing
    assert batched_nms(boxes, scores, classes, threshold).tolist() == expected  # as configured: rounds, then OpenCV
    for name in PATHS:
        with path(name):
            assert batched_nms(boxes, scores, classes, threshold).tolist() == expected, name
            assert batched_nms(boxes, scores, classes, threshold, 25).tolist() == expected[:25], name
            assert nms(boxes[:600], scores[:600], threshold).tolist() == expected_plain, name


@pytest.mark.parametrize("name", list(PATHS))
def test_uniform_float_boxes_match_reference(name: str) -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (600, 2))
    boxes = np.column_stack([xy, xy + rng.uniform(0, 30, (600, 2))])
    scores = rng.random(600)  # float64, not float32 values: OpenCV gets their greedy order
    classes = rng.integers(0, 5, 600)
    box_list, score_list = as_lists(boxes, scores)
    with path(name):
        for threshold in (0.0, 0.2, 0.5, 0.9):
            assert nms(boxes, scores, threshold).tolist() == ref_nms(box_list, score_list, threshold)
            expected = ref_batched(box_list, score_list, classes.tolist(), threshold)
            assert batched_nms(boxes, scores, classes, threshold).tolist() == expected
            columns = (boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3])
            assert batched_nms_columns(*columns, scores, classes, threshold).tolist() == expected


@pytest.mark.parametrize("name", list(PATHS))
def test_ties_duplicates_and_zero_area(name: str) -> None:
    boxes = np.array(
        [
            [0, 0, 10, 10],
            [0, 0, 10, 10],  # duplicate, same score: the lower index wins
            [5, 5, 5, 15],  # zero width: never suppressed, never suppresses
            [5, 5, 5, 15],
            [20, 20, 30, 30],
            [20, 20, 30, 25],  # IoU exactly 0.5 with the box before: kept at threshold 0.5
        ],
        np.float64,
    )
    scores = np.array([0.5, 0.5, 0.9, 0.9, 0.7, 0.7])
    with path(name):
        assert nms(boxes, scores, 0.5).tolist() == [2, 3, 4, 5, 0]
        assert nms(boxes, scores, 0.49).tolist() == [2, 3, 4, 0]
    assert not np.isnan(iou_matrix(boxes, boxes)).any()


@pytest.mark.parametrize("name", list(PATHS))
@pytest.mark.parametrize("threshold", [0.1, 0.35, 0.47, 0.59, 0.71, 0.84])
def test_iou_exactly_at_the_threshold_survives(name: str, threshold: float) -> None:
    """At these thresholds OpenCV's own float32 rounding would suppress the pair; the rounded threshold keeps it."""
    inner = round(threshold * 100)
    boxes = np.array([[0, 0, 100, 10], [0, 0, inner, 10]], np.float64)  # IoU inner / 100, exactly the threshold
    assert iou_matrix(boxes, boxes)[0, 1] == threshold
    with path(name):
        assert batched_nms(boxes, np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64), threshold).tolist() == [0, 1]


def test_opencv_may_keep_a_pair_just_above_the_threshold() -> None:
    """The documented difference: IoU above the threshold by less than ~1e-7 is within OpenCV's float32 rounding."""
    boxes = np.array([[0, 0, 1e9, 1], [0, 0, 5e8 + 1, 1]], np.float64)  # IoU 0.5 + 1e-9
    scores, classes = np.array([0.9, 0.8], np.float32), np.zeros(2, np.int64)
    assert 0.5 < iou_matrix(boxes, boxes)[0, 1] < 0.5 + 1e-7
    with path("numpy"):
        assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0]
    with path("opencv"):
        assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1]


def test_what_opencv_is_not_given() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float64)
    scores, classes = np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1])
    assert nms_module._opencv(boxes, scores, classes, 0.5) is not None
    for bad in (np.nan, np.inf, -np.inf):
        odd = boxes.copy()
        odd[2, 2] = bad
        assert nms_module._opencv(odd, scores, classes, 0.5) is None, bad
    empty = boxes.copy()
    empty[2, 2] = empty[2, 0]
    assert nms_module._opencv(empty, scores, classes, 0.5) is None
    for odd_classes in (np.array([0, 0, 70_000]), np.array([0, 0, -1]), np.array([0, 0, 2**32 + 1])):
        assert nms_module._opencv(boxes, scores, odd_classes, 0.5) is None, odd_classes


def test_negative_coordinates_keep_classes_apart() -> None:
    """OpenCV shifts class c by c * (max coordinate + 1); below 0 that would put class 1 onto class 0."""
    boxes = np.array([[0, 0, 100, 100], [-101, -101, -1, -1]], np.float64)
    kept = batched_nms(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 1]), 0.5)
    assert kept.tolist() == [0, 1]


@pytest.mark.parametrize("name", list(PATHS))
def test_scores_opencv_cannot_order(name: str) -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 60]], np.float64)
    close = np.array([1.0, 1.0 + 1e-12, 0.5, 0.5])  # equal in float32
    odd = np.array([0.1, -np.inf, np.nan, 0.2], np.float32)  # OpenCV would drop -inf and NaN
    with path(name):
        assert nms(boxes, close, 0.5).tolist() == [1, 2]
        assert nms(boxes, odd, 0.5).tolist() == [3, 0]
    zeros = np.zeros(4, np.int64)
    assert nms_module._opencv(boxes, close, zeros, 0.5).tolist() == [1, 2]  # given as their greedy order
    assert nms_module._opencv(boxes, odd, zeros, 0.5).tolist() == [3, 0]


@pytest.mark.parametrize("name", list(PATHS))
def test_classes_do_not_suppress_each_other(name: str) -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    with path(name):
        assert batched_nms(boxes, scores, np.array([0, 0, 1]), 0.5).tolist() == [0, 2]
        assert batched_nms(boxes, scores, np.array([0, 1, 2]), 0.5).tolist() == [0, 1, 2]
        # Huge and sparse class ids, and infinite coordinates.
        assert batched_nms(boxes, scores, np.array([10**12, 3, 10**12]), 0.5).tolist() == [0, 1]
        infinite = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [-np.inf, 0, np.inf, 5]])
        assert batched_nms(infinite, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", list(PATHS))
def test_nan_scores_come_last(name: str) -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float64)
    scores = np.array([np.nan, 0.1, np.nan], np.float32)
    with path(name):
        assert nms(boxes, scores, 0.5).tolist() == [1, 2]


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.sampled_from([0.0, -0.0, 0.5, -0.5, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38]),
            st.floats(width=32, allow_nan=True),
        ),
        max_size=60,
    ),
    negative_nan=st.booleans(),
)
def test_greedy_order_of_float32_scores(values: list[float], negative_nan: bool) -> None:
    """The int64-key sort of float32 scores is the stable argsort's order: ties by index, -0.0 == 0.0, NaN last."""
    scores = np.array(values, np.float32)
    if negative_nan:  # a NaN with its sign bit set is still a NaN, still last
        scores[np.isnan(scores)] = -np.float32(np.nan)
    expected = np.argsort(-scores.astype(np.float64), kind="stable")
    assert nms_module._greedy_order(scores).tolist() == expected.tolist()
    assert nms_module._greedy_order(scores.astype(np.float64)).tolist() == expected.tolist()


def test_iou_matrix() -> None:
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0, 20, (7, 2)), rng.uniform(0, 20, (7, 2))])  # some inverted
    b = np.concatenate([a[:3], [[5, 5, 5, 9], [0, 0, 0, 0]]])
    matrix = iou_matrix(a, b)
    assert matrix.shape == (7, 5)
    expected = [[ref_iou(tuple(x), tuple(y)) for y in b] for x in a]
    np.testing.assert_allclose(matrix, expected, rtol=1e-12, atol=0)
    assert (matrix[:, 3:] == 0).all()
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 5)


def test_empty_input() -> None:
    for kept in (
        nms(np.zeros((0, 4)), np.zeros(0), 0.5),
        batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5),
        nms(np.ones((3, 4)), np.ones(3), 0.5, max_detections=0),  # < 1: all; here 3 empty boxes
        nms(np.array([[0, 0, 1, 1]]), np.ones(1, np.float32), 0.5),
    ):
        assert kept.dtype == np.int64
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64), 0.5).shape == (0,)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="iou_threshold"):
        nms(np.zeros((1, 4)), np.zeros(1), 1.5)
    with pytest.raises(ConfigError, match=r"\[N, 4\]"):
        nms(np.zeros(4), np.zeros(1), 0.5)
    with pytest.raises(ConfigError, match="scores"):
        nms(np.zeros((2, 4)), np.zeros(3), 0.5)
    with pytest.raises(ConfigError, match="class_ids"):
        batched_nms(np.zeros((2, 4)), np.zeros(2), np.zeros(3), 0.5)
    with pytest.raises(ConfigError, match="x1"):
        batched_nms_columns(np.zeros((2, 1)), np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), 0.5)
    with pytest.raises(ConfigError, match="y2"):
        batched_nms_columns(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2), 0.5)


@pytest.mark.parametrize("name", list(PATHS))
def test_integer_scores_and_boxes(name: str) -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 0, 30, 10]])
    with path(name):
        assert nms(boxes, np.array([1, 3, 2]), 0.5).tolist() == [1, 2]
