"""Model declarations: what a model file is and how to feed it.

A declaration is plain, validated data, built from ``config.toml`` or in code,
so any ONNX classifier works without code changes. ``model`` is either the
name of an embedded default (see :mod:`streamer.models.zoo`) or a path to an
``.onnx`` file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from streamer.errors import ConfigError

__all__ = [
    "COLORS",
    "GENERIC_DEFAULTS",
    "HEADS",
    "LAYOUTS",
    "NORMALIZATIONS",
    "RESIZES",
    "ClassifierModel",
    "normalization_constants",
]

#: name -> (mean, std) per channel, in 0-255 pixel units: ``x' = (x - mean) / std``.
NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
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


#: what a field left as ``None`` means for a model file that is not embedded.
GENERIC_DEFAULTS: dict[str, object] = {
    "resize": "crop",
    "normalization": "imagenet",
    "layout": "nchw",
    "color": "rgb",
    "head": "softmax",
}


@dataclass(frozen=True, kw_only=True)
class ClassifierModel:
    """How to run one ONNX image classifier.

    ``model`` is an embedded model's name or a path to an ``.onnx`` file.
    ``labels`` is a class-names file, one name per line (``None``: the embedded
    model's, or class ids as names). Every other field left ``None`` takes the
    model's own default: the embedded declaration, else :data:`GENERIC_DEFAULTS`
    (and ``input_size`` from the model's input shape, ``resize_shorter`` as
    ``round(min(input_size) / 0.875)``). ``input_size`` is (width, height);
    ``mean``/``std`` are in 0-255 units and override ``normalization``.
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

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("classifier.model is empty; give a path to an .onnx file or an embedded model name")
        for name, allowed in (
            ("resize", RESIZES),
            ("normalization", tuple(NORMALIZATIONS)),
            ("layout", LAYOUTS),
            ("color", COLORS),
            ("head", HEADS),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ConfigError(f"classifier.{name} = {value!r} is not allowed; use one of: {', '.join(allowed)}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 1):
            raise ConfigError(f"classifier.input_size = {list(self.input_size)!r}; expected [width, height], both >= 1")
        if self.resize_shorter is not None and self.resize_shorter < 1:
            raise ConfigError(f"classifier.resize_shorter = {self.resize_shorter}; expected an integer >= 1")
        for field, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != 3:
                raise ConfigError(f"classifier.{field} = {list(values)!r}; expected three numbers (R, G, B)")
        if self.std is not None and min(self.std) <= 0:
            raise ConfigError(f"classifier.std = {list(self.std)!r}; every value must be > 0")

    def with_defaults(self, defaults: dict[str, object]) -> ClassifierModel:
        """A copy whose ``None`` fields are filled from ``defaults``, then :data:`GENERIC_DEFAULTS`."""
        filled = {
            name: value for name, value in {**GENERIC_DEFAULTS, **defaults}.items() if getattr(self, name) is None
        }
        return replace(self, **filled)  # type: ignore[arg-type]


def normalization_constants(
    normalization: str | None,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """The (mean, std) actually used: explicit values win over the named preset."""
    preset_mean, preset_std = NORMALIZATIONS[normalization or "none"]
    return (mean or preset_mean), (std or preset_std)
