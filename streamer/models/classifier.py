"""One loaded image classifier: declaration checked, labels read, batches scored.

Call order: ``stage = ClassifierStage(model, ...)`` (loads and checks the
model, runs it once), then per image or crop ``stage.fit(image)``, then
``stage.scores([fitted, ...])`` for a whole batch in one ``session.run``,
then ``stage.categories(row)`` per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from streamer.errors import ConfigError, ModelError
from streamer.models.engine import EngineOptions
from streamer.models.graph_preprocess import GraphItem, crop_item, graph_batch, letterbox_item
from streamer.models.labels import load_display_names, load_labels
from streamer.models.spec import ClassifierModel
from streamer.models.stage import ModelStage
from streamer.results import Category
from streamer.vision.postprocess import apply_head, select
from streamer.vision.preprocess import crop_bounds, fit

__all__ = ["ClassifierStage", "Fitted", "class_mask"]

#: an image or crop brought to the classifier's input (:meth:`ClassifierStage.fit`): the pixels, or, where
#: preprocessing runs in the graph, what the graph is to make of which image.
Fitted = np.ndarray | GraphItem


def class_mask(names: list[str], allow: tuple[str, ...], deny: tuple[str, ...], what: str) -> np.ndarray | None:
    """Boolean mask over ``names``: only ``allow`` (if given), or all but ``deny``; ``None`` for all.

    Names the model does not have are a :class:`ConfigError` naming ``what``.
    """
    wanted = allow or deny
    if not wanted:
        return None
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        listed = ", ".join(map(repr, unknown[:10]))
        raise ConfigError(f"{what} names classes the model does not have: {listed}")
    listed_mask = np.isin(np.asarray(names, dtype=object), list(wanted))
    return listed_mask if allow else ~listed_mask


class ClassifierStage(ModelStage[ClassifierModel]):
    """A classifier model ready to score images; owns one :class:`~streamer.models.engine.Engine`."""

    def __init__(
        self,
        model: ClassifierModel,
        *,
        device: str,
        cache_dir: Path | None,
        threads: int | None = None,
        locale: str | None = None,
        allowlist: tuple[str, ...] = (),
        denylist: tuple[str, ...] = (),
        max_results: int | None = 5,
        score_threshold: float = 0.0,
        engine: EngineOptions | None = None,
    ) -> None:
        super().__init__(model, "classifier", device=device, cache_dir=cache_dir, threads=threads, engine=engine)
        declaration, labels_path = self.declaration, self.labels_path
        self._shorter = declaration.resize_shorter or round(min(self.input_size) / 0.875)
        self.regression = declaration.head == "regression"
        count = self.scores([np.zeros((self.input_size[1], self.input_size[0], 3), np.uint8)]).shape[1]
        if labels_path is not None:
            self.names = load_labels(labels_path)
            if len(self.names) != count and not self.regression:
                raise ModelError(
                    f"class-names file {labels_path} has {len(self.names)} names but model "
                    f"{self.engine.path} outputs {count} scores; they must match"
                )
        else:
            self.names = [str(i) for i in range(count)]
        self.display_names = load_display_names(labels_path, self.names, locale)
        what = "category_allowlist" if allowlist else "category_denylist"
        self._allowed = class_mask(self.names, allowlist, denylist, what)
        self._max_results = max_results or 0
        self._threshold = score_threshold

    def fit(self, image: np.ndarray) -> Fitted:
        """``image`` (RGB uint8) brought to the model's input size by the declared resize (with
        :attr:`graph`: what the graph is to do with it)."""
        if self.graph is not None:
            return self._item(image, (0, 0, image.shape[1], image.shape[0]))
        return fit(image, self.input_size, self.declaration.resize or "crop", self._shorter)

    def fit_crop(self, image: np.ndarray, box: np.ndarray, margin: float) -> Fitted | None:
        """The crop of ``box`` (x1, y1, x2, y2 pixels) widened by ``margin`` (as
        :func:`~streamer.vision.preprocess.crop_box`) fitted; ``None`` where it is too small. With
        :attr:`graph` the crop is cut inside the graph, from ``image``."""
        bounds = crop_bounds(image.shape, box, margin)
        if bounds is None:
            return None
        left, top, right, bottom = bounds
        if self.graph is not None:
            return self._item(image, bounds)
        return self.fit(image[top:bottom, left:right])

    def _item(self, image: np.ndarray, box: tuple[int, int, int, int]) -> GraphItem:
        resize = self.declaration.resize or "crop"
        if resize == "letterbox":
            return GraphItem(image, letterbox_item(0, box, self.input_size)[0])
        return GraphItem(image, crop_item(0, box, self.input_size, resize, self._shorter))

    def scores(self, fitted: Sequence[Fitted]) -> np.ndarray:
        """Scores ``[len(fitted), classes]`` after the head, in one run where the model allows; arrays
        given to a stage with :attr:`graph` must be at the input size already."""
        if self.graph is not None:
            size = self.input_size
            items = [
                f if isinstance(f, GraphItem) else GraphItem(f, crop_item(0, (0, 0, *size), size, "stretch", 0))
                for f in fitted
            ]
            return apply_head(self.run(graph_batch(items))[0], self.declaration.head or "softmax")
        arrays = [f for f in fitted if isinstance(f, np.ndarray)]
        if len(arrays) != len(fitted):
            raise ValueError("this classifier preprocesses on the CPU; give it fit()'s arrays")
        return apply_head(self.run(self.tensor(arrays))[0], self.declaration.head or "softmax")

    def categories(self, row: np.ndarray) -> tuple[Category, ...]:
        """The best classes of one score row, after allow/deny list, threshold and ``max_results``."""
        chosen = select(row, max_results=self._max_results, score_threshold=self._threshold, allowed=self._allowed)
        return tuple(Category(i, self.names[i], self.display_names[i], min(max(s, 0.0), 1.0)) for i, s in chosen)
