"""Preprocessing inside the ONNX graph: frames go in as ``uint8``, the model's tensor is made by the graph.

On a GPU this moves a frame across PCIe once, as ``uint8`` (a quarter of the
float tensor), and does the resize, colour order, normalisation and layout
on the device. The graph this module prepends to a model takes two inputs:

- ``frames``: ``uint8 [F, H, W, 3]`` RGB, the batch's images (or regions),
  stacked; smaller ones padded at the bottom right (:func:`pack_frames`);
- ``items``: ``int64 [K, 9]``, one row per model input to make (:data:`COLUMNS`):
  the frame, the box of it to read (top, left, bottom, right), the size to
  resize that box to, and where the model's input window sits on the result.

For each row a ``Loop`` body cuts the box out of its frame, resizes it and
then either pads it into the input (``letterbox``: bilinear, like
``cv2.INTER_LINEAR``, on grey) or cuts the input from it (``crop``/``stretch``:
Pillow's antialiased bicubic, ONNX ``Resize`` with ``antialias=1``,
``cubic_coeff_a=-0.5`` and ``exclude_outside=1``, opset 18). The rows' results
are rounded to whole grey levels (the CPU path makes ``uint8`` images too),
then one colour/normalisation/layout tail makes the model's tensor.

Why a box cut then resized, not ``RoiAlign`` or ``Resize`` in
``tf_crop_and_resize`` mode: the CPU path (:func:`~streamer.vision.preprocess.crop_box`
then :func:`~streamer.vision.preprocess.resize_center_crop`) cuts whole pixels
and then resamples them as Pillow does, its kernel widened by the downscale.
``RoiAlign`` averages a few bilinear samples per output pixel (a box filter,
not bicubic), and ``tf_crop_and_resize`` maps coordinates corner to corner and
widens the antialias filter by the whole frame's scale, not the box's; both
drift from what the classifier was trained on. A slice and a plain ``Resize``
of it reproduce the CPU path's geometry exactly.

The host side is pure: :func:`letterbox_item` and :func:`crop_item` compute a
row with the same arithmetic as the CPU functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from streamer.errors import ConfigError
from streamer.models.convert import GraphBuilder
from streamer.vision.preprocess import Letterbox

__all__ = [
    "COLUMNS",
    "FRAMES",
    "GRAPH_OPSET",
    "ITEMS",
    "FramePacking",
    "GraphBatch",
    "GraphItem",
    "crop_item",
    "graph_batch",
    "letterbox_item",
    "pack_frames",
    "prepend",
    "preprocess_graph",
    "tensor_graph",
]

#: the opset of the preprocessing graph (``Resize`` with ``antialias`` and ``axes``); a model below it is
#: converted up to it before the graph is prepended.
GRAPH_OPSET = 18
#: the columns of one ``items`` row.
COLUMNS = ("frame", "top", "left", "bottom", "right", "resized_h", "resized_w", "offset_y", "offset_x")
FRAMES, ITEMS = "frames", "items"
_RESIZES = ("letterbox", "crop", "stretch")


def letterbox_item(frame: int, box: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """The row that letterboxes ``box`` (x1, y1, x2, y2 pixels) of frame ``frame`` into ``size`` (width,
    height), and how the result maps back; the arithmetic of :func:`~streamer.vision.preprocess.letterbox`."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    scale = min(size[0] / width, size[1] / height)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x, pad_y = (size[0] - new_w) // 2, (size[1] - new_h) // 2
    row = np.array([frame, y1, x1, y2, x2, new_h, new_w, pad_y, pad_x], np.int64)
    return row, Letterbox(scale, pad_x, pad_y)


