"""The cascade: detector, then a per-stream hook, then the classifier on the crops the hook lets through.

Built from :class:`CascadeConfig`, plain frozen data (model declarations and
numbers, no live objects), so another process can build the same thing.
A batch runs in two phases, so a backend can overlap them (batch N+1's
first phase while batch N's second runs)::

    cascade = Cascade(config)
    staged = cascade.first(requests)    # regions, detector, hook, crops fitted to the classifier
    results = cascade.second(staged)    # the classifier on every crop of the batch in one run

``stages`` picks what runs: ``classify`` (the whole frame), ``detect``
(objects only) or ``cascade`` (objects, then each object's crop classified).
The **hook** of a stream (the tracker, :class:`streamer.tracking.ObjectTracker`)
sees each frame's detections twice: ``hook.before(request, objects,
eligible)`` in the first phase returns :class:`Tracked` (the objects with
their track ids and zones, and which of them to classify now), and
``hook.after(tracked, classes)`` in the second gives the objects with their
settled labels. Without a hook, every ``eligible`` object is classified: one
of a ``cascade_classes`` class, by default one the classifier can describe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamer.errors import ConfigError
from streamer.models.classifier import ClassifierStage, Fitted, class_mask
from streamer.models.detector import DetectorStage
from streamer.models.engine import DEVICES, EngineOptions
from streamer.models.spec import ClassifierModel, DetectorModel
from streamer.results import Category, Detections, FrameResult
from streamer.tracking.settle import describable
from streamer.vision.preprocess import RegionOfInterest, check_image, roi_pixels

__all__ = [
    "DEFAULT_CLASSIFIER",
    "DEFAULT_DETECTOR",
    "STAGES",
    "Cascade",
    "CascadeConfig",
    "Hook",
    "HookFactory",
    "Hooks",
    "ModelInfo",
    "Request",
    "Tracked",
]

DEFAULT_CLASSIFIER = "efficientnet-lite0"
DEFAULT_DETECTOR = "yolov3-tiny"
STAGES = ("classify", "detect", "cascade")


@dataclass(frozen=True)
class Tracked:
    """What a stream's hook made of one frame's detections in the first phase."""

    objects: Detections  # the frame's objects with track ids (-1: tentative) and zones
    classify: np.ndarray  # int64 indices into ``objects``: those to classify now
    counts: Mapping[str, Any] = field(default_factory=dict)  # the stream's zone and line counts
    ended: tuple[int, ...] = ()  # tracks that ended at this frame


class Hook(Protocol):
    """A stream's hook; its two calls for one frame may run on two threads (the backend's two phases), and
    the next frame's ``before`` may run before this frame's ``after``."""

    def before(self, request: Request, objects: Detections, eligible: np.ndarray) -> Tracked:
        """``eligible``: a boolean mask of the objects the cascade would classify."""
        ...

    def after(self, tracked: Tracked, classes: Sequence[tuple[Category, ...]]) -> Detections:
        """``classes``: the classifier's answer for each of ``tracked.classify`` (empty: no crop)."""
        ...


#: builds the hook of a stream on its first frame; ``None`` from it: no hook for that stream.
HookFactory = Callable[[str], Hook | None]


class Hooks:
    """The hook of each stream, built by ``factory`` on the stream's first frame. Owned by a backend, not by
    a :class:`Cascade`, so a stream's state (its tracks) survives a model swap. Used on one thread."""

    def __init__(self, factory: HookFactory) -> None:
        self._factory = factory
        self._hooks: dict[str, Hook | None] = {}

    def get(self, stream_id: str) -> Hook | None:
        if stream_id not in self._hooks:
            self._hooks[stream_id] = self._factory(stream_id)
        return self._hooks[stream_id]

    def forget(self, stream_id: str) -> None:
        """Drop a stream's hook (it ended); a new frame of that id builds a new one."""
        self._hooks.pop(stream_id, None)


def _exclusive(allow: tuple[str, ...], deny: tuple[str, ...], prefix: str) -> None:
    if allow and deny:
        raise ConfigError(
            f"{prefix}_allowlist and {prefix}_denylist are both set; they are mutually exclusive, keep one"
        )


