"""One loaded image classifier: declaration checked, labels read, batches scored.

Call order: ``stage = ClassifierStage(model, ...)`` (loads and checks the
model, runs it once), then per image or crop ``stage.fit(image)``, then
``stage.scores([fitted, ...])`` for a whole batch in one ``session.run``,
then ``stage.categories(row)`` per row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from streamer.errors import ConfigError, ModelError
from streamer.models.labels import load_display_names, load_labels
from streamer.models.spec import ClassifierModel
from streamer.models.stage import ModelStage
from streamer.results import Category
from streamer.vision.postprocess import apply_head, select
from streamer.vision.preprocess import fit

__all__ = ["ClassifierStage", "class_mask"]


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
    ) -> None:
        super().__init__(model, "classifier", device=device, cache_dir=cache_dir, threads=threads)
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

    def fit(self, image: np.ndarray) -> np.ndarray:
        """``image`` (RGB uint8) brought to the model's input size by the declared resize."""
        return fit(image, self.input_size, self.declaration.resize or "crop", self._shorter)

    def scores(self, fitted: list[np.ndarray]) -> np.ndarray:
        """Scores ``[len(fitted), classes]`` after the head, in one run where the model allows."""
        return apply_head(self.run(self.tensor(fitted))[0], self.declaration.head or "softmax")

    def categories(self, row: np.ndarray) -> tuple[Category, ...]:
        """The best classes of one score row, after allow/deny list, threshold and ``max_results``."""
        chosen = select(row, max_results=self._max_results, score_threshold=self._threshold, allowed=self._allowed)
        return tuple(Category(i, self.names[i], self.display_names[i], min(max(s, 0.0), 1.0)) for i, s in chosen)