def crop_item(
    frame: int, box: tuple[int, int, int, int], size: tuple[int, int], resize: str, shorter: int
) -> np.ndarray:
    """The row that brings ``box`` (x1, y1, x2, y2 pixels) of frame ``frame`` to ``size`` by ``resize``:
    ``crop`` (shorter side to ``shorter``, then the centre, as
    :func:`~streamer.vision.preprocess.resize_center_crop`) or ``stretch``."""
    x1, y1, x2, y2 = box
    width, height = x2 - x1, y2 - y1
    if resize == "stretch":
        return np.array([frame, y1, x1, y2, x2, size[1], size[0], 0, 0], np.int64)
    scale = shorter / min(height, width)
    new_w, new_h = max(round(width * scale), size[0]), max(round(height * scale), size[1])
    left, top = (new_w - size[0]) // 2, (new_h - size[1]) // 2
    return np.array([frame, y1, x1, y2, x2, new_h, new_w, top, left], np.int64)


@dataclass(frozen=True)
class GraphItem:
    """One model input still to make in the graph: ``row`` (:data:`COLUMNS`; its frame column is set when
    the batch is packed) of ``image``."""

    image: np.ndarray
    row: np.ndarray


@dataclass(frozen=True)
class GraphBatch:
    """The inputs of a model with preprocessing inside: ``items`` ``int64 [K, 9]``, ``frames`` ``uint8``."""

    items: np.ndarray
    frames: np.ndarray


def graph_batch(items: list[GraphItem]) -> GraphBatch:
    """``items`` (at least one) as one batch: their images packed once each (:func:`pack_frames`), rows
    pointing at them."""
    packing = pack_frames([item.image for item in items])
    rows = np.stack([item.row for item in items])
    rows[:, 0] = packing.index
    return GraphBatch(rows, packing.frames)


@dataclass(frozen=True)
class FramePacking:
    """Images stacked into one ``frames`` input: ``index[k]`` is image ``k``'s frame in it."""

    frames: np.ndarray
    index: tuple[int, ...]


def pack_frames(images: list[np.ndarray]) -> FramePacking:
    """Stack ``images`` (``[H, W, 3]`` ``uint8``) into ``[F, H, W, 3]``; the same array given twice (by
    identity) is stored once, smaller images are padded with zeros at the bottom and right (no row reads
    the padding: its box lies inside its own image)."""
    firsts: dict[int, int] = {}
    unique: list[np.ndarray] = []
    index = []
    for image in images:
        if id(image) not in firsts:
            firsts[id(image)] = len(unique)
            unique.append(image)
        index.append(firsts[id(image)])
    if len({image.shape for image in unique}) == 1:
        return FramePacking(np.stack(unique), tuple(index))
    height, width = max(i.shape[0] for i in unique), max(i.shape[1] for i in unique)
    frames = np.zeros((len(unique), height, width, 3), np.uint8)
    for k, image in enumerate(unique):
        frames[k, : image.shape[0], : image.shape[1]] = image
    return FramePacking(frames, tuple(index))


def _ints(b: GraphBuilder, values: list[int], hint: str) -> str:
    return b.const(np.array(values, np.int64), hint)


def _scalar(b: GraphBuilder, value: np.generic, name: str) -> str:
    """A 0-d initializer (:meth:`GraphBuilder.const` makes every array at least 1-d)."""
    b.initializers.append(numpy_helper.from_array(np.array(value), name))
    return name


def _tail(
    b: GraphBuilder,
    pixels: str,
    output: str,
    *,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    layout: str,
    bgr: bool,
    dtype: np.dtype[np.generic],
) -> None:
    """Colour order, normalisation and layout of float ``pixels`` ``[N, H, W, 3]`` (whole grey levels) into
    ``output``: the operations of :func:`~streamer.vision.preprocess.to_tensor`, in its order."""
    x = pixels
    if bgr:
        x = b.op("Gather", [x, _ints(b, [2, 1, 0], "pre/bgr")], "pre/bgr", axis=3)
    if layout == "nchw":
        x = b.op("Transpose", [x], "pre/nchw", perm=[0, 3, 1, 2])
    if np.dtype(dtype) == np.uint8:
        b.nodes.append(helper.make_node("Cast", [x], [output], to=TensorProto.UINT8))
        return
    shape = [1, 3, 1, 1] if layout == "nchw" else [1, 1, 1, 3]
    centred = b.op("Sub", [x, b.const(np.array(mean, np.float32).reshape(shape), "pre/mean")], "pre/centred")
    scale = b.const((np.float32(1.0) / np.array(std, np.float32)).reshape(shape), "pre/scale")
    b.nodes.append(helper.make_node("Mul", [centred, scale], [output]))


