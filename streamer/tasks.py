"""The Classifier task: options, stages, running modes.

Call order::

    options = ClassifierOptions(stages="cascade")       # validated here
    with Classifier.create_from_options(options) as c:  # models built/loaded, checked
        result = c.classify(rgb_image)                  # IMAGE mode

``stages`` picks what runs on each frame: ``classify`` (the whole frame),
``detect`` (objects only) or ``cascade`` (objects, then each object's crop
classified, all crops of a frame in one batch). Images are
``[height, width, 3]`` ``uint8`` RGB arrays.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

import numpy as np

from streamer.errors import ConfigError, RunningModeError
from streamer.models.classifier import ClassifierStage, class_mask
from streamer.models.detector import DetectorStage
from streamer.models.engine import DEVICES
from streamer.models.spec import ClassifierModel, DetectorModel
from streamer.pipeline.dispatch import Dispatcher
from streamer.pipeline.framebuffer import FrameBuffer
from streamer.pipeline.loop import InferenceLoop
from streamer.results import Category, Detection, FrameResult
from streamer.sources.base import Frame
from streamer.vision.preprocess import RegionOfInterest, check_image, crop_box, roi_pixels

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DEFAULT_DETECTOR",
    "STAGES",
    "Classifier",
    "ClassifierOptions",
    "ResultCallback",
    "RunningMode",
]

DEFAULT_CLASSIFIER = "efficientnet-lite0"
DEFAULT_DETECTOR = "yolov3-tiny"
STAGES = ("classify", "detect", "cascade")

#: LIVE_STREAM callback: ``(result, image, timestamp_ms)``.
ResultCallback = Callable[[FrameResult, np.ndarray, int], None]


class RunningMode(enum.Enum):
    """IMAGE: one image at a time; VIDEO: every frame in order; LIVE_STREAM: async, may drop."""

    IMAGE = "image"
    VIDEO = "video"
    LIVE_STREAM = "live_stream"


def _exclusive(allow: tuple[str, ...], deny: tuple[str, ...], prefix: str) -> None:
    if allow and deny:
        raise ConfigError(
            f"{prefix}_allowlist and {prefix}_denylist are both set; they are mutually exclusive, keep one"
        )


@dataclass(frozen=True, kw_only=True)
class ClassifierOptions:
    """Everything a :class:`Classifier` needs; validated on creation.

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

    model: ClassifierModel = field(default_factory=lambda: ClassifierModel(model=DEFAULT_CLASSIFIER))
    detector: DetectorModel = field(default_factory=lambda: DetectorModel(model=DEFAULT_DETECTOR))
    stages: str = "classify"
    running_mode: RunningMode = RunningMode.IMAGE
    max_results: int | None = 5
    score_threshold: float = 0.0
    category_allowlist: tuple[str, ...] = ()
    category_denylist: tuple[str, ...] = ()
    object_allowlist: tuple[str, ...] = ()
    object_denylist: tuple[str, ...] = ()
    cascade_classes: tuple[str, ...] = ()
    crop_margin: float = 0.1
    display_names_locale: str | None = None
    region_of_interest: RegionOfInterest | None = None
    result_callback: ResultCallback | None = None
    device: str = "auto"
    cache_dir: Path | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.running_mode, RunningMode):
            raise ConfigError(f"running_mode = {self.running_mode!r}; use RunningMode.IMAGE, VIDEO or LIVE_STREAM")
        if self.stages not in STAGES:
            raise ConfigError(f"stages = {self.stages!r} is not allowed; use one of: {', '.join(STAGES)}")
        if self.max_results is not None and (not isinstance(self.max_results, int) or self.max_results < 1):
            raise ConfigError(f"max_results = {self.max_results!r}; expected an integer >= 1, or None for all")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold = {self.score_threshold!r}; expected a number in [0, 1]")
        _exclusive(self.category_allowlist, self.category_denylist, "category")
        _exclusive(self.object_allowlist, self.object_denylist, "object")
        if self.cascade_classes and self.stages != "cascade":
            raise ConfigError(f"cascade_classes is set but stages = {self.stages!r}; use stages = 'cascade'")
        if not 0.0 <= self.crop_margin <= 1.0:
            raise ConfigError(f"crop_margin = {self.crop_margin!r}; expected a fraction of the box in [0, 1]")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ConfigError(f"threads = {self.threads!r}; expected an integer >= 1, or None for one per core")
        if self.device not in DEVICES:
            raise ConfigError(f"device = {self.device!r} is not allowed; use one of: {', '.join(DEVICES)}")
        live = self.running_mode is RunningMode.LIVE_STREAM
        if live and self.result_callback is None:
            raise ConfigError("running_mode LIVE_STREAM needs a result_callback(result, image, timestamp_ms)")
        if not live and self.result_callback is not None:
            raise ConfigError(
                f"result_callback is only used in LIVE_STREAM mode, not {self.running_mode.name}; remove it"
            )


