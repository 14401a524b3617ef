"""JSON lines and CSV rows, from hand-made results."""

from __future__ import annotations

import csv
import io
import json

from streamer.results import Category, Detection, Detections, FrameResult, Label
from streamer.sinks.jsonl import JsonlWriter
from streamer.sinks.table import COLUMNS, CsvWriter, result_rows

ESPRESSO = Category(967, "espresso", "Espresso", 0.8)
CUP = Detection((1.0, 2.0, 30.5, 40.25), 41, "cup", 0.75, (ESPRESSO, Category(968, "cup", "Cup", 0.1)))
PERSON = Detection((5.0, 6.0, 7.0, 8.0), 0, "person", 0.5)
SETTLED = Label(967, "espresso", "Espresso", 0.85, votes=2, attempts=3)


def test_a_row_per_object_with_its_best_class_track_and_settled_label() -> None:
    tracked = Detection(CUP.box, 41, "cup", 0.75, CUP.classes, track_id=4, label=SETTLED)
    result = FrameResult(64, 48, objects=Detections.of([tracked, PERSON]), stream="cam", frame=7, pts_ms=233.3333)
    assert result_rows(result) == [
        [
            "cam",
            7,
            233.333,
            0,
            1.0,
            2.0,
            30.5,
            40.25,
            41,
            "cup",
            0.75,
            967,
            "espresso",
            "Espresso",
            0.8,
            4,
            "espresso",
            0.85,
        ],
        ["cam", 7, 233.333, 1, 5.0, 6.0, 7.0, 8.0, 0, "person", 0.5, "", "", "", "", "", "", ""],
    ]


def test_a_row_per_frame_for_whole_frame_classes_and_none_for_an_empty_frame() -> None:
    classified = FrameResult(64, 48, classes=(ESPRESSO,), stream="cam", frame=1, pts_ms=40.0)
    no_object = ["", "", "", "", "", "", "", ""]
    assert result_rows(classified) == [["cam", 1, 40.0, *no_object, 967, "espresso", "Espresso", 0.8, "", "", ""]]
    assert result_rows(FrameResult(64, 48, stream="cam", frame=2)) == []


def test_csv_writer_has_a_header_and_round_trips() -> None:
    handle = io.StringIO()
    writer = CsvWriter(handle)
    writer.write(FrameResult(64, 48, objects=Detections.of([CUP]), stream="a,b", frame=0))
    rows = list(csv.reader(io.StringIO(handle.getvalue())))
    assert tuple(rows[0]) == COLUMNS
    assert rows[1][0] == "a,b" and rows[1][9] == "cup" and len(rows) == 2


def test_jsonl_is_the_wire_format_a_line_each() -> None:
    handle = io.StringIO()
    writer = JsonlWriter(handle)
    results = [FrameResult(64, 48, objects=Detections.of([CUP]), frame=i, pts_ms=i * 40.0) for i in range(3)]
    for result in results:
        writer.write(result)
    lines = handle.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in results]