def _body(*, size: tuple[int, int], resize: str, pad_value: int) -> onnx.GraphProto:
    """The ``Loop`` body: row ``i`` of ``items`` made into one ``[H, W, 3]`` float input of ``size``."""
    body = GraphBuilder()
    iteration, cond_in, cond_out = "pre/i", "pre/cond_in", "pre/cond_out"
    row = body.op("Gather", [ITEMS, iteration], "pre/row", axis=0)

    def columns(*names: str) -> str:
        return body.op("Gather", [row, _ints(body, [COLUMNS.index(n) for n in names], "pre/col")], "pre/cols")

    frame_index = body.op("Gather", [row, _scalar(body, np.int64(0), "pre/zero")], "pre/frame_index")
    frame = body.op("Gather", [FRAMES, frame_index], "pre/frame", axis=0)
    axes = _ints(body, [0, 1], "pre/axes")
    box = body.op("Slice", [frame, columns("top", "left"), columns("bottom", "right"), axes], "pre/box")
    pixels = body.op(  # [1, h, w, 3]: ONNX Runtime's cubic Resize takes 2-D or 4-D (N and C not scaled)
        "Unsqueeze", [body.op("Cast", [box], "pre/float", to=TensorProto.FLOAT), _ints(body, [0], "pre/n")], "pre/nhwc"
    )
    window = _ints(body, [size[1], size[0]], "pre/window")
    offset = columns("offset_y", "offset_x")
    if resize == "letterbox":
        resized = body.op(
            "Resize",
            [pixels, "", "", columns("resized_h", "resized_w")],
            "pre/resized",
            axes=[1, 2],
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )
        after = body.op(
            "Sub", [body.op("Sub", [window, columns("resized_h", "resized_w")], "pre/room"), offset], "pre/after"
        )
        zero = _ints(body, [0], "pre/zero1")
        pads = body.op("Concat", [zero, offset, zero, zero, after, zero], "pre/pads", axis=0)
        fill = _scalar(body, np.float32(pad_value), "pre/pad_value")
        placed = body.op("Pad", [resized, pads, fill], "pre/placed", mode="constant")
    else:
        resized = body.op(
            "Resize",
            [pixels, "", "", columns("resized_h", "resized_w")],
            "pre/resized",
            axes=[1, 2],
            mode="cubic",
            cubic_coeff_a=-0.5,
            antialias=1,
            exclude_outside=1,
            coordinate_transformation_mode="half_pixel",
        )
        end = body.op("Add", [offset, window], "pre/end")
        placed = body.op("Slice", [resized, offset, end, _ints(body, [1, 2], "pre/axes4")], "pre/cut")
    low, high = _scalar(body, np.float32(0), "pre/lo"), _scalar(body, np.float32(255), "pre/hi")
    rounded = body.op("Clip", [body.op("Round", [placed], "pre/round"), low, high], "pre/rounded")
    levels = body.op("Squeeze", [rounded, _ints(body, [0], "pre/n0")], "pre/levels")
    body.nodes.append(helper.make_node("Identity", [cond_in], [cond_out]))
    scalar_int = helper.make_tensor_value_info(iteration, TensorProto.INT64, [])
    return helper.make_graph(
        body.nodes,
        "preprocess_item",
        [scalar_int, helper.make_tensor_value_info(cond_in, TensorProto.BOOL, [])],
        [
            helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
            helper.make_tensor_value_info(levels, TensorProto.FLOAT, [size[1], size[0], 3]),
        ],
        body.initializers,
    )


