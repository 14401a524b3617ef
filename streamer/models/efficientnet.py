"""EfficientNet-Lite0 state dict (numpy arrays) to an ONNX graph.

EfficientNet-Lite drops squeeze-excite, uses ReLU6 and keeps the stem (32
channels) and head (1280) fixed. The weights use the ``_conv_stem``,
``_blocks.N`` naming; the network was trained in TensorFlow, so convolutions
use TensorFlow's ``SAME`` padding (the extra pixel of an odd total padding goes
to the bottom and right), computed here for the fixed input size.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from streamer.errors import ModelError
from streamer.models.convert import GraphBuilder, fold_batchnorm

__all__ = ["BLOCK_STRIDES", "BN_EPS", "INPUT_SIZE", "convert_efficientnet_lite0", "same_pads"]

INPUT_SIZE = 224
BN_EPS = 1e-3
#: stride of each of the 16 MBConv blocks of EfficientNet-B0/Lite0, in order.
BLOCK_STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1)


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow ``SAME`` padding of one spatial axis: (before, after)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _tensor(state: dict[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return state[name]
    except KeyError:
        raise ModelError(f"EfficientNet-Lite0 weights lack {name!r}; is this the right checkpoint?") from None


class _Net:
    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self.state = state
        self.g = GraphBuilder()
        self.relu6_min = self.g.const(np.array(0.0, np.float32), "relu6_min")
        self.relu6_max = self.g.const(np.array(6.0, np.float32), "relu6_max")

    def conv_bn(
        self, x: str, size: int, conv: str, bn: str, *, stride: int, relu6: bool, group: int = 1
    ) -> tuple[str, int]:
        weight = _tensor(self.state, f"{conv}.weight")
        folded_w, folded_b = fold_batchnorm(
            weight,
            None,
            _tensor(self.state, f"{bn}.weight"),
            _tensor(self.state, f"{bn}.bias"),
            _tensor(self.state, f"{bn}.running_mean"),
            _tensor(self.state, f"{bn}.running_var"),
            BN_EPS,
        )
        before, after = same_pads(size, weight.shape[2], stride)
        y = self.g.conv(
            x, folded_w, folded_b, stride=stride, pads=(before, before, after, after), group=group, hint=conv
        )
        if relu6:
            y = self.g.op("Clip", [y, self.relu6_min, self.relu6_max], "relu6")
        return y, math.ceil(size / stride)

    def block(self, x: str, size: int, index: int, stride: int) -> tuple[str, int]:
        """One MBConv block: optional 1x1 expansion, depthwise conv, 1x1 projection, residual."""
        prefix = f"_blocks.{index}"
        y = x
        channels = _tensor(self.state, f"{prefix}._depthwise_conv.weight").shape[0]
        in_ch = channels
        if (expand := self.state.get(f"{prefix}._expand_conv.weight")) is not None:
            in_ch = expand.shape[1]
            y, _ = self.conv_bn(y, size, f"{prefix}._expand_conv", f"{prefix}._bn0", stride=1, relu6=True)
        y, out_size = self.conv_bn(
            y, size, f"{prefix}._depthwise_conv", f"{prefix}._bn1", stride=stride, relu6=True, group=channels
        )
        y, _ = self.conv_bn(y, out_size, f"{prefix}._project_conv", f"{prefix}._bn2", stride=1, relu6=False)
        out_ch = _tensor(self.state, f"{prefix}._project_conv.weight").shape[0]
        if stride == 1 and in_ch == out_ch:
            y = self.g.op("Add", [y, x], "residual")
        return y, out_size


def convert_efficientnet_lite0(state: dict[str, np.ndarray], *, stop_after_block: int | None = None) -> onnx.ModelProto:
    """Build the ONNX graph: input ``image`` ``[batch, 3, 224, 224]``, output ``logits`` ``[batch, 1000]``.

    The input is RGB normalised as ``(x - 127) / 128``. With ``stop_after_block``
    the graph ends after that MBConv block (0-15) and returns its feature map,
    which the tests compare against an independent numpy forward pass.
    """
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("_blocks.")})
    if blocks != list(range(len(BLOCK_STRIDES))):
        raise ModelError(f"EfficientNet-Lite0 expects blocks 0-15, the weights have {blocks[:3]}...{blocks[-3:]}")
    net = _Net(state)
    x, size = net.conv_bn("image", INPUT_SIZE, "_conv_stem", "_bn0", stride=2, relu6=True)
    for index, stride in enumerate(BLOCK_STRIDES):
        x, size = net.block(x, size, index, stride)
        if index == stop_after_block:
            channels = _tensor(state, f"_blocks.{index}._project_conv.weight").shape[0]
            return net.g.model(
                input_name="image",
                input_shape=["batch", 3, INPUT_SIZE, INPUT_SIZE],
                output=x,
                output_name="features",
                output_shape=["batch", channels, size, size],
                doc=f"EfficientNet-Lite0 up to block {index}",
            )
    x, _ = net.conv_bn(x, size, "_conv_head", "_bn1", stride=1, relu6=True)
    x = net.g.op("GlobalAveragePool", [x], "pool")
    x = net.g.op("Flatten", [x], "flatten", axis=1)
    fc_w = _tensor(state, "_fc.weight")
    x = net.g.op(
        "Gemm", [x, net.g.const(fc_w, "fc_w"), net.g.const(_tensor(state, "_fc.bias"), "fc_b")], "fc", transB=1
    )
    return net.g.model(
        input_name="image",
        input_shape=["batch", 3, INPUT_SIZE, INPUT_SIZE],
        output=x,
        output_name="logits",
        output_shape=["batch", int(fc_w.shape[0])],
        doc="EfficientNet-Lite0, ImageNet-1k, converted by streamer from the PyTorch weights",
    )
