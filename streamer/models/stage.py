"""What the classifier and detector stages share: find the model, check its input, feed it batches."""

from __future__ import annotations

from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from streamer.models import zoo
from streamer.models.convert import sha256_file
from streamer.models.engine import Engine
from streamer.models.spec import ClassifierModel, DetectorModel, normalization_constants
from streamer.vision.preprocess import to_tensor

__all__ = ["ModelStage"]

Declaration = TypeVar("Declaration", ClassifierModel, DetectorModel)


class ModelStage(Generic[Declaration]):
    """One declared ONNX model, located (embedded models built), loaded and its input checked.

    ``task`` is ``classifier`` or ``detector``: the config section errors name.
    ``version`` is the first 12 hex digits of the ONNX file's sha256.
    """

    def __init__(
        self, model: Declaration, task: str, *, device: str, cache_dir: Path | None, threads: int | None = None
    ) -> None:
        onnx_path, self.labels_path, defaults = zoo.locate(model.model, model.labels, task, cache_dir)
        self.declaration: Declaration = model.with_defaults(defaults)
        self.engine = Engine(onnx_path, device=device, threads=threads)
        self.version = sha256_file(onnx_path)[:12]
        self.input_size = self.engine.image_size(
            section=task,
            layout=self.declaration.layout or "nchw",
            declared=self.declaration.input_size,
            normalization=model.normalization,
        )
        d = self.declaration
        self._mean, self._std = normalization_constants(d.normalization, d.mean, d.std)

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

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Every output for a batch: one run, or one per slice where the model's batch size is fixed."""
        step = self.engine.max_batch or len(tensor)
        runs = [self.engine.run(tensor[i : i + step]) for i in range(0, len(tensor), step)]
        return runs[0] if len(runs) == 1 else [np.concatenate(parts) for parts in zip(*runs, strict=True)]