@dataclass(frozen=True, kw_only=True)
class CascadeConfig:
    """What the cascade runs, validated on creation; see :class:`~streamer.tasks.ClassifierOptions`
    for the meaning of each field (the running-mode fields stay there)."""

    model: ClassifierModel = field(default_factory=lambda: ClassifierModel(model=DEFAULT_CLASSIFIER))
    detector: DetectorModel = field(default_factory=lambda: DetectorModel(model=DEFAULT_DETECTOR))
    stages: str = "classify"
    max_results: int | None = 5
    score_threshold: float = 0.0
    category_allowlist: tuple[str, ...] = ()
    category_denylist: tuple[str, ...] = ()
    object_allowlist: tuple[str, ...] = ()
    object_denylist: tuple[str, ...] = ()
    cascade_classes: tuple[str, ...] = ()
    crop_margin: float = 0.1
    display_names_locale: str | None = None
    device: str = "auto"
    cache_dir: Path | None = None
    threads: int | None = None
    engine: EngineOptions = field(default_factory=EngineOptions)  # its device and cache_dir: the two above

    def __post_init__(self) -> None:
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
        if not isinstance(self.engine, EngineOptions):
            raise ConfigError(f"engine = {self.engine!r}; expected EngineOptions(...)")


@dataclass(frozen=True)
class Request:
    """One image to run: its stream (``""`` for one-off images), RGB ``uint8`` ``[H, W, 3]``, and a region.
    A bad image is an :class:`~streamer.errors.ImageError` here, before it can fail a batch."""

    stream_id: str
    image: np.ndarray
    region_of_interest: RegionOfInterest | None = None
    whole: bool = False  # skip the detector: classify the whole image (or region), as stages = "classify" does
    pts_ms: float = 0.0  # the frame's time in its stream (the tracker's clock)

    def __post_init__(self) -> None:
        check_image(self.image)


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model as the API shows it; ``version`` is the start of its file's sha256."""

    task: str
    name: str
    version: str
    provider: str
    input_size: tuple[int, int]
    classes: int

    @property
    def tag(self) -> str:
        """``name@version``, as results carry it."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, object]:
        return {
            "task": self.task,
            "name": self.name,
            "version": self.version,
            "provider": self.provider,
            "input_size": list(self.input_size),
            "classes": self.classes,
        }


@dataclass
class Staged:
    """A batch between the two phases: what the classifier still has to do."""

    requests: Sequence[Request]
    objects: list[Detections]
    crops: list[Fitted]  # fitted to the classifier's input
    owners: list[tuple[int, int]]  # (image, object) of each crop; object -1: the whole region
    timings: dict[str, float]
    tracked: dict[int, tuple[Hook, Tracked]] = field(default_factory=dict)  # image -> its stream's hook's view


class Cascade:
    """The models of one :class:`CascadeConfig`, loaded, checked and warmed up; see the module."""

    def __init__(self, config: CascadeConfig) -> None:
        self.config = c = config
        self.detector: DetectorStage | None = None
        self.classifier: ClassifierStage | None = None
        if c.stages != "classify":
            self.detector = DetectorStage(
                c.detector,
                device=c.device,
                cache_dir=c.cache_dir,
                threads=c.threads,
                allowlist=c.object_allowlist,
                denylist=c.object_denylist,
                engine=c.engine,
            )
        if c.stages != "detect":
            self.classifier = ClassifierStage(
                c.model,
                device=c.device,
                cache_dir=c.cache_dir,
                threads=c.threads,
                locale=c.display_names_locale,
                allowlist=c.category_allowlist,
                denylist=c.category_denylist,
                max_results=c.max_results,
                score_threshold=c.score_threshold,
                engine=c.engine,
            )
        if self.detector is not None and self.classifier is not None and self.classifier.regression:
            raise ConfigError(
                "a regression head gives values, not classes, so it cannot label objects; "
                "use stages = 'classify' for it"
            )
        self._second_stage: np.ndarray | None = None
        if self.detector is not None and self.classifier is not None:
            self._second_stage = (
                class_mask(self.detector.names, c.cascade_classes, (), "cascade_classes")
                if c.cascade_classes
                else describable(self.detector.names, self.classifier.names)
            )
        self._names = tuple(self.detector.names) if self.detector is not None else ()
        self.models = [
            ModelInfo(
                task,
                Path(stage.declaration.model).name,
                stage.version,
                stage.provider,
                stage.input_size,
                len(stage.names),
            )
            for task, stage in (("detector", self.detector), ("classifier", self.classifier))
            if stage is not None
        ]
        self._tags = {m.task: m.tag for m in self.models}

    @property
    def provider(self) -> str:
        """The execution provider the models run on, e.g. ``CPUExecutionProvider``."""
        return self.models[0].provider

    def _hook(self, request: Request, hooks: Hooks | None) -> Hook | None:
        return hooks.get(request.stream_id) if hooks is not None and request.stream_id else None

    def first(self, requests: Sequence[Request], hooks: Hooks | None = None) -> Staged:
        """Regions, detector, the streams' ``hooks``, crops: everything before the classifier's run."""
        timings = {"preprocess": 0.0, "inference": 0.0}  # inference: the model runs and their decoding
        clock = time.perf_counter()

        def lap(key: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            timings[key] += (now - clock) * 1e3
            clock = now

        offsets = [roi_pixels(r.image.shape, r.region_of_interest) for r in requests]
        regions = [r.image[y1:y2, x1:x2] for r, (x1, y1, x2, y2) in zip(requests, offsets, strict=True)]
        objects = [Detections.empty() for _ in requests]
        crops: list[Fitted] = []
        owners: list[tuple[int, int]] = []
        tracked: dict[int, tuple[Hook, Tracked]] = {}
        detected = [i for i, r in enumerate(requests) if not r.whole] if self.detector is not None else []
        if self.detector is not None and detected:
            tensor, boxes = self.detector.prepare([regions[i] for i in detected])
            lap("preprocess")
            outputs = self.detector.run(tensor)
            for k, i in enumerate(detected):
                found = self.detector.decode(outputs, k, boxes[k], (regions[i].shape[1], regions[i].shape[0]))
                found = found.with_labels(names=tuple(self._names[c] for c in found.class_ids.tolist()))
                objects[i] = found.shifted(offsets[i][0], offsets[i][1])
            lap("inference")
            for i in detected:
                found = objects[i]
                eligible = (
                    np.zeros(len(found), bool) if self._second_stage is None else self._second_stage[found.class_ids]
                )
                chosen = np.flatnonzero(eligible)
                hook = self._hook(requests[i], hooks)
                if hook is not None:
                    view = hook.before(requests[i], found, eligible)
                    tracked[i] = (hook, view)
                    objects[i], chosen = view.objects, view.classify
                if self.classifier is not None:
                    x, y = offsets[i][0], offsets[i][1]
                    local = objects[i].boxes - np.array([x, y, x, y], np.float32)  # in region pixels
                    for j in chosen.tolist():
                        fitted = self.classifier.fit_crop(regions[i], local[j], self.config.crop_margin)
                        if fitted is not None:
                            crops.append(fitted)
                            owners.append((i, j))
            lap("preprocess")
        if self.classifier is not None and len(detected) < len(requests):
            for i, request in enumerate(requests):
                if self.detector is None or request.whole:  # the whole image (or region) is classified
                    crops.append(self.classifier.fit(regions[i]))
                    owners.append((i, -1))
            lap("preprocess")
        return Staged(requests, objects, crops, owners, timings, tracked)

    def second(self, staged: Staged) -> list[FrameResult]:
        """The classifier on every crop of the batch in one run, then the results."""
        timings = staged.timings
        frame_classes: list[tuple[Category, ...]] = [() for _ in staged.requests]
        frame_values: list[tuple[float, ...]] = [() for _ in staged.requests]
        objects = list(staged.objects)
        object_classes: list[list[tuple[Category, ...]]] = [[()] * len(found) for found in objects]
        if self.classifier is not None and staged.crops:
            clock = time.perf_counter()
            scores = self.classifier.scores(staged.crops)
            for (i, j), row in zip(staged.owners, scores, strict=True):
                if j < 0 and self.classifier.regression:
                    frame_values[i] = tuple(float(v) for v in row)
                elif j < 0:
                    frame_classes[i] = self.classifier.categories(row)
                else:
                    object_classes[i][j] = self.classifier.categories(row)
            if self.detector is not None:
                objects = [
                    found.with_labels(classes=tuple(classes)) if found and any(classes) else found
                    for found, classes in zip(objects, object_classes, strict=True)
                ]
            timings["inference"] += (time.perf_counter() - clock) * 1e3
        for i, (hook, view) in staged.tracked.items():
            objects[i] = hook.after(
                Tracked(objects[i], view.classify, view.counts, view.ended),
                [object_classes[i][j] for j in view.classify.tolist()],
            )
        return [
            FrameResult(
                width=request.image.shape[1],
                height=request.image.shape[0],
                classes=frame_classes[i],
                objects=objects[i],
                values=frame_values[i],
                timings_ms=dict(timings),
                models=self._tags,
                counts=staged.tracked[i][1].counts if i in staged.tracked else {},
                ended=staged.tracked[i][1].ended if i in staged.tracked else (),
            )
            for i, request in enumerate(staged.requests)
        ]

    def run(self, requests: Sequence[Request], hooks: Hooks | None = None) -> list[FrameResult]:
        """Both phases on one thread."""
        return self.second(self.first(requests, hooks))