class Classifier:
    """Detects and/or classifies images with ONNX models. Build with :meth:`create_from_options`."""

    def __init__(self, options: ClassifierOptions, *, _token: object = None) -> None:
        if _token is not _CREATE:
            raise TypeError("use Classifier.create_from_options(options) or create_from_model_path(path)")
        self.options = o = options
        self.detector: DetectorStage | None = None
        self.classifier: ClassifierStage | None = None
        if o.stages != "classify":
            self.detector = DetectorStage(
                o.detector,
                device=o.device,
                cache_dir=o.cache_dir,
                threads=o.threads,
                allowlist=o.object_allowlist,
                denylist=o.object_denylist,
            )
        if o.stages != "detect":
            self.classifier = ClassifierStage(
                o.model,
                device=o.device,
                cache_dir=o.cache_dir,
                threads=o.threads,
                locale=o.display_names_locale,
                allowlist=o.category_allowlist,
                denylist=o.category_denylist,
                max_results=o.max_results,
                score_threshold=o.score_threshold,
            )
        if self.detector is not None and self.classifier is not None and self.classifier.regression:
            raise ConfigError(
                "a regression head gives values, not classes, so it cannot label objects; "
                "use stages = 'classify' for it"
            )
        self._second_stage: np.ndarray | None = None
        if self.detector is not None and o.cascade_classes:
            self._second_stage = class_mask(self.detector.names, o.cascade_classes, (), "cascade_classes")
        self._closed = False
        self._last_timestamp: float | None = None
        self._frames = 0
        self._live: tuple[InferenceLoop, FrameBuffer[Frame], Dispatcher[tuple[FrameResult, Frame]]] | None = None
        if o.result_callback is not None:
            callback = o.result_callback
            dispatcher: Dispatcher[tuple[FrameResult, Frame]] = Dispatcher(
                lambda item: callback(item[0], item[1].image, int(item[1].pts_ms)), name="result-callback"
            )
            loop = InferenceLoop(self.process, lambda result, frame: dispatcher.put((result, frame)), max_batch=1)
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
        stage = self.classifier or self.detector
        if stage is None:
            raise RunningModeError("this classifier is closed; create a new one")
        return stage.engine.provider

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
        return self._process([check_image(image)], region_of_interest or self.options.region_of_interest)[0]

    def classify_for_video(self, frame: np.ndarray, timestamp_ms: int) -> FrameResult:
        """Process the next frame of a video (VIDEO mode), synchronously; every frame counts.

        ``timestamp_ms`` must strictly increase from call to call; it comes back as ``pts_ms``.
        """
        self._require(RunningMode.VIDEO, "classify_for_video")
        image = check_image(frame)
        self._next_timestamp(timestamp_ms)
        result = self._process([image], self.options.region_of_interest)[0]
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

    def process(
        self, images: list[np.ndarray], *, region_of_interest: RegionOfInterest | None = None
    ) -> list[FrameResult]:
        """Run the stages on a batch of RGB frames at once, whatever the running mode.

        The entry of :class:`~streamer.pipeline.pipeline.Pipeline` and other
        batching callers: one detector run for all frames, one classifier run
        for all crops. Results carry no stream, frame index or timestamp.
        """
        if self._closed:
            raise RunningModeError("this classifier is closed; create a new one")
        checked = [check_image(image) for image in images]
        return self._process(checked, region_of_interest or self.options.region_of_interest)

    def _process(self, images: list[np.ndarray], roi: RegionOfInterest | None) -> list[FrameResult]:
        """Run the stages on a batch of frames: one detector run, one classifier run for all crops."""
        timings = {"preprocess": 0.0, "inference": 0.0}  # inference: the model runs and their decoding
        clock = time.perf_counter()

        def lap(key: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[key] += (now - clock) * 1e3
            clock = now

        offsets = [roi_pixels(image.shape, roi) for image in images]
        regions = [image[y1:y2, x1:x2] for image, (x1, y1, x2, y2) in zip(images, offsets, strict=True)]
        objects: list[list[Detection]] = [[] for _ in images]
        crops: list[np.ndarray] = []
        owners: list[tuple[int, int]] = []  # (frame, object) of each crop
        if self.detector is not None:
            tensor, boxes = self.detector.prepare(regions)
            lap("preprocess")
            outputs = self.detector.run(tensor)
            lap("inference")
            for i, region in enumerate(regions):
                found = self.detector.decode(outputs, i, boxes[i], (region.shape[1], region.shape[0]))
                dx, dy = offsets[i][0], offsets[i][1]
                for box, score, class_id in zip(found.boxes, found.scores, found.class_ids, strict=True):
                    objects[i].append(
                        Detection(
                            (float(box[0] + dx), float(box[1] + dy), float(box[2] + dx), float(box[3] + dy)),
                            int(class_id),
                            self.detector.names[int(class_id)],
                            float(score),
                        )
                    )
                    if self.classifier is not None and (self._second_stage is None or self._second_stage[class_id]):
                        crop = crop_box(region, box, self.options.crop_margin)
                        if crop is not None:
                            crops.append(crop)
                            owners.append((i, len(objects[i]) - 1))
            lap("inference")
        elif self.classifier is not None:
            crops = regions
            owners = [(i, -1) for i in range(len(regions))]
        frame_classes: list[tuple[Category, ...]] = [() for _ in images]
        frame_values: list[tuple[float, ...]] = [() for _ in images]
        if self.classifier is not None and crops:
            fitted = [self.classifier.fit(crop) for crop in crops]
            lap("preprocess")
            scores = self.classifier.scores(fitted)
            lap("inference")
            for (i, j), row in zip(owners, scores, strict=True):
                if j < 0 and self.classifier.regression:
                    frame_values[i] = tuple(float(v) for v in row)
                elif j < 0:
                    frame_classes[i] = self.classifier.categories(row)
                else:
                    obj = objects[i][j]
                    objects[i][j] = Detection(
                        obj.box, obj.class_id, obj.name, obj.confidence, self.classifier.categories(row)
                    )
            lap("inference")
        return [
            FrameResult(
                width=image.shape[1],
                height=image.shape[0],
                classes=frame_classes[i],
                objects=tuple(objects[i]),
                values=frame_values[i],
                timings_ms=dict(timings),
            )
            for i, image in enumerate(images)
        ]

    def close(self) -> None:
        """Stop LIVE_STREAM delivery (callbacks queued so far still run), release the models;
        later calls raise :class:`RunningModeError`."""
        if self._live is not None:
            loop, buffer, dispatcher = self._live
            buffer.close()
            loop.stop()
            dispatcher.close()
            self._live = None
        self._closed = True
        self.detector = self.classifier = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_CREATE = object()
