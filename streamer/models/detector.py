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
from streamer.models.classifier import class_mask
from streamer.models.engine import EngineOptions
from streamer.models.graph_preprocess import GraphBatch, GraphItem, graph_batch, letterbox_item
from streamer.models.labels import load_labels
from streamer.models.spec import DetectorModel
from streamer.models.stage import ModelStage
from streamer.vision.detect import Detections, check_outputs, decode
from streamer.vision.preprocess import Letterbox, letterbox

__all__ = ["DetectorStage"]


class DetectorStage(ModelStage[DetectorModel]):
    """A detector model ready to find objects; owns one :class:`~streamer.models.engine.Engine`."""

    def __init__(
        self,
        model: DetectorModel,
        *,
        device: str,
        cache_dir: Path | None,
        threads: int | None = None,
        allowlist: tuple[str, ...] = (),
        denylist: tuple[str, ...] = (),
        engine: EngineOptions | None = None,
    ) -> None:
        super().__init__(model, "detector", device=device, cache_dir=cache_dir, threads=threads, engine=engine)
        declaration, labels_path, onnx_path = self.declaration, self.labels_path, self.engine.path
        if declaration.family is None:
            raise ConfigError(
                f"detector model {onnx_path}: set detector.family to its output layout "
                "(yolov5, yolov8, yolov10 or ssd); it is declared, not guessed"
            )
        self.family: str = declaration.family
        names = load_labels(labels_path) if labels_path is not None else None
        if names is None and self.family == "yolov10":
            raise ConfigError(f"detector model {onnx_path}: yolov10 outputs class ids only; set detector.labels")

        def check(shapes: list[tuple[int | str | None, ...]]) -> None:
            try:
                check_outputs(self.family, shapes, len(names) if names else None)
            except ModelError as exc:
                where = f"{onnx_path}" + (f" with class names {labels_path}" if labels_path else "")
                raise ModelError(f"{where}: {exc}") from None

        check([o.shape for o in self.engine.outputs])  # declared shapes, before running anything
        outputs = self.run(self.prepare([np.full((*self.input_size[::-1], 3), 127, np.uint8)])[0])
        check([o.shape for o in outputs])  # and the real ones, where dimensions were dynamic
        self.names: list[str] = names or [str(i) for i in range(_class_count(self.family, outputs))]
        what = "object_allowlist" if allowlist else "object_denylist"
        self._mask = class_mask(self.names, allowlist, denylist, what)

    def prepare(self, images: list[np.ndarray]) -> tuple[np.ndarray | GraphBatch, list[Letterbox]]:
        """Letterbox and normalise RGB ``images`` into one input batch (with :attr:`graph`: the frames and
        what the graph does with them)."""
        if self.graph is not None:
            rows = [letterbox_item(0, (0, 0, image.shape[1], image.shape[0]), self.input_size) for image in images]
            items = [GraphItem(image, row) for image, (row, _) in zip(images, rows, strict=True)]
            return graph_batch(items), [box for _, box in rows]
        fitted = [letterbox(image, self.input_size, self.declaration.pad_value or 0) for image in images]
        return self.tensor([canvas for canvas, _ in fitted]), [box for _, box in fitted]

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
