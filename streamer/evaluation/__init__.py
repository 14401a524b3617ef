"""Model evaluation: how well a classifier labels a labelled image dataset.

Call order::

    samples = load_dataset(Path("photos"))              # class folders or a CSV
    options = ClassifierOptions(max_results=5, score_threshold=0.0)
    with Classifier.create_from_options(options) as classifier:
        report = evaluate(classifier, samples)          # reads, classifies in batches
    write_report(report, Path("eval-photos"))           # metrics.json, confusion.png

The classifier must run the whole-frame ``classify`` stage only, and keep at
least the 5 best classes of each image (``max_results`` >= 5 or ``None``,
``score_threshold`` 0), so that top-5 accuracy can be measured; models with
fewer than 5 classes need all of them. ``streamer eval`` (see
:mod:`streamer.evaluation.command`) builds it that way.

Modules: :mod:`~streamer.evaluation.dataset` (which files, which labels),
:mod:`~streamer.evaluation.labels` (labels to class ids),
:mod:`~streamer.evaluation.metrics` (pure figures),
:mod:`~streamer.evaluation.report` (JSON and PNG files).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamer.errors import ConfigError, ImageError, StreamerError
from streamer.evaluation.dataset import Sample, load_dataset
from streamer.evaluation.labels import map_labels
from streamer.evaluation.metrics import TOP_K, DatasetClass, EvalReport, compute_metrics
from streamer.evaluation.report import write_report
from streamer.inference.backend import Request
from streamer.models.labels import load_aliases
from streamer.sources.images import DEFAULT_LIMITS, ImageLimits, read_image
from streamer.tasks import Classifier

__all__ = ["DatasetClass", "EvalReport", "Sample", "dataset_classes", "evaluate", "load_dataset", "write_report"]

#: ``(images done, images in all)``, called after each batch.
Progress = Callable[[int, int], None]


def dataset_classes(classifier: Classifier, labels: Sequence[str]) -> list[DatasetClass]:
    """The dataset's classes, sorted by label, each matched to the classifier's class id.

    Raises :class:`ConfigError` for labels the model does not know (see
    :func:`~streamer.evaluation.labels.map_labels`), and for a classifier
    that cannot be evaluated: one that detects objects, or has a regression head.
    """
    stage = classifier.classifier
    if stage is None or classifier.detector is not None:
        raise ConfigError(
            f"evaluation needs a whole-frame classifier (stages = 'classify'), not stages = "
            f"{classifier.options.stages!r}"
        )
    if stage.regression:
        raise ConfigError(f"model {stage.engine.path} has a regression head: it gives values, not classes to evaluate")
    where = f"the class names in {stage.labels_path}" if stage.labels_path is not None else "the model's class ids"
    aliases = load_aliases(stage.labels_path, len(stage.names))
    mapping = map_labels(sorted(set(labels)), stage.names, stage.display_names, aliases=aliases, where=where)
    return [DatasetClass(label, class_id, stage.names[class_id]) for label, class_id in sorted(mapping.items())]


def evaluate(
    classifier: Classifier,
    samples: Sequence[tuple[Path, str]],
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    limits: ImageLimits = DEFAULT_LIMITS,
) -> EvalReport:
    """Classify every sample's image and measure the answers against its label.

    ``classifier``: a ``classify``-stage :class:`Classifier` built with
    ``max_results`` >= 5 (or ``None``) and ``score_threshold`` 0 (see the
    module); its running mode does not matter. ``samples``: ``(path, label)``
    pairs, e.g. from :func:`load_dataset`. Images are read with
    :func:`~streamer.sources.images.read_image` and classified
    ``batch_size`` at a time, each refused over ``limits``. An image that cannot be read is skipped and
    listed in ``report.unreadable`` with the reason; if none can be read, an
    :class:`ImageError`. Labels are matched first, so a wrong label fails
    before any image is read.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size = {batch_size}; expected an integer >= 1")
    if not samples:
        raise ConfigError("the dataset has no samples; give at least one labelled image")
    classes = dataset_classes(classifier, [label for _, label in samples])
    stage = classifier.classifier
    assert stage is not None  # dataset_classes checked it
    needed = min(TOP_K, len(stage.names))
    class_of = {c.label: c.class_id for c in classes}
    true_ids: list[int] = []
    topk_ids: list[list[int]] = []
    confidences: list[float] = []
    unreadable: list[tuple[str, str]] = []
    for start in range(0, len(samples), batch_size):
        images: list[np.ndarray] = []
        labels: list[str] = []
        for path, label in samples[start : start + batch_size]:
            try:
                images.append(read_image(Path(path), limits=limits))
            except (StreamerError, OSError) as exc:
                unreadable.append((str(path), str(exc)))
                continue
            labels.append(label)
        results = classifier.backend.run([Request("", image) for image in images]) if images else []
        for label, result in zip(labels, results, strict=True):
            if len(result.classes) < needed:
                raise ConfigError(
                    f"the classifier gave {len(result.classes)} classes for an image, but top-{needed} accuracy "
                    f"needs its {needed} best; build it with max_results >= {TOP_K} (or None), "
                    "score_threshold = 0 and no category allowlist or denylist"
                )
            true_ids.append(class_of[label])
            topk_ids.append([c.class_id for c in result.classes[:needed]])
            confidences.append(result.classes[0].confidence)
        if progress is not None:
            progress(min(start + batch_size, len(samples)), len(samples))
    if not true_ids:
        first = f"; the first: {unreadable[0][0]}: {unreadable[0][1]}" if unreadable else ""
        raise ImageError(f"none of the dataset's {len(samples)} images could be read{first}")
    report = compute_metrics(
        np.array(true_ids, dtype=np.int64),
        np.array(topk_ids, dtype=np.int64),
        np.array(confidences, dtype=np.float64),
        classes,
    )
    return replace(report, unreadable=tuple(unreadable))
