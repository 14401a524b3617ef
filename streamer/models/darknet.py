"""Convert a Darknet ``.cfg`` + ``.weights`` pair (e.g. YOLOv3-tiny) into ONNX.

Pure numpy and ``onnx``: no torch, no network. Supported sections are
``[net]``, ``[convolutional]`` (with or without ``batch_normalize``; activation
``leaky`` or ``linear``), ``[maxpool]``, ``[route]``, ``[upsample]`` and
``[yolo]``; anything else raises :class:`~streamer.errors.ModelError`.

The converted graph takes ``images`` ``[batch, 3, H, W]`` (float32 RGB in
``[0, 1]``, letterboxed to the ``[net]`` size) and returns ``detections``
``[batch, N, 5 + classes]``: one row per anchor and grid cell holding
``(cx, cy, w, h, objectness, class scores...)`` with the box in input pixels and
the scores already passed through a sigmoid, the layout YOLOv5's ONNX export
uses. Rows come head by head in cfg order; inside a head they are ordered
anchor-major, then grid row, then grid column, i.e. row
``a * gh * gw + y * gw + x`` for anchor ``a`` (position in ``mask``) at cell
``(x, y)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from streamer.errors import ModelError
from streamer.models.convert import GraphBuilder, fold_batchnorm

__all__ = ["DARKNET_BN_EPS", "convert_darknet", "parse_cfg", "read_weights"]

DARKNET_BN_EPS = 0.000001
"""Darknet's ``normalize_cpu`` divides by ``sqrt(variance) + .000001f``."""

_LEAKY_SLOPE = 0.1
_HEADER_BYTES = 12


