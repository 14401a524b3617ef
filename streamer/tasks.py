"""The Classifier task: options, running modes, and IMAGE-mode classification.

Call order::

    options = ClassifierOptions(max_results=3)          # validated here
    with Classifier.create_from_options(options) as c:  # model built/loaded, checked
        result = c.classify(rgb_image)                  # IMAGE mode

Images are ``[height, width, 3]`` ``uint8`` RGB arrays.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from streamer.errors import ConfigError, InputNotFoundError, ModelError, RunningModeError
from streamer.models import zoo
from streamer.models.engine import DEVICES, Engine
from streamer.models.labels import load_display_names, load_labels
from streamer.models.spec import ClassifierModel, normalization_constants
from streamer.results import Category, FrameResult
from streamer.vision.postprocess import apply_head, select
from streamer.vision.preprocess import (
    RegionOfInterest,
    check_image,
    crop_roi,
    fit,
    to_tensor,
)

__all__ = ["DEFAULT_CLASSIFIER", "Classifier", "ClassifierOptions", "ResultCallback", "RunningMode"]

DEFAULT_CLASSIFIER = "efficientnet-lite0"

#: LIVE_STREAM callback: ``(result, image, timestamp_ms)``.
ResultCallback = Callable[[FrameResult, np.ndarray, int], None]


class RunningMode(enum.Enum):
    """IMAGE: one image at a time; VIDEO: every frame in order; LIVE_STREAM: async, may drop."""

    IMAGE = "image"
    VIDEO = "video"
    LIVE_STREAM = "live_stream"


@dataclass(frozen=True, kw_only=True)
class ClassifierOptions:
    """Everything a :class:`Classifier` needs; validated on creation.

    ``max_results`` ``None`` keeps every class over ``score_threshold``.
    ``category_allowlist`` / ``category_denylist`` hold class names and are
    mutually exclusive. ``display_names_locale`` picks ``labels.<locale>.txt``
    beside the class-names file (``None``: display names are the names).
    ``region_of_interest`` (normalised) is classified instead of the whole
    image. ``result_callback`` is required in LIVE_STREAM mode and refused in
    the others. ``cache_dir`` ``None`` means ``$STREAMER_CACHE_DIR`` or
    ``~/.cache/streamer``.
    """

    model: ClassifierModel = field(default_factory=lambda: ClassifierModel(model=DEFAULT_CLASSIFIER))
    running_mode: RunningMode = RunningMode.IMAGE
    max_results: int | None = 5
    score_threshold: float = 0.0
    category_allowlist: tuple[str, ...] = ()
    category_denylist: tuple[str, ...] = ()
    display_names_locale: str | None = None
    region_of_interest: RegionOfInterest | None = None
    result_callback: ResultCallback | None = None
    device: str = "auto"
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.running_mode, RunningMode):
            raise ConfigError(f"running_mode = {self.running_mode!r}; use RunningMode.IMAGE, VIDEO or LIVE_STREAM")
        if self.max_results is not None and (not isinstance(self.max_results, int) or self.max_results < 1):
            raise ConfigError(f"max_results = {self.max_results!r}; expected an integer >= 1, or None for all")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold = {self.score_threshold!r}; expected a number in [0, 1]")
        if self.category_allowlist and self.category_denylist:
            raise ConfigError(
                "category_allowlist and category_denylist are both set; they are mutually exclusive, keep one"
            )
        if self.device not in DEVICES:
            raise ConfigError(f"device = {self.device!r} is not allowed; use one of: {', '.join(DEVICES)}")
        live = self.running_mode is RunningMode.LIVE_STREAM
        if live and self.result_callback is None:
            raise ConfigError("running_mode LIVE_STREAM needs a result_callback(result, image, timestamp_ms)")
        if not live and self.result_callback is not None:
            raise ConfigError(
                f"result_callback is only used in LIVE_STREAM mode, not {self.running_mode.name}; remove it"
            )


def _resolve_files(model: ClassifierModel, cache_dir: Path | None) -> tuple[ClassifierModel, Path, Path | None]:
    """The declaration with defaults filled, the ONNX path, the class-names path."""
    if model.model in zoo.EMBEDDED:
        entry = zoo.embedded(model.model)
        if entry.task != "classifier":
            raise ConfigError(f"classifier.model = {model.model!r} is a {entry.task}, not a classifier")
        built = zoo.build(model.model, cache_dir)
        labels = Path(model.labels).expanduser() if model.labels else built.labels_path
        return model.with_defaults(entry.declaration), built.onnx_path, labels
    path = Path(model.model).expanduser()
    if not path.is_file():
        raise InputNotFoundError(
            f"classifier model {path} does not exist; give an .onnx file or one of the "
            f"embedded models: {', '.join(n for n, m in zoo.EMBEDDED.items() if m.task == 'classifier')}"
        )
    return model.with_defaults({}), path, Path(model.labels).expanduser() if model.labels else None


def _check_input(engine: Engine, model: ClassifierModel) -> tuple[int, int]:
    """Check the model's input against the declaration; return (width, height)."""
    shape = engine.input.shape
    where = f"{engine.path}: input {engine.input.name!r} has shape {list(shape)}"
    if len(shape) != 4:
        raise ModelError(f"{where}; expected rank 4 ({model.layout}: batch, ...)")
    channels, height, width = (
        (shape[1], shape[2], shape[3]) if model.layout == "nchw" else (shape[3], shape[1], shape[2])
    )
    if isinstance(channels, int) and channels != 3:
        other = "nhwc" if model.layout == "nchw" else "nchw"
        raise ModelError(f"{where}, which is not {model.layout} with 3 channels; is layout = {other!r}?")
    declared = model.input_size
    static = (width, height) if isinstance(width, int) and isinstance(height, int) else None
    if declared is not None and static is not None and tuple(declared) != static:
        raise ModelError(f"{where}; input_size = {list(declared)} contradicts it (expected {list(static)})")
    size = declared or static
    if size is None:
        raise ConfigError(f"{where} with dynamic height/width; set classifier.input_size = [width, height]")
    if engine.input.dtype == np.uint8 and model.normalization not in (None, "none"):
        raise ModelError(f"{where} of type uint8, which takes raw pixels; set normalization = 'none'")
    return int(size[0]), int(size[1])


