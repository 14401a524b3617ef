"""The converted EfficientNet-Lite0 against an independent numpy forward pass."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from streamer.models import zoo
from streamer.models.efficientnet import BN_EPS, INPUT_SIZE, convert_efficientnet_lite0, same_pads
from streamer.models.torchpickle import load_legacy_state_dict


@pytest.fixture(scope="module")
def state() -> dict[str, np.ndarray]:
    source = zoo.embedded("efficientnet-lite0").files[0]
    return load_legacy_state_dict(zoo.package_file(source.package, source.path))


def _conv(x: np.ndarray, w: np.ndarray, stride: int, depthwise: bool) -> np.ndarray:
    """Reference convolution of [C, H, W] with TensorFlow SAME padding, in float64."""
    _, height, width = x.shape
    k = w.shape[2]
    top, bottom = same_pads(height, k, stride)
    left, right = same_pads(width, k, stride)
    padded = np.pad(x, ((0, 0), (top, bottom), (left, right)))
    out_h, out_w = -(-height // stride), -(-width // stride)
    out = np.zeros((w.shape[0], out_h, out_w))
    for dy in range(k):
        for dx in range(k):
            patch = padded[:, dy : dy + stride * out_h : stride, dx : dx + stride * out_w : stride]
            if depthwise:
                out += w[:, 0, dy, dx][:, None, None] * patch
            else:
                out += np.einsum("oc,chw->ohw", w[:, :, dy, dx], patch)
    return out


def _bn(x: np.ndarray, state: dict[str, np.ndarray], name: str) -> np.ndarray:
    gamma, beta = state[f"{name}.weight"], state[f"{name}.bias"]
    mean, var = state[f"{name}.running_mean"], state[f"{name}.running_var"]
    return (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + BN_EPS) * gamma[:, None, None] + beta[:, None, None]


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def _reference_blocks_0_1(state: dict[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    x = image.astype(np.float64)
    x = _relu6(_bn(_conv(x, state["_conv_stem.weight"], 2, False), state, "_bn0"))
    # block 0: depthwise 3x3 stride 1, project 32 -> 16, no expansion, no residual
    x = _relu6(_bn(_conv(x, state["_blocks.0._depthwise_conv.weight"], 1, True), state, "_blocks.0._bn1"))
    x = _bn(_conv(x, state["_blocks.0._project_conv.weight"], 1, False), state, "_blocks.0._bn2")
    # block 1: expand 16 -> 96, depthwise 3x3 stride 2, project 96 -> 24
    x = _relu6(_bn(_conv(x, state["_blocks.1._expand_conv.weight"], 1, False), state, "_blocks.1._bn0"))
    x = _relu6(_bn(_conv(x, state["_blocks.1._depthwise_conv.weight"], 2, True), state, "_blocks.1._bn1"))
    return _bn(_conv(x, state["_blocks.1._project_conv.weight"], 1, False), state, "_blocks.1._bn2")


def test_state_dict_has_every_documented_tensor(state: dict[str, np.ndarray]) -> None:
    assert len(state) == 296
    assert sum(v.size for v in state.values()) == 4_694_073
    assert state["_fc.weight"].shape == (1000, 1280)
    assert not any("_se_" in name for name in state)


def test_first_layers_match_an_independent_numpy_forward_pass(state: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(7)
    image = rng.uniform(-1.0, 1.0, (3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    model = convert_efficientnet_lite0(state, stop_after_block=1)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (features,) = session.run(None, {"image": image[None]})
    expected = _reference_blocks_0_1(state, image)
    assert features.shape == (1, 24, 56, 56)
    np.testing.assert_allclose(features[0], expected, atol=1e-4, rtol=1e-4)


def test_full_model_takes_a_batch(state: dict[str, np.ndarray]) -> None:
    session = ort.InferenceSession(
        convert_efficientnet_lite0(state).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    batch = np.random.default_rng(1).uniform(-1, 1, (3, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
    (logits,) = session.run(None, {"image": batch})
    assert logits.shape == (3, 1000)
    (single,) = session.run(None, {"image": batch[1:2]})
    np.testing.assert_allclose(single[0], logits[1], atol=1e-4)


def test_same_padding_puts_the_odd_pixel_after() -> None:
    assert same_pads(224, 3, 2) == (0, 1)
    assert same_pads(56, 5, 2) == (1, 2)
    assert same_pads(112, 3, 1) == (1, 1)
