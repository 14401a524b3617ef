"""Report files: the confusion picture for many classes, and writes that never leave half a file."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.errors import ConfigError
from streamer.evaluation.metrics import DatasetClass, compute_metrics
from streamer.evaluation.report import confusion_png, write_atomic, write_report


def test_fifty_classes_make_a_large_readable_picture(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    classes = [DatasetClass(f"class number {i} with a rather long label", i, f"c{i}") for i in range(50)]
    true = np.repeat(np.arange(50), 4)
    topk = rng.integers(0, 60, size=(200, 5))  # ids 50..59 are outside the dataset: "other"
    topk[::2, 0] = true[::2]
    report = compute_metrics(true, topk, rng.random(200), classes)
    picture = cv2.imdecode(np.frombuffer(confusion_png(report), np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None
    height, width = picture.shape[:2]
    assert width >= 2000 and height >= 2000, "about 40 pixels per cell or more"
    assert picture.reshape(-1, 3).std(axis=0).max() > 10


def test_write_report_makes_the_folder_and_refuses_a_file(tmp_path: Path) -> None:
    classes = [DatasetClass("x", 0, "x"), DatasetClass("y", 1, "y")]
    report = compute_metrics(np.array([0, 1]), np.array([[0], [0]]), np.array([0.5, 0.75]), classes)
    json_path, png_path = write_report(report, tmp_path / "a" / "b")
    assert json.loads(json_path.read_text(encoding="utf-8"))["confusion"]["matrix"] == [[1, 0, 0], [1, 0, 0]]
    assert cv2.imread(str(png_path)) is not None
    write_report(report, tmp_path / "a" / "b")  # again, over the old files
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["confusion.png", "metrics.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"output folder .*file is a file; give a folder name with -o"):
        write_report(report, tmp_path / "file")


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]  # fails half-way, after the temp file exists
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
