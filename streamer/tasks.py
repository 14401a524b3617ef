"""The Classifier task: options and running modes, a thin facade over the inference core.

Call order::

    options = ClassifierOptions(stages="cascade")       # validated here
    with Classifier.create_from_options(options) as c:  # models built/loaded, checked
        result = c.classify(rgb_image)                  # IMAGE mode

``stages`` picks what runs on each frame: ``classify`` (the whole frame),
``detect`` (objects only) or ``cascade`` (objects, then each object's crop
classified, all crops of a frame in one batch). Images are
``[height, width, 3]`` ``uint8`` RGB arrays. Every mode submits to an
:class:`~streamer.inference.backend.LocalBackend` built from the options'
:class:`~streamer.inference.cascade.CascadeConfig`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import TracebackType

import numpy as np

from streamer.errors import ConfigError, RunningModeError
from streamer.frames import Frame, FrameBuffer
from streamer.inference.backend import LocalBackend, Request
from streamer.inference.cascade import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR, STAGES, CascadeConfig
from streamer.models.classifier import ClassifierStage
from streamer.models.detector import DetectorStage
from streamer.models.spec import ClassifierModel
from streamer.pipeline.dispatch import Dispatcher
from streamer.pipeline.loop import InferenceLoop
from streamer.results import FrameResult
from streamer.vision.preprocess import RegionOfInterest, check_image

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DEFAULT_DETECTOR",
    "STAGES",
    "Classifier",
    "ClassifierOptions",
    "ResultCallback",
    "RunningMode",
]

#: LIVE_STREAM callback: ``(result, image, timestamp_ms)``.
ResultCallback = Callable[[FrameResult, np.ndarray, int], None]


class RunningMode(enum.Enum):
    """IMAGE: one image at a time; VIDEO: every frame in order; LIVE_STREAM: async, may drop."""

    IMAGE = "image"
    VIDEO = "video"
    LIVE_STREAM = "live_stream"


@dataclass(frozen=True, kw_only=True)
class ClassifierOptions(CascadeConfig):
    """Everything a :class:`Classifier` needs: the cascade's config and the running mode's; validated on creation.

    ``stages``: ``classify``, ``detect`` or ``cascade`` (see the module).
    ``model`` is the classifier, ``detector`` the detector; each is loaded only
    if ``stages`` uses it. ``max_results`` ``None`` keeps every class over
    ``score_threshold``. ``category_*list`` filter the classifier's classes,
    ``object_*list`` the detector's; each pair is mutually exclusive.
    ``cascade_classes`` names the detector classes whose crops are classified
    (empty: all); ``crop_margin`` widens each crop by that fraction of the box
    on every side. ``display_names_locale`` picks ``labels.<locale>.txt``
    beside the class-names file (``None``: display names are the names).
    ``region_of_interest`` (normalised) is processed instead of the whole
    image; boxes stay in whole-image pixels. ``result_callback`` is required in
    LIVE_STREAM mode and refused in the others. ``cache_dir`` ``None`` means
    ``$STREAMER_CACHE_DIR`` or ``~/.cache/streamer``. ``threads`` caps the CPU
    threads each model's ONNX Runtime session uses (``None``: one per core).
    """

    running_mode: RunningMode = RunningMode.IMAGE
    region_of_interest: RegionOfInterest | None = None
    result_callback: ResultCallback | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.running_mode, RunningMode):
            raise ConfigError(f"running_mode = {self.running_mode!r}; use RunningMode.IMAGE, VIDEO or LIVE_STREAM")
        live = self.running_mode is RunningMode.LIVE_STREAM
        if live and self.result_callback is None:
            raise ConfigError("running_mode LIVE_STREAM needs a result_callback(result, image, timestamp_ms)")
        if not live and self.result_callback is not None:
            raise ConfigError(
                f"result_callback is only used in LIVE_STREAM mode, not {self.running_mode.name}; remove it"
            )

    def cascade_config(self) -> CascadeConfig:
        """The inference core's part of these options (everything but the running mode's)."""
        return CascadeConfig(**{f.name: getattr(self, f.name) for f in fields(CascadeConfig)})


class Classifier:
    """Detects and/or classifies images with ONNX models. Build with :meth:`create_from_options`."""

    def __init__(self, options: ClassifierOptions, *, _token: object = None) -> None:
        if _token is not _CREATE:
            raise TypeError("use Classifier.create_from_options(options) or create_from_model_path(path)")
        self.options = options
        self._backend = LocalBackend(options.cascade_config())
        self._closed = False
        self._last_timestamp: float | None = None
        self._frames = 0
        self._live: tuple[InferenceLoop, FrameBuffer[Frame], Dispatcher[tuple[FrameResult, Frame]]] | None = None
        if options.result_callback is not None:
            callback = options.result_callback
            dispatcher: Dispatcher[tuple[FrameResult, Frame]] = Dispatcher(
                lambda item: callback(item[0], item[1].image, int(item[1].pts_ms)), name="result-callback"
            )
            loop = InferenceLoop(self._backend, lambda result, frame: dispatcher.put((result, frame)), max_batch=1)
            self._live = (loop, loop.add("live", capacity=1), dispatcher)
            loop.start()

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> Classifier:
        """Build (or load from cache) the models, check them against ``options``, warm them up."""
        return cls(options, _token=_CREATE)

    @classmethod
    def create_from_model_path(cls, path: str | Path) -> Classifier:
        """A whole-frame classifier in IMAGE mode for an embedded model name or an ``.onnx`` path."""
        return cls.create_from_options(ClassifierOptions(model=ClassifierModel(model=str(path))))

    @property
    def provider(self) -> str:
        """The execution provider the models run on, e.g. ``CPUExecutionProvider``."""
        return self._backend.provider

    @property
    def backend(self) -> LocalBackend:
        """The inference core this facade submits to."""
        return self._backend

    @property
    def detector(self) -> DetectorStage | None:
        """The loaded detector (``None``: ``stages = "classify"``)."""
        return self._backend.cascade.detector

    @property
    def classifier(self) -> ClassifierStage | None:
        """The loaded classifier (``None``: ``stages = "detect"``)."""
        return self._backend.cascade.classifier

    def _require(self, mode: RunningMode, method: str) -> None:
        if self._closed:
            raise RunningModeError("this classifier is closed; create a new one")
        if self.options.running_mode is not mode:
            raise RunningModeError(
                f"{method}() needs running_mode {mode.name}, but this classifier was created "
                f"for {self.options.running_mode.name}"
            )

    def _next_timestamp(self, timestamp_ms: float) -> None:
        if self._last_timestamp is not None and not timestamp_ms > self._last_timestamp:
            raise RunningModeError(
                f"timestamp_ms must strictly increase: got {timestamp_ms} after {self._last_timestamp}"
            )
        self._last_timestamp = timestamp_ms

    def classify(self, image: np.ndarray, *, region_of_interest: RegionOfInterest | None = None) -> FrameResult:
        """Process one RGB image (IMAGE mode). ``region_of_interest`` overrides the option's."""
        self._require(RunningMode.IMAGE, "classify")
        return self._run(check_image(image), region_of_interest or self.options.region_of_interest)

    def classify_for_video(self, frame: np.ndarray, timestamp_ms: int) -> FrameResult:
        """Process the next frame of a video (VIDEO mode), synchronously; every frame counts.

        ``timestamp_ms`` must strictly increase from call to call; it comes back as ``pts_ms``.
        """
        self._require(RunningMode.VIDEO, "classify_for_video")
        image = check_image(frame)
        self._next_timestamp(timestamp_ms)
        result = self._run(image, self.options.region_of_interest)
        self._frames += 1
        return replace(result, frame=self._frames - 1, pts_ms=float(timestamp_ms))

    def classify_async(self, frame: np.ndarray, timestamp_ms: int) -> None:
        """Hand a live frame over and return at once (LIVE_STREAM mode).

        The result reaches ``result_callback(result, image, timestamp_ms)`` on
        another thread. While the model is busy, a newer frame replaces the one
        waiting, so frames may be dropped but latency stays bounded.
        ``timestamp_ms`` must strictly increase.
        """
        self._require(RunningMode.LIVE_STREAM, "classify_async")
        image = check_image(frame)
        self._next_timestamp(timestamp_ms)
        assert self._live is not None
        self._live[1].put(Frame("live", self._frames, float(timestamp_ms), image, time.monotonic()))
        self._frames += 1

    @property
    def dropped(self) -> int:
        """LIVE_STREAM frames replaced by newer ones before the model got to them."""
        return self._live[1].dropped if self._live is not None else 0

    def _run(self, image: np.ndarray, roi: RegionOfInterest | None) -> FrameResult:
        return self._backend.run([Request("", image, roi)])[0]

    def close(self) -> None:
        """Stop LIVE_STREAM delivery (callbacks queued so far still run), release the models;
        later calls raise :class:`RunningModeError`."""
        if self._live is not None:
            loop, buffer, dispatcher = self._live
            buffer.close()
            loop.stop()
            dispatcher.close()
            self._live = None
        if not self._closed:
            self._backend.close()
        self._closed = True

    def __enter__(self) -> Classifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_CREATE = object()
