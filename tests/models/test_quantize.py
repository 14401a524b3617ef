"""INT8 precision: the VNNI decision, the agreement measures, config and CLI keys, and a real build that a
narrow calibration set makes fail with the numbers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.cli import _overrides, _parser
from streamer.config import load_config
from streamer.errors import ConfigError, ModelError
from streamer.models import quantize, zoo
from streamer.models.spec import ClassifierModel
from streamer.results import Detections

SKYLAKE_SP = "fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_vnni"
ALDER_LAKE = "fpu sse4_2 avx avx2 avx_vnni"
EPYC_ROME = "fpu sse4_2 avx avx2 fma"


@pytest.mark.parametrize(
    ("flags", "expected"), [(SKYLAKE_SP, True), (ALDER_LAKE, True), (EPYC_ROME, False), ("", False)]
)
def test_vnni_is_read_from_the_flags(flags: str, expected: bool) -> None:
    assert quantize.has_vnni(flags) is expected


def test_int8_is_the_default_only_on_a_vnni_cpu_running_a_model_it_can_calibrate() -> None:
    assert quantize.default_precision(ALDER_LAKE, cpu_only=True, can_calibrate=True) == "int8"
    assert quantize.default_precision(EPYC_ROME, cpu_only=True, can_calibrate=True) == "fp32"
    assert quantize.default_precision(ALDER_LAKE, cpu_only=False, can_calibrate=True) == "fp32"
    assert quantize.default_precision(ALDER_LAKE, cpu_only=True, can_calibrate=False) == "fp32"


def test_cpu_flags_reads_the_first_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {ALDER_LAKE}\n\nprocessor\t: 1\nflags\t\t: other\n")
    assert quantize.cpu_flags(cpuinfo) == ALDER_LAKE
    assert quantize.cpu_flags(tmp_path / "missing") == ""


def test_top1_agreement_counts_rows_with_the_same_best_class() -> None:
    reference = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    candidate = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9], [0.9, 0.1]])
    assert quantize.top1_agreement(reference, candidate) == 0.75


def _objects(*rows: tuple[float, float, float, float, int]) -> Detections:
    boxes = np.array([r[:4] for r in rows], np.float32).reshape(-1, 4)
    return Detections(boxes, np.ones(len(rows), np.float32), np.array([r[4] for r in rows], np.int64))


def test_boxes_match_by_class_and_overlap_and_extra_boxes_count_against() -> None:
    reference = [_objects((0, 0, 10, 10, 1), (20, 20, 40, 40, 2)), _objects()]
    candidate = [
        _objects((1, 1, 10, 10, 1), (20, 20, 40, 40, 3)),  # first kept (IoU 0.81), second changed class
        _objects((5, 5, 9, 9, 0)),  # a box fp32 did not find
    ]
    share, total = quantize.box_agreement(reference, candidate)
    assert total == 3
    assert share == pytest.approx(1 / 3)
    assert quantize.box_agreement([_objects()], [_objects()]) == (1.0, 0)


def test_each_box_is_matched_once() -> None:
    twins = _objects((0, 0, 10, 10, 1), (0, 0, 10, 10, 1))
    assert quantize.matched_boxes(twins, _objects((0, 0, 10, 10, 1))) == 1


def test_views_are_reproducible_and_differ_by_seed() -> None:
    sources = quantize.sample_sources()
    first, again, other = (quantize.variants(sources, 6, seed) for seed in (1, 1, 2))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(a.shape == b.shape and np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert all(v.dtype == np.uint8 and v.ndim == 3 and min(v.shape[:2]) >= 16 for v in first)


def test_precision_is_a_config_key_and_a_cli_option() -> None:
    config = load_config(env={}, overrides={"classifier.precision": "int8", "detector.calibration": "frames"})
    assert config.classifier_model().precision == "int8"
    assert config.detector_model().calibration == "frames"
    with pytest.raises(ConfigError, match=r"classifier\.precision"):
        load_config(env={}, overrides={"classifier.precision": "int4"})
    args = _parser().parse_args(["models", "list", "--precision", "fp32"])
    assert _overrides(args) == {"classifier.precision": "fp32", "detector.precision": "fp32"}


def test_int8_of_a_users_model_needs_calibration_images(tmp_path: Path) -> None:
    model = ClassifierModel(model=str(tmp_path / "mine.onnx"), precision="int8")
    with pytest.raises(ConfigError, match=r"classifier\.calibration"):
        quantize.for_precision(
            tmp_path / "mine.onnx", model, "classifier", embedded=False, cpu_only=True, cache_dir=tmp_path
        )


def test_fp32_is_the_model_itself(tmp_path: Path) -> None:
    model = ClassifierModel(model="efficientnet-lite0", precision="fp32")
    path = tmp_path / "model.onnx"
    assert quantize.for_precision(path, model, "classifier", embedded=True, cpu_only=True, cache_dir=tmp_path) == path


def test_a_flat_calibration_set_fails_the_agreement_check_and_says_by_how_much(tmp_path: Path, cache_dir: Path) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for value in (0, 128):
        cv2.imwrite(str(folder / f"flat{value}.png"), np.full((240, 320, 3), value, np.uint8))
    entry = zoo.EMBEDDED["efficientnet-lite0"]
    built = zoo.build("efficientnet-lite0", cache_dir)
    model = ClassifierModel(model="efficientnet-lite0", precision="int8", calibration=str(folder))
    with pytest.raises(ModelError) as failed:
        quantize.build_int8(
            built.onnx_path, model.with_defaults(entry.declaration), "classifier", name=model.model, cache_dir=tmp_path
        )
    message = str(failed.value)
    assert "int8 efficientnet-lite0 agrees with fp32 on" in message
    assert "(needs 97%)" in message
    assert str(folder) in message and "classifier.precision = 'fp32'" in message
    share = float(message.split(" agrees with fp32 on ")[1].split("%")[0])
    assert 0.0 <= share < 97.0
    assert not (next((tmp_path / "int8").iterdir()) / "build.json").exists()  # a failed build is not cached
