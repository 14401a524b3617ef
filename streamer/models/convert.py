"""Shared pieces for turning pretrained weights into ONNX graphs.

Pure numpy and the ``onnx`` package: no torch, no network. The converters
(``efficientnet.py``, ``darknet.py``) describe their networks with a
:class:`GraphBuilder` and fold batch normalisation with :func:`fold_batchnorm`;
:func:`save_model_atomic` writes the result so that a killed build never leaves
a half-written file under the final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from streamer.files import atomic_path

__all__ = ["OPSET", "GraphBuilder", "fold_batchnorm", "save_model_atomic", "sha256_file"]

OPSET = 17


def fold_batchnorm(
    weight: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray,
    beta: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference-mode BatchNorm that follows a convolution into it.

    ``weight`` is ``[out, in/groups, kh, kw]``; the other vectors have ``out``
    entries; ``bias`` may be ``None`` (no conv bias). Returns the new weight and
    bias as float32.
    """
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    conv_bias = np.zeros_like(scale) if bias is None else bias.astype(np.float64)
    new_weight = weight.astype(np.float64) * scale[:, None, None, None]
    new_bias = beta.astype(np.float64) + (conv_bias - mean.astype(np.float64)) * scale
    return new_weight.astype(np.float32), new_bias.astype(np.float32)


class GraphBuilder:
    """Collects nodes and initializers; each method returns its output's name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str = "const") -> str:
        """Add ``value`` as an initializer and return its name."""
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        """Add one single-output node and return its output name."""
        out = self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(
        self,
        x: str,
        weight: np.ndarray,
        bias: np.ndarray,
        *,
        stride: int = 1,
        pads: tuple[int, int, int, int] | None = None,
        group: int = 1,
        hint: str = "conv",
    ) -> str:
        """A 2-D convolution; ``pads`` is (top, left, bottom, right), default k//2."""
        k_h, k_w = weight.shape[2], weight.shape[3]
        if pads is None:
            pads = (k_h // 2, k_w // 2, k_h // 2, k_w // 2)
        top, left, bottom, right = pads
        return self.op(
            "Conv",
            [x, self.const(weight, hint + "_w"), self.const(bias, hint + "_b")],
            hint,
            kernel_shape=[k_h, k_w],
            strides=[stride, stride],
            pads=[top, left, bottom, right],
            group=group,
        )

    def model(
        self,
        *,
        input_name: str,
        input_shape: list[int | str],
        output: str,
        output_name: str,
        output_shape: list[int | str],
        doc: str,
    ) -> onnx.ModelProto:
        """Close the graph: rename ``output`` to ``output_name`` and check it."""
        self.nodes.append(helper.make_node("Identity", [output], [output_name]))
        graph = helper.make_graph(
            self.nodes,
            "streamer",
            [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, output_shape)],
            self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="streamer",
            doc_string=doc,
        )
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model_atomic(model: onnx.ModelProto, path: Path) -> None:
    """Write ``model`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(model.SerializeToString())
        handle.flush()
        os.fsync(handle.fileno())
