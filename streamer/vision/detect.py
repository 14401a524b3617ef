"""Object-detector outputs to boxes in source-image pixels: pure numpy, no I/O.

Output layouts by ``family`` (``B`` batch, ``N`` candidate boxes, ``C`` classes;
box coordinates in model-input pixels, i.e. in the letterboxed image):

``yolov5``
    one output ``[B, N, 5 + C]``: ``cx, cy, w, h, objectness, C class scores``,
    the scores already probabilities (sigmoided). YOLOv5/YOLOv7 exports and
    :func:`streamer.models.darknet.convert_darknet`. Box score =
    ``objectness * best class score``; rows whose objectness alone is below
    the threshold are dropped before the class argmax (exact, as class scores
    are at most 1).
``yolov8``
    one output ``[B, 4 + C, N]``, channels first: ``cx, cy, w, h, C class
    scores``, no objectness. YOLOv8/YOLO11 exports. ``N`` (8400 at 640x640) is
    normally much larger than ``4 + C``, which tells it apart from a
    ``yolov5`` output.
``yolov10``
    one output ``[B, N, 6]``: ``x1, y1, x2, y2, score, class id``. End to end:
    the model did its own NMS, so decoding only thresholds, masks, clips and
    keeps the best ``max_detections``.
``ssd``
    two outputs, boxes ``[B, N, 4]`` as ``x1, y1, x2, y2`` in input pixels, and
    scores ``[B, N, C]``; the one whose last dimension is 4 is taken as the
    boxes (both 4: the first). A background class, if the model has one, is an
    ordinary class: mask it with ``class_mask``.

Any family's boxes may instead be fractions of the input size (0..1) with
``normalized_boxes=True`` and ``input_size`` given; most SSD exports need it.
"""

from __future__ import annotations

import numpy as np

from streamer.errors import ConfigError, ModelError
from streamer.results import Detections
from streamer.vision.nms import batched_nms_columns
from streamer.vision.preprocess import Letterbox

__all__ = ["FAMILIES", "Detections", "check_outputs", "decode"]

FAMILIES = ("yolov5", "yolov8", "yolov10", "ssd")

_LAYOUTS = {
    "yolov5": "one output [batch, boxes, 5 + classes] (cx, cy, w, h, objectness, class scores)",
    "yolov8": "one output [batch, 4 + classes, boxes] (channels first: cx, cy, w, h, class scores)",
    "yolov10": "one output [batch, boxes, 6] (x1, y1, x2, y2, score, class id)",
    "ssd": "two outputs: boxes [batch, boxes, 4] (x1, y1, x2, y2) and scores [batch, boxes, classes]",
}

Shape = tuple[int | str | None, ...]



def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ConfigError(f"detector family = {family!r}; expected one of {', '.join(FAMILIES)}")


def _static(dim: int | str | None) -> int | None:
    """A dimension's size, or ``None`` when dynamic (a name, ``None`` or not positive)."""
    if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) and dim > 0:
        return int(dim)
    return None


def _show(shapes: list[Shape]) -> str:
    shown = ", ".join("[" + ", ".join("?" if d is None else str(d) for d in shape) + "]" for shape in shapes)
    return f"{len(shapes)} output{'s' if len(shapes) != 1 else ''} {shown}".rstrip()


def _contradiction(family: str, shapes: list[Shape], hint: str = "") -> ModelError:
    return ModelError(
        f"detector family {family!r} expects {_LAYOUTS[family]}, but the model has {_show(shapes)}"
        + (f"; {hint}" if hint else "")
    )


def _check_classes(classes: int | None, num_classes: int | None, hint: str = "") -> None:
    if classes is not None and num_classes is not None and classes != num_classes:
        raise ModelError(
            f"detector outputs {classes} classes but the class-names file has {num_classes}; they must match"
            + (f" ({hint})" if hint else "")
        )


