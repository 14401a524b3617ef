"""INT8 precision: the VNNI decision, the agreement measures, config and CLI keys, and real builds of both
embedded models: checked (on this CPU without VNNI they miss the targets and say by how much), unchecked
(they load and give fp32's shapes), and calibrated on flat images (far worse: the check discriminates)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from streamer.cli import _overrides, _parser
from streamer.config import load_config
from streamer.errors import ConfigError, ModelError
from streamer.models import quantize, zoo
from streamer.models.engine import Engine
from streamer.models.spec import ClassifierModel, DetectorModel
from streamer.results import Detections

SKYLAKE_SP = "fpu vme sse sse2 avx avx2 avx512f avx512bw avx512_vnni"
ALDER_LAKE = "fpu sse4_2 avx avx2 avx_vnni"
EPYC_ROME = "fpu sse4_2 avx avx2 fma"
VNNI = quantize.has_vnni(quantize.cpu_flags())
EMBEDDED: dict[str, tuple[str, type[ClassifierModel] | type[DetectorModel]]] = {
    "classifier": ("efficientnet-lite0", ClassifierModel),
    "detector": ("yolov3-tiny", DetectorModel),
}


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


@dataclass(frozen=True)
class Int8Run:
    """One embedded model's int8 build with the check (it fails here), then without it."""

    fp32: Path
    declaration: ClassifierModel | DetectorModel
    error: str  # the checked build's ModelError ("" where it agreed)
    checked: float  # the checked build's agreement, in percent
    left: list[Path]  # what the failed build left in the int8 cache
    build: quantize.Int8Build  # the unchecked build: what it measured, and the model


def _int8_run(task: str, cache_dir: Path, folder: Path) -> Int8Run:
    name, kind = EMBEDDED[task]
    fp32 = zoo.build(name, cache_dir).onnx_path
    declaration = kind(model=name, precision="int8").with_defaults(zoo.EMBEDDED[name].declaration)
    try:
        error, checked = "", quantize.build_int8(fp32, declaration, task, name=name, cache_dir=folder).agreement * 100
    except ModelError as failed:
        error, checked = str(failed), _share(str(failed))
    left = sorted(p for p in (folder / "int8").rglob("*") if p.is_file())
    with pytest.MonkeyPatch.context() as patch:  # the unchecked build on fewer images: it is only loaded
        patch.setattr(quantize, "CALIBRATION_IMAGES", 8)
        patch.setattr(quantize, "CHECK_IMAGES", 8)
        build = quantize.build_int8(fp32, declaration, task, name=name, cache_dir=folder, check=False)
    return Int8Run(fp32, declaration, error, checked, left, build)


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Callable[[str], Int8Run]:
    """Each embedded model's :class:`Int8Run`, made once for the module on first use."""
    runs: dict[str, Int8Run] = {}

    def run(task: str) -> Int8Run:
        if task not in runs:
            runs[task] = _int8_run(task, cache_dir, tmp_path_factory.mktemp(f"int8-{task}"))
        return runs[task]

    return run


def _share(message: str) -> float:
    """The percentage a failed build's message states."""
    found = re.search(r" agrees with fp32 on (\d+\.\d)% of ", message)
    assert found, message
    return float(found.group(1))


@pytest.mark.skipif(VNNI, reason="measured on a CPU without VNNI; with it the builds may well agree")
@pytest.mark.parametrize(("task", "counted", "needed"), [("classifier", "images", 97), ("detector", "boxes", 95)])
def test_int8_of_an_embedded_model_fails_the_check_here_says_by_how_much_and_is_not_cached(
    int8: Callable[[str], Int8Run], task: str, counted: str, needed: int
) -> None:
    run = int8(task)
    name = EMBEDDED[task][0]
    share = _share(run.error)
    assert 0.0 < share < needed
    assert f"int8 {name} agrees with fp32 on {share}% of " in run.error
    of = re.search(
        rf"% of (?:top-1 classes of )?(\d+) {counted} \(needs {needed}%\), calibrated on the shipped samples", run.error
    )
    assert of, run.error
    count = int(of.group(1))
    assert count == quantize.CHECK_IMAGES if task == "classifier" else count > 100  # 160 images; ~260 boxes
    assert f"{task}.precision = 'fp32'" in run.error
    assert run.left == []  # neither model.onnx nor build.json: nothing failing is cached
    assert run.build.unit == counted and run.build.needed == needed / 100  # what the unchecked build measured


@pytest.mark.parametrize("task", ["classifier", "detector"])
def test_without_the_check_the_int8_model_loads_and_gives_fp32_shapes(
    int8: Callable[[str], Int8Run], task: str
) -> None:
    run = int8(task)
    assert 0.0 <= run.build.agreement <= 1.0 and run.build.unit == ("images" if task == "classifier" else "boxes")
    model = onnx.load(str(run.build.path))
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]  # activations and weights
    fp32, candidate = Engine(run.fp32, device="cpu"), Engine(run.build.path, device="cpu")
    feed = quantize._feed(run.declaration, fp32, task)
    tensor = feed.tensor([feed.fit(image)[0] for image in quantize.sample_sources()[:2]])
    expected, got = fp32.run(tensor), candidate.run(tensor)
    assert [o.shape for o in got] == [o.shape for o in expected]
    assert all(o.dtype == np.float32 and np.isfinite(o).all() for o in got)
    produced = {out: node for node in model.graph.node for out in node.output}
    if task == "classifier":  # the whole graph but the last matrix product (the class scores)
        (gemm,) = (node for node in model.graph.node if node.op_type == "Gemm")
        assert gemm.input[1] not in produced  # its weights stay fp32 initializers
        assert ops["Add"] and any(produced[name].op_type == "DequantizeLinear" for name in _inputs(model, "Add"))
    else:  # the convolutions only
        assert all(produced[name].op_type == "DequantizeLinear" for name in _inputs(model, "Conv"))
        assert not any(produced[name].op_type == "DequantizeLinear" for name in _inputs(model, "Sigmoid"))


def _inputs(model: onnx.ModelProto, op_type: str) -> list[str]:
    """The computed inputs (not weights) of every ``op_type`` node."""
    produced = {out for node in model.graph.node for out in node.output}
    return [name for node in model.graph.node if node.op_type == op_type for name in node.input if name in produced]


def test_a_flat_calibration_set_fails_the_check_well_below_the_samples(
    tmp_path: Path, cache_dir: Path, int8: Callable[[str], Int8Run]
) -> None:
    folder = tmp_path / "flat"
    folder.mkdir()
    for value in (0, 128):
        cv2.imwrite(str(folder / f"flat{value}.png"), np.full((240, 320, 3), value, np.uint8))
    samples = int8("classifier")
    model = ClassifierModel(model="efficientnet-lite0", precision="int8", calibration=str(folder))
    declaration = model.with_defaults(zoo.EMBEDDED["efficientnet-lite0"].declaration)
    with pytest.raises(ModelError) as failed:
        quantize.build_int8(samples.fp32, declaration, "classifier", name=model.model, cache_dir=tmp_path)
    message = str(failed.value)
    assert "int8 efficientnet-lite0 agrees with fp32 on" in message
    assert "(needs 97%)" in message
    assert str(folder) in message and "classifier.precision = 'fp32'" in message
    # the check discriminates: calibrated on two flat images, int8 agrees far less than calibrated on the samples
    assert _share(message) < samples.checked - 20
    assert not [p for p in (tmp_path / "int8").rglob("*") if p.is_file()]  # a failed build is not cached