def _model(b: GraphBuilder, inputs: list[onnx.ValueInfoProto], output: onnx.ValueInfoProto) -> onnx.ModelProto:
    graph = helper.make_graph(b.nodes, "streamer_preprocess", inputs, [output], b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", GRAPH_OPSET)], producer_name="streamer")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _output_info(name: str, size: tuple[int, int], layout: str, dtype: np.dtype[np.generic]) -> onnx.ValueInfoProto:
    kind = TensorProto.UINT8 if np.dtype(dtype) == np.uint8 else TensorProto.FLOAT
    shape: list[int | str] = ["n", 3, size[1], size[0]] if layout == "nchw" else ["n", size[1], size[0], 3]
    return helper.make_tensor_value_info(name, kind, shape)


def preprocess_graph(
    *,
    size: tuple[int, int],
    resize: str,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    layout: str,
    bgr: bool,
    dtype: np.dtype[np.generic],
    pad_value: int = 127,
    output: str = "pixels",
) -> onnx.ModelProto:
    """The whole preprocessing as a graph: ``frames`` and ``items`` (see the module) to the model's input
    ``output``, ``[K, ...]`` at ``size`` (width, height) in ``layout``; ``resize`` is ``letterbox`` (on grey
    ``pad_value``), ``crop`` or ``stretch``."""
    if resize not in _RESIZES:
        raise ConfigError(f"resize = {resize!r} cannot run in the graph; use one of: {', '.join(_RESIZES)}")
    b = GraphBuilder()
    count = b.op("Gather", [b.op("Shape", [ITEMS], "pre/items_shape"), _ints(b, [0], "pre/first")], "pre/count")
    trips = b.op("Squeeze", [count], "pre/trips")
    body = _body(size=size, resize=resize, pad_value=pad_value)
    loop = b.op("Loop", [trips, ""], "pre/loop", body=body)
    _tail(b, loop, output, mean=mean, std=std, layout=layout, bgr=bgr, dtype=dtype)
    inputs = [
        helper.make_tensor_value_info(ITEMS, TensorProto.INT64, ["k", len(COLUMNS)]),
        helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, ["f", "h", "w", 3]),
    ]
    return _model(b, inputs, _output_info(output, size, layout, dtype))


def tensor_graph(
    *,
    size: tuple[int, int],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    layout: str,
    bgr: bool,
    dtype: np.dtype[np.generic],
    output: str = "pixels",
) -> onnx.ModelProto:
    """Only the tail: ``uint8 [N, H, W, 3]`` images already at ``size`` to the model's input ``output``
    (what :func:`~streamer.vision.preprocess.to_tensor` does on the CPU)."""
    b = GraphBuilder()
    pixels = b.op("Cast", ["images"], "pre/float", to=TensorProto.FLOAT)
    _tail(b, pixels, output, mean=mean, std=std, layout=layout, bgr=bgr, dtype=dtype)
    inputs = [helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", size[1], size[0], 3])]
    return _model(b, inputs, _output_info(output, size, layout, dtype))


def prepend(preprocess: onnx.ModelProto, model: onnx.ModelProto) -> onnx.ModelProto:
    """One model: ``preprocess`` (its output named as ``model``'s only input) feeding ``model``.

    ``model`` below :data:`GRAPH_OPSET` is converted up to it (``onnx.version_converter``); the
    preprocessing's names all start with ``pre/``, so they cannot collide with the model's.
    """
    (image,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    (output,) = preprocess.graph.output
    if output.name != image.name:
        raise ValueError(f"the preprocessing's output is {output.name!r}, the model's input {image.name!r}")
    version = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=GRAPH_OPSET)
    if version < GRAPH_OPSET:
        model = version_converter.convert_version(model, GRAPH_OPSET)
    graph = helper.make_graph(
        [*preprocess.graph.node, *model.graph.node],
        model.graph.name or "streamer",
        list(preprocess.graph.input),
        list(model.graph.output),
        [*preprocess.graph.initializer, *model.graph.initializer],
        value_info=list(model.graph.value_info),
    )
    merged = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="streamer")
    merged.ir_version = max(model.ir_version, preprocess.ir_version)
    return merged
