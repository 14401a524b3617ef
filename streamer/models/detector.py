"""One loaded object detector: declaration checked against the outputs, frames decoded.

Call order: ``stage = DetectorStage(model, ...)`` (loads, checks the output
layout against ``family`` and the class names, runs once), then per batch of
frames ``tensor, boxes = stage.prepare(images)``, ``outputs = stage.run(tensor)``
and ``stage.decode(outputs, i, boxes[i], size)`` for image ``i``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import ConfigError, ModelError
from streamer.models import zoo
from streamer.models.classifier import class_mask
from streamer.models.engine import Engine
from streamer.models.labels import load_labels
from streamer.models.spec import DetectorModel, normalization_constants
from streamer.vision.detect import Detections, check_outputs, decode
from streamer.vision.preprocess import Letterbox, letterbox, to_tensor

__all__ = ["DetectorStage"]


class DetectorStage:
    """A detector model ready to find objects; owns one :class:`Engine`."""

    def __init__(
        self,
        model: DetectorModel,
        *,
        device: str,
        cache_dir: Path | None,
        allowlist: tuple[str, ...] = (),
        denylist: tuple[str, ...] = (),
    ) -> None:
        onnx_path, labels_path, defaults = zoo.locate(model.model, model.labels, "detector", cache_dir)
        self.declaration = declaration = model.with_defaults(defaults)
        if declaration.family is None:
            raise ConfigError(
                f"detector model {onnx_path}: set detector.family to its output layout "
                "(yolov5, yolov8, yolov10 or ssd); it is declared, not guessed"
            )
        self.family: str = declaration.family
        self.engine = Engine(onnx_path, device=device)
        self.input_size = self.engine.image_size(
            section="detector",
            layout=declaration.layout or "nchw",
            declared=declaration.input_size,
            normalization=model.normalization,
        )
        names = load_labels(labels_path) if labels_path is not None else None
        if names is None and self.family == "yolov10":
            raise ConfigError(f"detector model {onnx_path}: yolov10 outputs class ids only; set detector.labels")
        where = f"{onnx_path}" + (f" with class names {labels_path}" if labels_path else "")
        try:
            check_outputs(self.family, [o.shape for o in self.engine.outputs], len(names) if names else None)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
        self._mean, self._std = normalization_constants(declaration.normalization, declaration.mean, declaration.std)
        blank = np.full((self.input_size[1], self.input_size[0], 3), 127, np.uint8)
        outputs = self.run(self.prepare([blank])[0])
        try:
            check_outputs(self.family, [o.shape for o in outputs], len(names) if names else None)
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
        self.names: list[str] = names or [str(i) for i in range(_class_count(self.family, outputs))]
        what = "object_allowlist" if allowlist else "object_denylist"
        self._mask = class_mask(self.names, allowlist, denylist, what)

    def prepare(self, images: list[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """Letterbox and normalise RGB ``images`` into one input batch."""
        fitted = [letterbox(image, self.input_size, self.declaration.pad_value or 0) for image in images]
        tensor = to_tensor(
            [canvas for canvas, _ in fitted],
            mean=self._mean,
            std=self._std,
            layout=self.declaration.layout or "nchw",
            bgr=self.declaration.color == "bgr",
            dtype=self.engine.input.dtype,
        )
        return tensor, [box for _, box in fitted]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Raw outputs for a prepared batch, split into runs where the batch size is fixed."""
        step = self.engine.max_batch or len(tensor)
        runs = [self.engine.run(tensor[i : i + step]) for i in range(0, len(tensor), step)]
        return runs[0] if len(runs) == 1 else [np.concatenate(parts) for parts in zip(*runs, strict=True)]

    def decode(self, outputs: list[np.ndarray], index: int, box: Letterbox, size: tuple[int, int]) -> Detections:
        """Objects of image ``index`` in source pixels; ``size`` is its (width, height)."""
        d = self.declaration
        return decode(
            outputs,
            self.family,
            index,
            letterbox=box,
            source_size=size,
            conf_threshold=float(d.confidence or 0.0),
            iou_threshold=float(d.iou or 0.0),
            max_detections=int(d.max_detections or 1),
            class_mask=self._mask,
            min_box_size=float(d.min_box_size or 0.0),
            normalized_boxes=bool(d.normalized_boxes),
            input_size=self.input_size,
        )


def _class_count(family: str, outputs: list[np.ndarray]) -> int:
    """How many classes a model without a class-names file has, from its outputs."""
    if family == "ssd":
        return int(outputs[1].shape[-1])
    if family == "yolov5":
        return int(outputs[0].shape[-1]) - 5
    return int(outputs[0].shape[1]) - 4  # yolov8