class Classifier:
    """Classifies images with one ONNX model. Build with :meth:`create_from_options`."""

    def __init__(self, options: ClassifierOptions, *, _token: object = None) -> None:
        if _token is not _CREATE:
            raise TypeError("use Classifier.create_from_options(options) or create_from_model_path(path)")
        self.options = options
        declaration, onnx_path, labels_path = _resolve_files(options.model, options.cache_dir)
        self.declaration = declaration
        self._engine = Engine(onnx_path, device=options.device)
        self.input_size = _check_input(self._engine, declaration)
        self._mean, self._std = normalization_constants(declaration.normalization, declaration.mean, declaration.std)
        self._shorter = declaration.resize_shorter or round(min(self.input_size) / 0.875)
        outputs = self._engine.run(self._batch([np.zeros((*self.input_size[::-1], 3), np.uint8)]))
        count = int(np.prod(outputs[0].shape[1:]))
        if labels_path is not None:
            self.names = load_labels(labels_path)
            if len(self.names) != count and declaration.head != "regression":
                raise ModelError(
                    f"class-names file {labels_path} has {len(self.names)} names but model "
                    f"{onnx_path} outputs {count} scores; they must match"
                )
        else:
            self.names = [str(i) for i in range(count)]
        self.display_names = load_display_names(labels_path, self.names, options.display_names_locale)
        self._allowed = self._category_mask()
        self._closed = False

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> Classifier:
        """Build (or load from cache) the model, check it against ``options``, warm it up."""
        return cls(options, _token=_CREATE)

    @classmethod
    def create_from_model_path(cls, path: str | Path) -> Classifier:
        """A classifier in IMAGE mode for an embedded model name or an ``.onnx`` path, with defaults."""
        return cls.create_from_options(ClassifierOptions(model=ClassifierModel(model=str(path))))

    @property
    def provider(self) -> str:
        """The execution provider the session runs on, e.g. ``CPUExecutionProvider``."""
        return self._engine.provider

    def _category_mask(self) -> np.ndarray | None:
        wanted = self.options.category_allowlist or self.options.category_denylist
        if not wanted:
            return None
        unknown = sorted(set(wanted) - set(self.names))
        if unknown:
            which = "category_allowlist" if self.options.category_allowlist else "category_denylist"
            raise ConfigError(f"{which} names classes the model does not have: {', '.join(map(repr, unknown[:10]))}")
        listed = np.isin(np.asarray(self.names, dtype=object), list(wanted))
        return listed if self.options.category_allowlist else ~listed

    def _batch(self, crops: list[np.ndarray]) -> np.ndarray:
        return to_tensor(
            crops,
            mean=self._mean,
            std=self._std,
            layout=self.declaration.layout or "nchw",
            bgr=self.declaration.color == "bgr",
            dtype=self._engine.input.dtype,
        )

    def _categories(self, scores: np.ndarray) -> tuple[Category, ...]:
        chosen = select(
            scores,
            max_results=self.options.max_results or 0,
            score_threshold=self.options.score_threshold,
            allowed=self._allowed,
        )
        return tuple(Category(i, self.names[i], self.display_names[i], min(max(s, 0.0), 1.0)) for i, s in chosen)

    def _require(self, mode: RunningMode, method: str) -> None:
        if self._closed:
            raise RunningModeError("this classifier is closed; create a new one")
        if self.options.running_mode is not mode:
            raise RunningModeError(
                f"{method}() needs running_mode {mode.name}, but this classifier was created "
                f"for {self.options.running_mode.name}"
            )

    def classify(self, image: np.ndarray, *, region_of_interest: RegionOfInterest | None = None) -> FrameResult:
        """Classify one RGB image (IMAGE mode). ``region_of_interest`` overrides the option's."""
        self._require(RunningMode.IMAGE, "classify")
        image = check_image(image)
        start = time.perf_counter()
        region = crop_roi(image, region_of_interest or self.options.region_of_interest)
        batch = self._batch([fit(region, self.input_size, self.declaration.resize or "crop", self._shorter)])
        ready = time.perf_counter()
        raw = self._engine.run(batch)[0]
        done = time.perf_counter()
        scores = apply_head(raw, self.declaration.head or "softmax")[0]
        regression = self.declaration.head == "regression"
        return FrameResult(
            width=image.shape[1],
            height=image.shape[0],
            classes=() if regression else self._categories(scores),
            values=tuple(float(v) for v in scores) if regression else (),
            timings_ms={"preprocess": (ready - start) * 1e3, "inference": (done - ready) * 1e3},
        )

    def close(self) -> None:
        """Release the model; later calls raise :class:`RunningModeError`."""
        self._closed = True
        self._engine = None  # type: ignore[assignment]

    def __enter__(self) -> Classifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_CREATE = object()