def check_outputs(family: str, shapes: list[Shape], num_classes: int | None) -> None:
    """Raise :class:`ModelError` when the output ``shapes`` contradict ``family``'s layout.

    Dynamic dimensions (names, ``None``) fit anything. ``num_classes`` (the
    number of class names, ``None``: unknown) must equal the class count the
    outputs imply (``yolov10`` outputs do not imply one). An unknown family is
    a :class:`ConfigError`.
    """
    _check_family(family)
    if family == "ssd":
        if len(shapes) != 2 or any(len(shape) != 3 for shape in shapes):
            raise _contradiction(family, shapes)
        first, second = ([_static(d) for d in shape] for shape in shapes)
        boxes, scores = (second, first) if second[2] == 4 and first[2] != 4 else (first, second)
        if boxes[2] not in (4, None):
            raise _contradiction(family, shapes, "neither output has a last dimension of 4 (the box corners)")
        for axis, what in ((0, "batch"), (1, "box count")):
            if None not in (boxes[axis], scores[axis]) and boxes[axis] != scores[axis]:
                raise _contradiction(family, shapes, f"the two outputs disagree on the {what}")
        _check_classes(scores[2], num_classes)
        return
    if len(shapes) != 1 or len(shapes[0]) != 3:
        hint = "two outputs look like family 'ssd'" if len(shapes) == 2 else ""
        raise _contradiction(family, shapes, hint)
    _, rows, cols = (_static(d) for d in shapes[0])
    # Box counts normally dwarf 5 + classes: a wider-than-long output looks transposed,
    # unless the class names say its width is right.
    if family == "yolov5":
        fits_names = num_classes is not None and cols == 5 + num_classes
        if rows is not None and cols is not None and cols > rows and not fits_names:
            raise _contradiction(
                family,
                shapes,
                "it looks channels first [batch, 4 + classes, boxes], a YOLOv8/YOLO11 export: declare family 'yolov8'",
            )
        if cols is not None and cols < 6:
            raise _contradiction(family, shapes, "need at least one class score after objectness")
        hint = "a [batch, boxes, 6] output may be an end-to-end export: family 'yolov10'" if cols == 6 else ""
        _check_classes(None if cols is None else cols - 5, num_classes, hint)
    elif family == "yolov8":
        fits_names = num_classes is not None and rows == 4 + num_classes
        if rows is not None and cols is not None and rows > cols and not fits_names:
            raise _contradiction(
                family,
                shapes,
                "it looks like rows of [batch, boxes, 5 + classes], a YOLOv5-style output: declare family 'yolov5'",
            )
        if rows is not None and rows < 5:
            raise _contradiction(family, shapes, "need at least one class score after the 4 box values")
        _check_classes(None if rows is None else rows - 4, num_classes)
    elif cols is not None and cols != 6:
        hint = ""
        if rows is not None and cols > rows:
            hint = "it looks channels first [batch, 4 + classes, boxes]: declare family 'yolov8'"
        elif cols > 6:
            hint = "rows of more than 6 values look like [batch, boxes, 5 + classes]: declare family 'yolov5'"
        raise _contradiction(family, shapes, hint)


def _float32(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32, copy=False)


def _rows_to_box(rows: np.ndarray) -> np.ndarray:
    """``[k, >= 4]`` rows to their first four values as a new contiguous float32 ``[4, k]`` (edited in place)."""
    return np.array(rows[:, :4].T, dtype=np.float32, order="C", copy=True)


def _candidates(
    outputs: list[np.ndarray], family: str, index: int, conf_threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None, bool]:
    """The rows of image ``index`` scoring ``>= conf_threshold``.

    Returns their boxes as a contiguous float32 ``[4, k]`` (model-input
    units; ``cx, cy, w, h`` if the last value is True, else ``x1, y1, x2,
    y2``), scores (float32), best class ids (int64) and the class count the
    output implies (``None``: unknown).
    """
    if family == "yolov5":
        out = outputs[0][index]  # [N, 5 + C]
        # objectness >= objectness * class score, as class scores are probabilities:
        # thresholding objectness first spares the argmax on most rows.
        rows = np.flatnonzero(out[:, 4] >= conf_threshold)
        picked = out if rows.size == out.shape[0] else np.take(out, rows, axis=0)
        class_ids = picked[:, 5:].argmax(axis=1)
        flat = picked.reshape(-1)
        best = np.take(flat, np.arange(picked.shape[0]) * picked.shape[1] + 5 + class_ids)
        scores = np.multiply(picked[:, 4], best, dtype=np.float32)
        keep = np.flatnonzero(scores >= conf_threshold)
        if keep.size != scores.size:
            picked, scores, class_ids = np.take(picked, keep, axis=0), scores[keep], class_ids[keep]
        return _rows_to_box(picked), scores, class_ids, out.shape[1] - 5, True
    if family == "yolov8":
        out = outputs[0][index]  # [4 + C, N]
        best = out[4:].max(axis=0)
        rows = np.flatnonzero(best >= conf_threshold)
        class_ids = np.take(out[4:], rows, axis=1).argmax(axis=0)
        box = _float32(np.take(out[:4], rows, axis=1))
        return box, _float32(best[rows]), class_ids, out.shape[0] - 4, True
    if family == "yolov10":
        out = outputs[0][index]  # [N, 6]
        picked = out[np.flatnonzero(out[:, 4] >= conf_threshold)]
        raw_ids = picked[:, 5]
        valid = np.isfinite(raw_ids) & (raw_ids > -0.5)
        if not valid.all():
            raise ModelError(f"yolov10 output has class ids {raw_ids[~valid][:5].tolist()}; expected ids >= 0")
        return _rows_to_box(picked), _float32(picked[:, 4]), np.rint(raw_ids).astype(np.int64), None, False
    first, second = outputs[0][index], outputs[1][index]
    boxes, scores_out = (second, first) if second.shape[-1] == 4 and first.shape[-1] != 4 else (first, second)
    class_ids = scores_out.argmax(axis=1)  # [N, C]: one argmax pass beats max + argmax
    best = np.take(scores_out.reshape(-1), np.arange(scores_out.shape[0]) * scores_out.shape[1] + class_ids)
    rows = np.flatnonzero(best >= conf_threshold)
    box = _rows_to_box(np.take(boxes, rows, axis=0))
    return box, _float32(best[rows]), class_ids[rows], scores_out.shape[1], False


