"""Synthetic tracking scenes with known trajectories: boxes alone, or objects from real photographs.

``box_scene`` makes detector output without images (for unit tests and
``benchmarks/bench_tracking.py``): objects of a few classes moving at constant
velocity with jittered boxes, crossing each other, missed now and then, their
scores dropped into the low range while another object hides them, plus false
positives; some frames are skipped, so the time between frames varies.

The image scenes paste rectangles cut from scikit-image's photographs (the
cat of ``chelsea``, the astronaut, the motorcycle of ``stereo_motorcycle``,
each one YOLOv3-tiny detects) over a real background photograph, 640x480 RGB
uint8, and give the true boxes: ``crossing_scene`` (two objects cross, one
hiding the other), ``exit_return_scene`` (an object leaves the frame and comes
back), ``gap_scene`` (an object is not drawn for a few frames).

Truth is, per frame, ``(id, box)`` pairs, boxes ``(x1, y1, x2, y2)`` float64
clipped to the frame; an object is in a frame's truth when part of it is drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tests.media import photo

__all__ = [
    "CROPS",
    "BoxScene",
    "ImageScene",
    "box_scene",
    "crossing_scene",
    "exit_return_scene",
    "gap_scene",
]

Truth = list[list[tuple[int, np.ndarray]]]


@dataclass(frozen=True)
class BoxScene:
    """Detections and truth per frame; ``detections[i]``: ``(boxes [K,4], scores [K], class_ids [K])``."""

    times: list[float]
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    truth: Truth


@dataclass(frozen=True)
class ImageScene:
    """Frames (RGB uint8 ``[480, 640, 3]``), their times in seconds, truth, and each id's COCO class name."""

    frames: list[np.ndarray]
    times: list[float]
    truth: Truth
    labels: dict[int, str]


