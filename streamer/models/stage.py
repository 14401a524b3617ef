"""What the classifier and detector stages share: find the model, check its input, feed it batches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import onnx

from streamer.models import quantize, zoo
from streamer.models.convert import sha256_file
from streamer.models.engine import Engine, EngineOptions, resolve_providers
from streamer.models.graph_preprocess import FRAMES, GraphBatch, prepend, preprocess_graph
from streamer.models.spec import ClassifierModel, DetectorModel, normalization_constants
from streamer.vision.preprocess import to_tensor

__all__ = ["ModelStage"]

Declaration = TypeVar("Declaration", ClassifierModel, DetectorModel)


class ModelStage(Generic[Declaration]):
    """One declared ONNX model, located (embedded models built), loaded and its input checked.

    ``task`` is ``classifier`` or ``detector``: the config section errors name.
    ``version`` is the first 12 hex digits of the ONNX file's sha256.
    ``engine``: how sessions run (``None``: the defaults); ``device`` and ``cache_dir`` given here win.
    :attr:`graph` is the model with its preprocessing inside, where ``engine.preprocess`` says so
    (:mod:`streamer.models.graph_preprocess`), else ``None``.
    """

    def __init__(
        self,
        model: Declaration,
        task: str,
        *,
        device: str,
        cache_dir: Path | None,
        threads: int | None = None,
        engine: EngineOptions | None = None,
    ) -> None:
        options = replace(engine or EngineOptions(), device=device)
        if options.cache_dir is None and cache_dir is not None:
            options = replace(options, cache_dir=cache_dir)
        onnx_path, self.labels_path, defaults = zoo.locate(model.model, model.labels, task, cache_dir)
        self.declaration: Declaration = model.with_defaults(defaults)
        onnx_path = quantize.for_precision(
            onnx_path,
            self.declaration,
            task,
            embedded=model.model in zoo.EMBEDDED,
            cpu_only=resolve_providers(options.device) == ("CPUExecutionProvider",),
            cache_dir=cache_dir or zoo.default_cache_dir(),
        )
        in_graph = options.graph_preprocess(resolve_providers(options.device)[0])
        # With the preprocessing in the graph, the model alone only answers questions (its input, its outputs):
        # on the CPU, so a GPU neither holds its weights twice nor builds a second TensorRT engine.
        alone = replace(options, device="cpu", io_binding=False, cuda_graphs=False) if in_graph else options
        self.engine = Engine(onnx_path, threads=threads, options=alone)
        self.version = sha256_file(onnx_path)[:12]
        self.input_size = self.engine.image_size(
            section=task,
            layout=self.declaration.layout or "nchw",
            declared=self.declaration.input_size,
            normalization=model.normalization,
        )
        d = self.declaration
        self._mean, self._std = normalization_constants(d.normalization, d.mean, d.std)
        self.graph: Engine | None = None
        if in_graph:
            self.graph = self._graph_engine(task, threads, options)

    @property
    def provider(self) -> str:
        """The execution provider batches run on."""
        return (self.graph or self.engine).provider

    def _graph_engine(self, task: str, threads: int | None, options: EngineOptions) -> Engine:
        """The model (as loaded: :attr:`engine`'s file) with its preprocessing prepended, in a session."""
        d = self.declaration
        pad_value = 127  # :func:`~streamer.vision.preprocess.fit`'s letterbox
        resize = getattr(d, "resize", None) or "crop"
        if isinstance(d, DetectorModel):
            resize, pad_value = "letterbox", d.pad_value or 0  # as DetectorStage.prepare
        preprocess = preprocess_graph(
            size=self.input_size,
            resize=resize,
            mean=self._mean,
            std=self._std,
            layout=d.layout or "nchw",
            bgr=d.color == "bgr",
            dtype=self.engine.input.dtype,
            pad_value=pad_value,
            output=self.engine.input.name,
        )
        merged = prepend(preprocess, onnx.load(str(self.engine.path)))
        return Engine(self.engine.path, threads=threads, options=options, graph=merged.SerializeToString())

    def tensor(self, images: list[np.ndarray]) -> np.ndarray:
        """The model's input batch for RGB images already at :attr:`input_size`."""
        return to_tensor(
            images,
            mean=self._mean,
            std=self._std,
            layout=self.declaration.layout or "nchw",
            bgr=self.declaration.color == "bgr",
            dtype=self.engine.input.dtype,
        )

    def run(self, tensor: np.ndarray | GraphBatch) -> list[np.ndarray]:
        """Every output for a batch: one run, or one per slice where the model's batch size is fixed.

        A :class:`~streamer.models.graph_preprocess.GraphBatch` runs on :attr:`graph`.
        """
        engine, extra = self.engine, None
        rows: np.ndarray = tensor.items if isinstance(tensor, GraphBatch) else tensor
        if isinstance(tensor, GraphBatch):
            if self.graph is None:
                raise ValueError("a GraphBatch needs the stage built with engine.preprocess = 'graph'")
            engine, extra = self.graph, {FRAMES: tensor.frames}
        step = self.engine.max_batch or len(rows)
        runs = [engine.run(rows[i : i + step], extra) for i in range(0, len(rows), step)]
        return runs[0] if len(runs) == 1 else [np.concatenate(parts) for parts in zip(*runs, strict=True)]