def decode(
    outputs: list[np.ndarray],
    family: str,
    index: int,
    *,
    letterbox: Letterbox,
    source_size: tuple[int, int],
    conf_threshold: float,
    iou_threshold: float,
    max_detections: int,
    class_mask: np.ndarray | None = None,
    min_box_size: float = 0.0,
    normalized_boxes: bool = False,
    input_size: tuple[int, int] | None = None,
) -> Detections:
    """The detections of image ``index`` of a batch of raw detector ``outputs``.

    In order: each box takes its best class (``yolov5``: score = objectness *
    class score; ``yolov10``: the given score and class; ties: the lower class
    id); boxes scoring ``>= conf_threshold`` stay; ``class_mask`` (bool over
    classes, ``False`` drops a box whose best class it is; ``None``: all)
    applies; boxes with a non-finite value go; boxes map from model-input pixels
    (fractions of ``input_size`` = (width, height) if ``normalized_boxes``) to
    source pixels, ``(v - pad) / scale`` as in ``letterbox``, and are clipped to
    ``source_size`` = (width, height); when ``min_box_size`` > 0, boxes
    narrower or lower than it in source pixels go (with ``min_box_size`` 0 even
    a zero-area box, e.g. one lying wholly outside the image, stays); class-wise
    NMS drops boxes with IoU > ``iou_threshold`` against a better box of the
    same class (not for ``yolov10``, which did its own); at most
    ``max_detections`` remain (< 1: all). Best score first, ties in row order.
    """
    _check_family(family)  # the layout itself is checked once, at load, by check_outputs
    batch = outputs[0].shape[0]
    if any(o.shape[0] != batch for o in outputs) or not -batch <= index < batch:
        raise ModelError(f"detector outputs have batch {[o.shape[0] for o in outputs]}; no image at index {index}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ConfigError(f"iou_threshold = {iou_threshold!r}; expected a number in 0..1")
    if not min_box_size >= 0.0:
        raise ConfigError(f"min_box_size = {min_box_size!r}; expected a number >= 0")
    if normalized_boxes and input_size is None:
        raise ConfigError("normalized_boxes needs input_size (width, height) to turn fractions into pixels")
    if not letterbox.scale > 0:
        raise ConfigError(f"letterbox scale = {letterbox.scale!r}; expected > 0")

    box, scores, class_ids, classes, centered = _candidates(outputs, family, index, conf_threshold)
    if class_mask is not None:
        mask = np.asarray(class_mask, dtype=bool)
        if mask.ndim != 1 or (classes is not None and mask.shape[0] != classes):
            raise ConfigError(f"class_mask has shape {list(mask.shape)}; the detector has {classes} classes")
        if scores.size and int(class_ids.max()) >= mask.shape[0]:
            raise ModelError(
                f"detector outputs class id {int(class_ids.max())} but class_mask covers {mask.shape[0]} classes"
            )
        keep = np.flatnonzero(np.take(mask, class_ids))
        if keep.size != scores.size:
            box, scores, class_ids = np.take(box, keep, axis=1), scores[keep], class_ids[keep]
    finite = np.isfinite(box.sum(axis=0))  # NaN or inf anywhere (or a sum beyond float32)
    if not finite.all():
        keep = np.flatnonzero(finite)
        box, scores, class_ids = np.take(box, keep, axis=1), scores[keep], class_ids[keep]
    if scores.size == 0:
        return Detections.empty()

    if centered:  # cx, cy, w, h -> x1, y1, x2, y2
        half = box[2:] * np.float32(0.5)
        np.add(box[:2], half, out=box[2:])
        box[:2] -= half
    if normalized_boxes and input_size is not None:
        box *= np.asarray([input_size[0], input_size[1]] * 2, np.float32)[:, None]
    box -= np.asarray([letterbox.pad_x, letterbox.pad_y] * 2, np.float32)[:, None]
    box /= np.float32(letterbox.scale)
    np.maximum(box, np.float32(0.0), out=box)
    np.minimum(box, np.asarray([source_size[0], source_size[1]] * 2, np.float32)[:, None], out=box)
    if min_box_size > 0:
        big = np.flatnonzero((box[2] - box[0] >= min_box_size) & (box[3] - box[1] >= min_box_size))
        if big.size != scores.size:
            box, scores, class_ids = np.take(box, big, axis=1), scores[big], class_ids[big]

    if family == "yolov10":
        order = np.argsort(-scores, kind="stable")
        if max_detections > 0:
            order = order[:max_detections]
    else:
        order = batched_nms_columns(box[0], box[1], box[2], box[3], scores, class_ids, iou_threshold, max_detections)
    return Detections(
        np.ascontiguousarray(np.take(box, order, axis=1).T),
        np.take(scores, order),
        np.take(class_ids, order).astype(np.int64),
    )