def box_scene(
    objects: int = 20,
    frames: int = 100,
    *,
    seed: int = 0,
    fps: float = 10.0,
    classes: int = 3,
    jitter: float = 0.03,
    miss_rate: float = 0.05,
    false_positives: float = 1.0,
    skip_rate: float = 0.1,
) -> BoxScene:
    """``objects`` objects over ``frames`` frames at ``fps`` (``skip_rate`` of them dropped), seeded.

    Boxes are 40..120 px; the canvas grows with ``objects`` so that crowding
    stays the same (1280x720 for 20). Each object lives for a random stretch
    of at least half the scene, moving 0.5..3 box widths per second.
    ``jitter``: the detected box's noise, per coordinate, as a fraction of its
    size. ``miss_rate``: chance a visible object is not detected. An object
    whose box is covered more than 40% by an object in front (lower ids are in
    front) gets a low score (0.15..0.45); the others 0.6..0.95. Per frame,
    Poisson(``false_positives``) boxes of random classes with scores 0.1..0.7.
    """
    rng = np.random.default_rng(seed)
    grow = math.sqrt(max(objects, 20) / 20)
    width, height = 1280 * grow, 720 * grow
    size = rng.uniform(40, 120, (objects, 2))
    start = rng.uniform((0, 0), (width, height), (objects, 2))
    angle = rng.uniform(0, 2 * math.pi, objects)
    speed = rng.uniform(0.5, 3.0, objects) * size[:, 0]
    velocity = np.stack((np.cos(angle), np.sin(angle)), axis=1) * speed[:, None]
    first = rng.integers(0, frames // 2 + 1, objects)
    last = np.minimum(first + rng.integers(frames // 2, frames + 1, objects), frames)
    kinds = rng.integers(0, classes, objects)
    times: list[float] = []
    detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    truth: Truth = []
    for index in range(frames):
        if index and rng.random() < skip_rate:
            continue
        t = index / fps
        centre = start + velocity * (index - first)[:, None] / fps
        boxes = np.concatenate((centre - size / 2, centre + size / 2), axis=1)
        clipped = np.clip(boxes, 0, [width, height, width, height])
        shown = (first <= index) & (index < last)
        shown &= (clipped[:, 2] - clipped[:, 0] > 4) & (clipped[:, 3] - clipped[:, 1] > 4)
        ids = np.flatnonzero(shown)
        truth.append([(int(i) + 1, clipped[i].copy()) for i in ids])
        hidden = _hidden(clipped[ids])
        detected = ids[rng.random(ids.size) >= miss_rate]
        low = hidden[np.searchsorted(ids, detected)]
        noise = rng.normal(0, jitter, (detected.size, 4)) * np.tile(size[detected], 2)
        scores = np.where(low, rng.uniform(0.15, 0.45, detected.size), rng.uniform(0.6, 0.95, detected.size))
        n_false = int(rng.poisson(false_positives))
        false_centre = rng.uniform((0, 0), (width, height), (n_false, 2))
        false_size = rng.uniform(30, 120, (n_false, 2))
        det_boxes = np.concatenate(
            (
                clipped[detected] + noise,
                np.concatenate((false_centre - false_size / 2, false_centre + false_size / 2), 1),
            )
        )
        det_scores = np.concatenate((scores, rng.uniform(0.1, 0.7, n_false)))
        det_classes = np.concatenate((kinds[detected], rng.integers(0, classes, n_false)))
        order = rng.permutation(det_scores.size)
        times.append(t)
        detections.append((det_boxes[order], det_scores[order], det_classes[order].astype(np.int64)))
    return BoxScene(times, detections, truth)


def _hidden(boxes: np.ndarray) -> np.ndarray:
    """For boxes in front-to-back order: whether more than 40% of each is covered by one box in front of it."""
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, bool)
    w = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
    h = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    in_front = np.tri(n, k=-1, dtype=bool)  # row i, column j < i: j is in front of i
    covered = np.where(in_front, inter / np.maximum(area[:, None], 1e-9), 0.0)
    return covered.max(axis=1) > 0.4  # type: ignore[no-any-return]


# Rectangles (x1, y1, x2, y2) of photographs around an object YOLOv3-tiny finds, with its COCO name.
CROPS: dict[str, tuple[str, tuple[int, int, int, int], str]] = {
    "cat": ("chelsea", (0, 0, 451, 300), "cat"),
    "person": ("astronaut", (0, 0, 512, 512), "person"),
    "motorcycle": ("stereo_motorcycle", (40, 40, 716, 470), "motorcycle"),
}
SIZE = (640, 480)
_BACKGROUND = "gravel"


def _background() -> np.ndarray:
    gray = cv2.resize(photo(_BACKGROUND), SIZE, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.stack((gray, gray, gray), axis=-1))


def _sprite(name: str, width: int) -> np.ndarray:
    """The crop ``name`` of :data:`CROPS`, resized to ``width`` px wide (aspect kept)."""
    source, (x1, y1, x2, y2), _ = CROPS[name]
    image = photo(source)[y1:y2, x1:x2]
    height = round(width * (y2 - y1) / (x2 - x1))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _paste(frame: np.ndarray, sprite: np.ndarray, x: float, y: float) -> np.ndarray | None:
    """Draw ``sprite`` with its top-left at ``(x, y)`` (rounded); its drawn box, or None when none of it shows."""
    h, w = sprite.shape[:2]
    left, top = round(x), round(y)
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + w, frame.shape[1]), min(top + h, frame.shape[0])
    if x2 <= x1 or y2 <= y1:
        return None
    frame[y1:y2, x1:x2] = sprite[y1 - top : y2 - top, x1 - left : x2 - left]
    return np.array([x1, y1, x2, y2], np.float64)


def _render(paths: dict[int, tuple[str, int, list[tuple[float, float] | None]]], frames: int, fps: float) -> ImageScene:
    """Draw each id's sprite (name, width, top-left per frame or None: not drawn); later ids drawn on top."""
    background = _background()
    sprites = {i: _sprite(name, width) for i, (name, width, _) in paths.items()}
    images: list[np.ndarray] = []
    truth: Truth = []
    for index in range(frames):
        frame = background.copy()
        objects: list[tuple[int, np.ndarray]] = []
        for i, (_, _, where) in sorted(paths.items()):
            spot = where[index]
            box = None if spot is None else _paste(frame, sprites[i], *spot)
            if box is not None:
                objects.append((i, box))
        images.append(frame)
        truth.append(objects)
    labels = {i: CROPS[name][2] for i, (name, _, _) in paths.items()}
    return ImageScene(images, [i / fps for i in range(frames)], truth, labels)


def _line(frames: int, start: tuple[float, float], end: tuple[float, float]) -> list[tuple[float, float] | None]:
    return [
        (start[0] + (end[0] - start[0]) * i / (frames - 1), start[1] + (end[1] - start[1]) * i / (frames - 1))
        for i in range(frames)
    ]


def crossing_scene(frames: int = 60, fps: float = 30.0) -> ImageScene:
    """A cat (id 1) walks right, the astronaut (id 2) walks left in front of it; they cross mid-scene.

    The astronaut hides the top half of the cat, its head, for about a third
    of the scene (YOLOv3-tiny then misses the cat for ~20 frames, 0.67 s).
    """
    cat = _line(frames, (0, 240), (400, 240))
    person = _line(frames, (400, 80), (0, 80))
    return _render({1: ("cat", 240, cat), 2: ("person", 240, person)}, frames, fps)


def exit_return_scene(frames: int = 60, fps: float = 15.0) -> ImageScene:
    """A motorcycle (id 1) rides out of the right edge, is wholly out for ``frames // 5`` frames, and rides back in.

    It comes back moving the other way, so a tracker coasting on its velocity
    does not find it again: expect its track to end and a new one to start.
    """
    away = frames // 5
    out = _line((frames - away) // 2, (300, 180), (640, 180))
    back = _line(frames - away - len(out), (640, 200), (300, 200))
    return _render({1: ("motorcycle", 240, out + [None] * away + back)}, frames, fps)


def gap_scene(frames: int = 45, fps: float = 15.0, gap: tuple[int, int] = (20, 25)) -> ImageScene:
    """A cat (id 1) walks left to right and is not drawn in frames ``gap[0] <= i < gap[1]`` (a detector gap)."""
    where = _line(frames, (40, 160), (380, 180))
    for i in range(*gap):
        where[i] = None
    return _render({1: ("cat", 240, where)}, frames, fps)