def parse_cfg(text: str) -> list[dict[str, str]]:
    """Split Darknet cfg text into sections, in order.

    Each section is a dict with ``"type"`` (the bracketed name) plus its
    ``key=value`` options, keys and values stripped of surrounding spaces.
    Lines starting with ``#`` or ``;`` and blank lines are ignored.
    """
    sections: list[dict[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]") or not line[1:-1].strip():
                raise ModelError(f"cfg line {number}: malformed section header {line!r}")
            sections.append({"type": line[1:-1].strip()})
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ModelError(f"cfg line {number}: expected 'key=value' or '[section]', got {line!r}")
        if not sections:
            raise ModelError(f"cfg line {number}: option {key!r} appears before any [section]")
        if key in sections[-1]:
            raise ModelError(f"cfg line {number}: option {key!r} repeated in [{sections[-1]['type']}]")
        sections[-1][key] = value
    return sections


def read_weights(path: Path) -> tuple[tuple[int, int, int], np.ndarray]:
    """Read a Darknet ``.weights`` file: ``((major, minor, revision), float32 array)``.

    The header's ``seen`` counter is an int64 when ``major * 10 + minor >= 2``
    and ``major < 1000``, else an int32; it is skipped.
    """
    data = Path(path).read_bytes()
    if len(data) < _HEADER_BYTES:
        raise ModelError(f"{path}: {len(data)} bytes is too short for a Darknet weights header")
    major, minor, revision = (int(v) for v in np.frombuffer(data, "<i4", count=3))
    seen_bytes = 8 if (major * 10 + minor) >= 2 and major < 1000 and minor < 1000 else 4
    start = _HEADER_BYTES + seen_bytes
    body = len(data) - start
    if body < 0 or body % 4:
        raise ModelError(
            f"{path}: {body} bytes after the header (version {major}.{minor}.{revision})"
            " is not a whole number of float32 values"
        )
    floats = np.frombuffer(data, "<f4", offset=start).astype(np.float32)
    return (major, minor, revision), floats


@dataclass
class _Layer:
    """One planned Darknet layer: its options, output shape and weight count."""

    kind: str
    section: int
    shape: tuple[int, int, int]
    n_floats: int = 0
    ints: dict[str, int] = field(default_factory=dict)
    sources: list[int] = field(default_factory=list)
    anchors: list[tuple[float, float]] = field(default_factory=list)
    scale: float = 1.0  # [upsample] scale, or [yolo] scale_x_y


def _where(section: int, kind: str) -> str:
    return f"cfg section {section} [{kind}] (layer {section - 1})"


def _int(opts: dict[str, str], key: str, default: int, where: str) -> int:
    raw = opts.get(key)
    try:
        return default if raw is None else int(raw)
    except ValueError:
        raise ModelError(f"{where}: {key}={raw!r} is not an integer") from None


def _float(opts: dict[str, str], key: str, default: float, where: str) -> float:
    raw = opts.get(key)
    try:
        return default if raw is None else float(raw)
    except ValueError:
        raise ModelError(f"{where}: {key}={raw!r} is not a number") from None


def _numbers(opts: dict[str, str], key: str, where: str) -> list[float]:
    """A comma-separated list option; callers that need integers check with ``_ints``."""
    raw = opts.get(key, "")
    try:
        return [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ModelError(f"{where}: {key}={raw!r} is not a list of numbers") from None


def _ints(opts: dict[str, str], key: str, where: str) -> list[int]:
    values = _numbers(opts, key, where)
    if any(v != int(v) for v in values):
        raise ModelError(f"{where}: {key}={opts.get(key)!r} is not a list of integers")
    return [int(v) for v in values]


def _reject(opts: dict[str, str], where: str, keys: dict[str, str]) -> None:
    """Raise for options that change inference and are not implemented.

    ``keys`` maps each option to the one value that is harmless (``""``: none).
    """
    for key, neutral in keys.items():
        if key in opts and opts[key] != neutral:
            raise ModelError(f"{where}: option {key}={opts[key]} is not supported")


def _plan(sections: list[dict[str, str]]) -> tuple[tuple[int, int, int], list[_Layer]]:
    """Check the cfg and work out every layer's output shape and weight count."""
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ModelError("cfg must start with a [net] section")
    net = sections[0]
    where = _where(0, net["type"])
    input_shape = (
        _int(net, "channels", 3, where),
        _int(net, "height", 0, where),
        _int(net, "width", 0, where),
    )
    if input_shape[0] != 3 or min(input_shape[1:]) <= 0:
        raise ModelError(f"{where}: need channels=3 and positive height/width, got {net}")
    layers: list[_Layer] = []
    for section, opts in enumerate(sections[1:], start=1):
        kind = opts["type"]
        where = _where(section, kind)
        c, h, w = layers[-1].shape if layers else input_shape
        if kind == "convolutional":
            _reject(
                opts,
                where,
                {"dilation": "1", "binary": "0", "xnor": "0", "stride_x": "", "stride_y": ""},
            )
            filters = _int(opts, "filters", 1, where)
            ksize = _int(opts, "size", 1, where)
            stride = _int(opts, "stride", 1, where)
            groups = _int(opts, "groups", 1, where)
            padding = ksize // 2 if _int(opts, "pad", 0, where) else _int(opts, "padding", 0, where)
            bn = _int(opts, "batch_normalize", 0, where)
            activation = opts.get("activation", "logistic")
            if activation not in ("leaky", "linear"):
                raise ModelError(f"{where}: activation={activation!r} is not supported")
            if min(filters, ksize, stride, groups) < 1 or c % groups or filters % groups:
                raise ModelError(f"{where}: invalid filters/size/stride/groups for {c} channels")
            out_h = (h + 2 * padding - ksize) // stride + 1
            out_w = (w + 2 * padding - ksize) // stride + 1
            n_floats = filters * (4 if bn else 1) + filters * (c // groups) * ksize * ksize
            layer = _Layer(kind, section, (filters, out_h, out_w), n_floats)
            layer.ints = {
                "in_c": c,
                "size": ksize,
                "stride": stride,
                "groups": groups,
                "padding": padding,
                "bn": bn,
                "leaky": int(activation == "leaky"),
            }
        elif kind == "maxpool":
            _reject(
                opts,
                where,
                {"stride_x": "", "stride_y": "", "maxpool_depth": "0", "antialiasing": "0"},
            )
            stride = _int(opts, "stride", 1, where)
            ksize = _int(opts, "size", stride, where)
            padding = _int(opts, "padding", ksize - 1, where)
            if ksize < 1 or stride < 1 or padding < 0:
                raise ModelError(f"{where}: invalid size/stride/padding")
            out_h = (h + padding - ksize) // stride + 1
            out_w = (w + padding - ksize) // stride + 1
            layer = _Layer(kind, section, (c, out_h, out_w))
            layer.ints = {"size": ksize, "stride": stride, "padding": padding}
        elif kind == "upsample":
            stride = _int(opts, "stride", 2, where)
            if stride < 1:
                raise ModelError(f"{where}: stride={stride} (downsampling) is not supported")
            layer = _Layer(kind, section, (c, h * stride, w * stride))
            layer.ints = {"stride": stride}
            layer.scale = _float(opts, "scale", 1.0, where)
        elif kind == "route":
            _reject(opts, where, {"groups": "1", "group_id": "0"})
            sources = []
            for index in _ints(opts, "layers", where):
                source = index + len(layers) if index < 0 else index
                if not 0 <= source < len(layers):
                    raise ModelError(
                        f"{where}: route index {index} is out of range (layers 0..{len(layers) - 1} come before it)"
                    )
                if layers[source].kind == "yolo":
                    raise ModelError(f"{where}: routing from a [yolo] layer is not supported")
                sources.append(source)
            if not sources:
                raise ModelError(f"{where}: needs layers=...")
            spatial = {layers[s].shape[1:] for s in sources}
            if len(spatial) != 1:
                raise ModelError(f"{where}: routed layers have different sizes {sorted(spatial)}")
            out_c = sum(layers[s].shape[0] for s in sources)
            (out_h, out_w) = spatial.pop()
            layer = _Layer(kind, section, (out_c, out_h, out_w), sources=sources)
        elif kind == "yolo":
            _reject(opts, where, {"new_coords": "0"})
            classes = _int(opts, "classes", 20, where)
            num = _int(opts, "num", 1, where)
            mask = _ints(opts, "mask", where) if "mask" in opts else list(range(num))
            values = _numbers(opts, "anchors", where)
            if len(values) != 2 * num or any(not 0 <= m < num for m in mask) or not mask:
                raise ModelError(f"{where}: anchors/mask do not match num={num}")
            if c != len(mask) * (5 + classes):
                raise ModelError(f"{where}: input has {c} channels, expected {len(mask)} * (5 + {classes})")
            layer = _Layer(kind, section, (c, h, w))
            layer.ints = {"classes": classes}
            layer.anchors = [(values[2 * m], values[2 * m + 1]) for m in mask]
            layer.scale = _float(opts, "scale_x_y", 1.0, where)
        else:
            raise ModelError(f"{where}: section type [{kind}] is not supported")
        layers.append(layer)
    return input_shape, layers


def _yolo_head(g: GraphBuilder, x: str, layer: _Layer, input_hw: tuple[int, int]) -> tuple[str, int]:
    """Decode one YOLO head to ``[B, A*gh*gw, 5+C]`` rows in input pixels."""
    _, gh, gw = layer.shape
    n_anchor = len(layer.anchors)
    n_out = 5 + layer.ints["classes"]
    t = g.op("Reshape", [x, g.const(np.array([0, n_anchor, n_out, gh, gw], np.int64))])
    t = g.op("Transpose", [t], perm=[0, 1, 3, 4, 2])  # [B, A, gh, gw, 5+C]

    def part(start: int, end: int) -> str:
        return g.op(
            "Slice",
            [
                t,
                g.const(np.array([start], np.int64)),
                g.const(np.array([end], np.int64)),
                g.const(np.array([4], np.int64)),
            ],
        )

    grid_y, grid_x = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    grid = np.stack([grid_x, grid_y], axis=-1).reshape(1, 1, gh, gw, 2).astype(np.float32)
    stride = np.array([input_hw[1] / gw, input_hw[0] / gh], np.float32)
    scale = layer.scale
    xy = g.op("Sigmoid", [part(0, 2)])
    if scale != 1.0:
        xy = g.op("Mul", [xy, g.const(np.array(scale, np.float32))])
        grid = grid - np.float32((scale - 1.0) / 2.0)
    xy = g.op("Mul", [g.op("Add", [xy, g.const(grid, "grid")]), g.const(stride, "stride")])
    anchors = np.array(layer.anchors, np.float32).reshape(1, n_anchor, 1, 1, 2)
    wh = g.op("Mul", [g.op("Exp", [part(2, 4)]), g.const(anchors, "anchors")])
    scores = g.op("Sigmoid", [part(4, n_out)])
    rows = g.op("Concat", [xy, wh, scores], axis=4)
    rows = g.op("Reshape", [rows, g.const(np.array([0, -1, n_out], np.int64))], "yolo")
    return rows, n_anchor * gh * gw


def convert_darknet(cfg_path: Path, weights_path: Path, *, stop_after: int | None = None) -> onnx.ModelProto:
    """Build the ONNX graph of a Darknet network from its cfg and weights.

    The weights must be consumed exactly. With ``stop_after`` set, the graph
    returns the ``[batch, C, H, W]`` output of that layer (0-based Darknet layer
    index, ``[net]`` excluded; a ``[yolo]`` layer gives its decoded rows) as
    ``detections`` instead, for checking the conversion layer by layer; all
    weights are still read and checked.
    """
    sections = parse_cfg(Path(cfg_path).read_text())
    input_shape, layers = _plan(sections)
    if stop_after is not None and not 0 <= stop_after < len(layers):
        raise ModelError(f"stop_after={stop_after} is outside layers 0..{len(layers) - 1}")
    _, floats = read_weights(weights_path)
    needed = sum(layer.n_floats for layer in layers)
    if needed != floats.size:
        raise ModelError(
            f"{weights_path}: holds {floats.size} float32 weights after the header but"
            f" {cfg_path} needs exactly {needed}"
        )
    last = len(layers) - 1 if stop_after is None else stop_after
    g = GraphBuilder()
    outputs: list[str] = []
    heads: list[str] = []
    n_rows = 0
    offset = 0
    classes: set[int] = set()
    for index, layer in enumerate(layers[: last + 1]):
        x = outputs[-1] if outputs else "images"
        p = layer.ints
        if layer.kind == "convolutional":
            n = layer.shape[0]
            chunk = floats[offset : offset + layer.n_floats]
            offset += layer.n_floats
            bias = chunk[:n]
            weight = chunk[n * (4 if p["bn"] else 1) :].reshape(n, p["in_c"] // p["groups"], p["size"], p["size"])
            if p["bn"]:
                gamma, mean, var = chunk[n : 2 * n], chunk[2 * n : 3 * n], chunk[3 * n : 4 * n]
                # Darknet adds eps to the standard deviation, not the variance.
                std = np.sqrt(var.astype(np.float64)) + DARKNET_BN_EPS
                weight, bias = fold_batchnorm(weight, None, gamma, bias, mean, std**2, 0.0)
            pad = p["padding"]
            y = g.conv(
                x,
                weight,
                bias,
                stride=p["stride"],
                pads=(pad, pad, pad, pad),
                group=p["groups"],
                hint=f"conv{index}",
            )
            if p["leaky"]:
                y = g.op("LeakyRelu", [y], f"leaky{index}", alpha=_LEAKY_SLOPE)
        elif layer.kind == "maxpool":
            before = p["padding"] // 2
            after = p["padding"] - before
            y = g.op(
                "MaxPool",
                [x],
                f"maxpool{index}",
                kernel_shape=[p["size"], p["size"]],
                strides=[p["stride"], p["stride"]],
                pads=[before, before, after, after],
            )
        elif layer.kind == "upsample":
            s = float(p["stride"])
            y = g.op(
                "Resize",
                [x, "", g.const(np.array([1.0, 1.0, s, s], np.float32), "scales")],
                f"upsample{index}",
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
            if layer.scale != 1.0:
                y = g.op("Mul", [y, g.const(np.array(layer.scale, np.float32))])
        elif layer.kind == "route":
            names = [outputs[s] for s in layer.sources]
            y = names[0] if len(names) == 1 else g.op("Concat", names, f"route{index}", axis=1)
        else:  # yolo
            y, rows = _yolo_head(g, x, layer, (input_shape[1], input_shape[2]))
            heads.append(y)
            n_rows += rows
            classes.add(p["classes"])
        outputs.append(y)
    _, height, width = input_shape
    if stop_after is None:
        if not heads:
            raise ModelError(f"{cfg_path}: has no [yolo] section, so nothing to detect")
        if len(classes) != 1:
            raise ModelError(f"{cfg_path}: [yolo] heads disagree on classes {sorted(classes)}")
        out = heads[0] if len(heads) == 1 else g.op("Concat", heads, "detections_cat", axis=1)
        out_shape: list[int | str] = ["batch", n_rows, 5 + classes.pop()]
    else:
        final = layers[stop_after]
        out = outputs[-1]
        if final.kind == "yolo":
            n_final = len(final.anchors) * final.shape[1] * final.shape[2]
            out_shape = ["batch", n_final, 5 + final.ints["classes"]]
        else:
            out_shape = ["batch", *final.shape]
    return g.model(
        input_name="images",
        input_shape=["batch", 3, height, width],
        output=out,
        output_name="detections",
        output_shape=out_shape,
        doc=f"Darknet {Path(cfg_path).name} + {Path(weights_path).name}",
    )
