"""Model declarations: what a model file is and how to feed it.

A declaration is plain, validated data, built from ``config.toml`` or in code,
so any ONNX classifier or detector works without code changes. ``model`` is
either the name of an embedded default (see :mod:`streamer.models.zoo`) or a
path to an ``.onnx`` file. Fields left ``None`` take the model's own default:
the embedded declaration, else the generic defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

from streamer.errors import ConfigError

__all__ = [
    "CLASSIFIER_DEFAULTS",
    "COLORS",
    "DETECTOR_DEFAULTS",
    "FAMILIES",
    "HEADS",
    "LAYOUTS",
    "NORMALIZATIONS",
    "PRECISIONS",
    "RESIZES",
    "ClassifierModel",
    "DetectorModel",
    "normalization_constants",
]

#: name -> (mean, std) per channel, in 0-255 pixel units: ``x' = (x - mean) / std``.
#: ``unit`` is [0, 1] (x / 255), what most YOLO exports take.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
    "half": ((127.5, 127.5, 127.5), (255.0, 255.0, 255.0)),
    "full": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
LAYOUTS = ("nchw", "nhwc")
COLORS = ("rgb", "bgr")
HEADS = ("softmax", "sigmoid", "regression")
#: crop: shorter side to ``resize_shorter`` then centre crop; stretch: resize to the
#: input size ignoring aspect; letterbox: fit inside, pad with grey 127.
RESIZES = ("crop", "stretch", "letterbox")
#: numbers the model computes with on the CPU (see :mod:`streamer.models.quantize`); unset: int8 on a CPU with VNNI.
PRECISIONS = ("fp32", "int8")
#: detector output layouts, see :mod:`streamer.vision.detect`.
FAMILIES = ("yolov5", "yolov8", "yolov10", "ssd")

CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "resize": "crop",
    "normalization": "imagenet",
    "layout": "nchw",
    "color": "rgb",
    "head": "softmax",
}
DETECTOR_DEFAULTS: dict[str, Any] = {
    "normalization": "unit",
    "layout": "nchw",
    "color": "rgb",
    "pad_value": 114,
    "confidence": 0.25,
    "iou": 0.45,
    "max_detections": 100,
    "min_box_size": 2.0,
    "normalized_boxes": False,
}

_Model = TypeVar("_Model", "ClassifierModel", "DetectorModel")


def _check_common(section: str, model: ClassifierModel | DetectorModel) -> None:
    """Checks both declarations share: model, choices, input size, mean/std."""
    if not model.model:
        raise ConfigError(f"{section}.model is empty; give a path to an .onnx file or an embedded model name")
    for name, allowed in (
        ("normalization", tuple(NORMALIZATIONS)),
        ("layout", LAYOUTS),
        ("color", COLORS),
        *((("resize", RESIZES), ("head", HEADS)) if section == "classifier" else (("family", FAMILIES),)),
    ):
        value = getattr(model, name)
        if value is not None and value not in allowed:
            raise ConfigError(f"{section}.{name} = {value!r} is not allowed; use one of: {', '.join(allowed)}")
    if model.input_size is not None and (len(model.input_size) != 2 or min(model.input_size) < 1):
        raise ConfigError(f"{section}.input_size = {list(model.input_size)!r}; expected [width, height], both >= 1")
    if model.precision is not None and model.precision not in PRECISIONS:
        raise ConfigError(
            f"{section}.precision = {model.precision!r} is not allowed; use one of: {', '.join(PRECISIONS)}"
        )
    for field, values in (("mean", model.mean), ("std", model.std)):
        if values is not None and len(values) != 3:
            raise ConfigError(f"{section}.{field} = {list(values)!r}; expected three numbers (R, G, B)")
    if model.std is not None and min(model.std) <= 0:
        raise ConfigError(f"{section}.std = {list(model.std)!r}; every value must be > 0")


def _fill(model: _Model, *layers: dict[str, Any]) -> _Model:
    """A copy whose ``None`` fields are filled from ``layers``, earlier layers winning."""
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return replace(model, **{k: v for k, v in merged.items() if getattr(model, k) is None})


@dataclass(frozen=True, kw_only=True)
class ClassifierModel:
    """How to run one ONNX image classifier.

    ``labels`` is a class-names file, one name per line (``None``: the embedded
    model's, or class ids as names). ``input_size`` is (width, height); ``None``
    takes it from the model's input shape. ``resize_shorter`` is the shorter
    side before a ``crop`` resize (``None``: ``round(min(input_size) / 0.875)``).
    ``mean``/``std`` are in 0-255 units and override ``normalization``.
    ``precision``: ``fp32``, ``int8`` or ``None`` (fp32, see
    :data:`~streamer.models.quantize.INT8_BY_DEFAULT`); ``calibration``: a folder of images to calibrate
    int8 on (``None``: the shipped samples, embedded models only).
    """

    model: str
    labels: str | None = None
    input_size: tuple[int, int] | None = None
    resize: str | None = None
    resize_shorter: int | None = None
    normalization: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layout: str | None = None
    color: str | None = None
    head: str | None = None
    precision: str | None = None
    calibration: str | None = None

    def __post_init__(self) -> None:
        _check_common("classifier", self)
        if self.resize_shorter is not None and self.resize_shorter < 1:
            raise ConfigError(f"classifier.resize_shorter = {self.resize_shorter}; expected an integer >= 1")

    def with_defaults(self, defaults: dict[str, Any]) -> ClassifierModel:
        """``None`` fields filled from ``defaults``, then :data:`CLASSIFIER_DEFAULTS`."""
        return _fill(self, defaults, CLASSIFIER_DEFAULTS)


@dataclass(frozen=True, kw_only=True)
class DetectorModel:
    """How to run one ONNX object detector.

    ``family`` names the output layout (required for a model file that is not
    embedded). Images are letterboxed to ``input_size`` on grey ``pad_value``.
    ``confidence`` and ``iou`` are the score and NMS thresholds;
    ``max_detections`` caps objects per frame; boxes narrower or lower than
    ``min_box_size`` source pixels are dropped. ``normalized_boxes``: the
    model gives box coordinates as fractions of the input size. ``precision`` and ``calibration``: as
    :class:`ClassifierModel`'s.
    """

    model: str
    labels: str | None = None
    family: str | None = None
    input_size: tuple[int, int] | None = None
    normalization: str | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    layout: str | None = None
    color: str | None = None
    pad_value: int | None = None
    confidence: float | None = None
    iou: float | None = None
    max_detections: int | None = None
    min_box_size: float | None = None
    normalized_boxes: bool | None = None
    precision: str | None = None
    calibration: str | None = None

    def __post_init__(self) -> None:
        _check_common("detector", self)
        for name in ("confidence", "iou"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"detector.{name} = {value!r}; expected a number in [0, 1]")
        if self.max_detections is not None and self.max_detections < 1:
            raise ConfigError(f"detector.max_detections = {self.max_detections!r}; expected an integer >= 1")
        if self.min_box_size is not None and self.min_box_size < 0:
            raise ConfigError(f"detector.min_box_size = {self.min_box_size!r}; expected a number >= 0")
        if self.pad_value is not None and not 0 <= self.pad_value <= 255:
            raise ConfigError(f"detector.pad_value = {self.pad_value!r}; expected an integer in 0..255")

    def with_defaults(self, defaults: dict[str, Any]) -> DetectorModel:
        """``None`` fields filled from ``defaults``, then :data:`DETECTOR_DEFAULTS`."""
        return _fill(self, defaults, DETECTOR_DEFAULTS)


def normalization_constants(
    normalization: str | None,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The (mean, std) actually used: explicit values win over the named preset."""
    preset_mean, preset_std = NORMALIZATIONS[normalization or "none"]
    return (mean or preset_mean), (std or preset_std)
