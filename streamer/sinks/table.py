"""CSV: one row per object per frame, for spreadsheets and pandas.

A detected object gives one row: its box, its detector class, its track id
(empty while tentative or untracked), in a cascade the best second-stage
class of this frame, and its track's settled label (empty until it settles). A whole-frame classification (no
detector) gives one row per frame with the box columns empty and the top
class. A frame with neither (nothing detected) gives no row.
"""

from __future__ import annotations

import csv
from typing import TextIO

from streamer.results import Category, FrameResult

__all__ = ["COLUMNS", "CsvWriter", "result_rows"]

COLUMNS = (
    "stream", "frame", "pts_ms", "object", "x1", "y1", "x2", "y2",
    "object_class_id", "object_name", "object_confidence",
    "class_id", "class_name", "display_name", "confidence",
    "track_id", "label", "label_confidence",
)  # fmt: skip

Cell = str | int | float


def _category(category: Category | None) -> list[Cell]:
    if category is None:
        return ["", "", "", ""]
    return [category.class_id, category.name, category.display_name, round(category.confidence, 6)]


def result_rows(result: FrameResult) -> list[list[Cell]]:
    """The CSV rows of one result, in :data:`COLUMNS` order."""
    head: list[Cell] = [result.stream, result.frame, round(result.pts_ms, 3)]
    if result.objects:
        return [
            [
                *head,
                i,
                *(round(v, 2) for v in obj.box),
                obj.class_id,
                obj.name,
                round(obj.confidence, 6),
                *_category(obj.classes[0] if obj.classes else None),
                "" if obj.track_id is None else obj.track_id,
                "" if obj.label is None else obj.label.name,
                "" if obj.label is None else round(obj.label.confidence, 6),
            ]
            for i, obj in enumerate(result.objects)
        ]
    if result.classes:
        return [[*head, "", "", "", "", "", "", "", "", *_category(result.classes[0]), "", "", ""]]
    return []


class CsvWriter:
    """Write the header now, then :func:`result_rows` of each result."""

    def __init__(self, handle: TextIO) -> None:
        self._writer = csv.writer(handle, lineterminator="\n")
        self._writer.writerow(COLUMNS)

    def write(self, result: FrameResult) -> None:
        self._writer.writerows(result_rows(result))
