"""The GPU engine's parts that run anywhere: options, provider options, TensorRT cache keys, IO binding
with batch buckets, and preprocessing inside the ONNX graph, all on the CPU provider against the CPU path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamer.config import load_config
from streamer.errors import ConfigError
from streamer.inference.cascade import Cascade, CascadeConfig, Request
from streamer.models import zoo
from streamer.models.classifier import ClassifierStage
from streamer.models.detector import DetectorStage
from streamer.models.engine import (
    Engine,
    EngineOptions,
    batch_plan,
    provider_list,
    tensorrt_cache_key,
    tensorrt_profile,
)
from streamer.models.graph_preprocess import (
    GraphItem,
    crop_item,
    graph_batch,
    letterbox_item,
    pack_frames,
    prepend,
    preprocess_graph,
    tensor_graph,
)
from streamer.models.spec import NORMALIZATIONS, ClassifierModel, DetectorModel
from streamer.results import Detections
from streamer.sources.images import read_image
from streamer.vision.nms import iou_matrix
from streamer.vision.preprocess import letterbox, resize_center_crop, to_tensor
from tests.conftest import SAMPLES

PHOTOS = sorted(SAMPLES.glob("*.jpg"))


PLACES = ("cpu", "graph")


@pytest.fixture(scope="module")
def detector_path(cache_dir: Path) -> Path:
    return zoo.build("yolov3-tiny", cache_dir).onnx_path


@pytest.fixture(scope="module")
def classifier_path(cache_dir: Path) -> Path:
    return zoo.build("efficientnet-lite0", cache_dir).onnx_path


def _both(stage: Any, model: ClassifierModel | DetectorModel, cache_dir: Path) -> Any:
    """``stage`` of ``model`` preprocessing on the CPU, then in the graph."""
    return tuple(stage(model, device="cpu", cache_dir=cache_dir, engine=EngineOptions(preprocess=p)) for p in PLACES)


@pytest.fixture(scope="module")
def classifiers(cache_dir: Path) -> tuple[ClassifierStage, ClassifierStage]:
    """The embedded classifier preprocessing on the CPU and in the graph."""
    return _both(ClassifierStage, ClassifierModel(model="efficientnet-lite0"), cache_dir)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def detectors(cache_dir: Path) -> tuple[DetectorStage, DetectorStage]:
    return _both(DetectorStage, DetectorModel(model="yolov3-tiny"), cache_dir)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def street() -> list[np.ndarray]:
    """Every 6th of the first 48 frames of samples/street.mp4, decoded by PyAV, RGB."""
    with av.open(str(SAMPLES / "street.mp4")) as container:
        return [
            f.to_ndarray(format="rgb24")
            for i, f in zip(range(48), container.decode(video=0), strict=False)
            if i % 6 == 0
        ]


# --- options ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"device_id": -1}, r"engine.device_id = -1; expected an integer >= 0"),
        ({"device_id": True}, r"engine.device_id = True"),
        ({"buckets": (4, 2)}, r"engine.buckets = \[4, 2\]; expected increasing batch sizes >= 1"),
        ({"buckets": ()}, r"engine.buckets = \[\]"),
        ({"buckets": (0, 1)}, r"engine.buckets = \[0, 1\]"),
        ({"preprocess": "gpu"}, r"engine.preprocess = 'gpu' is not allowed; use one of: auto, cpu, graph"),
        ({"device": "gpu"}, r"device = 'gpu' is not allowed"),
        ({"tensorrt_fp16": "yes"}, r"engine.tensorrt_fp16 = 'yes'; expected true or false"),
        ({"cuda_graphs": True, "preprocess": "graph"}, r"engine.cuda_graphs needs fixed shapes"),
        ({"cuda_graphs": True, "io_binding": False}, r"engine.cuda_graphs replays bound buffers"),
    ],
)
def test_bad_options_name_the_key(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineOptions(**values)  # type: ignore[arg-type]


def test_auto_binds_and_preprocesses_in_the_graph_only_on_a_gpu() -> None:
    auto = EngineOptions()
    assert not auto.binds("CPUExecutionProvider") and not auto.graph_preprocess("CPUExecutionProvider")
    for gpu in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        assert auto.binds(gpu) and auto.graph_preprocess(gpu)
    forced = EngineOptions(io_binding=True, preprocess="graph")
    assert forced.binds("CPUExecutionProvider") and forced.graph_preprocess("CPUExecutionProvider")
    assert not EngineOptions(io_binding=False, preprocess="cpu").binds("CUDAExecutionProvider")


def test_engine_section_of_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[engine]\ndevice_id = 1\ntensorrt_fp16 = false\nbuckets = [1, 4, 16]\npreprocess = 'graph'\n")
    config = load_config(path, env={"STREAMER_ENGINE_IO_BINDING": "true"}, overrides={"device": "cpu"})
    options = config.cascade_config().engine
    assert options == EngineOptions(
        device="cpu",
        device_id=1,
        tensorrt_fp16=False,
        io_binding=True,
        buckets=(1, 4, 16),
        preprocess="graph",
        cache_dir=config.cache_dir,
    )
    assert load_config(env={}).engine_options() == EngineOptions(), "unset: the defaults, CPU behaviour unchanged"
    with pytest.raises(ConfigError, match=r"engine.buckets = \[8, 2\]"):
        load_config(env={"STREAMER_ENGINE_BUCKETS": "8,2"})
    with pytest.raises(ConfigError, match=r"engine.preprocess = 'gpu' \(from STREAMER_ENGINE_PREPROCESS\)"):
        load_config(env={"STREAMER_ENGINE_PREPROCESS": "gpu"})


# --- provider options and TensorRT caches ------------------------------------------------------------------


def test_provider_options() -> None:
    cpu = ("CPUExecutionProvider",)
    assert provider_list(cpu, EngineOptions()) == [("CPUExecutionProvider", {})]
    cuda = provider_list(("CUDAExecutionProvider", *cpu), EngineOptions(device_id=2, cuda_graphs=True))
    assert cuda == [("CUDAExecutionProvider", {"device_id": "2", "enable_cuda_graph": "1"}), cpu_entry()]
    assert provider_list(("CUDAExecutionProvider",), EngineOptions())[0][1] == {"device_id": "0"}
    profile = tensorrt_profile("images", ("batch", 3, 416, 416), (1, 2, 4, 8))
    trt = provider_list(
        ("TensorrtExecutionProvider", "CUDAExecutionProvider", *cpu),
        EngineOptions(device_id=1),
        tensorrt_cache=Path("/cache/tensorrt/abc"),
        profile=profile,
    )
    assert [name for name, _ in trt] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert trt[0][1] == {
        "device_id": "1",
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": "/cache/tensorrt/abc",
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": "/cache/tensorrt/abc",
        "trt_profile_min_shapes": "images:1x3x416x416",
        "trt_profile_opt_shapes": "images:8x3x416x416",
        "trt_profile_max_shapes": "images:8x3x416x416",
    }
    fp32 = provider_list(("TensorrtExecutionProvider",), EngineOptions(tensorrt_fp16=False))
    assert fp32 == [("TensorrtExecutionProvider", {"device_id": "0", "trt_fp16_enable": "False"})], "no cache asked"


def cpu_entry() -> tuple[str, dict[str, str]]:
    return ("CPUExecutionProvider", {})


def test_profile_needs_fixed_image_axes() -> None:
    assert tensorrt_profile("x", ("n", 3, None, None), (1, 32)) == {}
    assert tensorrt_profile("x", ("n", 1000), (2, 32))["trt_profile_min_shapes"] == "x:2x1000"


def test_the_tensorrt_cache_changes_with_model_gpu_and_version_only() -> None:
    base = {"model_sha256": "a" * 64, "gpu": "NVIDIA H200", "tensorrt": "100900", "fp16": True}
    key = tensorrt_cache_key(**base)  # type: ignore[arg-type]
    assert key == tensorrt_cache_key(**base), "unchanged: the same folder, the engine is reused"  # type: ignore[arg-type]
    assert key == tensorrt_cache_key(**{**base, "gpu": " NVIDIA H200\n"}), "as the driver spells it"  # type: ignore[arg-type]
    for change in ({"model_sha256": "b" * 64}, {"gpu": "NVIDIA L4"}, {"tensorrt": "101100"}, {"fp16": False}):
        assert tensorrt_cache_key(**{**base, **change}) != key, change  # type: ignore[arg-type]
    profiled = tensorrt_cache_key(**base, profile={"trt_profile_max_shapes": "x:32x3x8x8"})  # type: ignore[arg-type]
    assert profiled != key


# --- IO binding -------------------------------------------------------------------------------------------


def test_batch_plan_pads_to_the_next_bucket_and_splits_above_the_largest() -> None:
    buckets = (1, 2, 4, 8)
    assert batch_plan(1, buckets) == [(0, 1, 1)]
    assert batch_plan(3, buckets) == [(0, 3, 4)]
    assert batch_plan(5, buckets) == [(0, 5, 8)]
    assert batch_plan(8, buckets) == [(0, 8, 8)]
    assert batch_plan(9, buckets) == [(0, 8, 8), (8, 9, 1)]
    assert batch_plan(19, buckets) == [(0, 8, 8), (8, 16, 8), (16, 19, 4)]
    assert batch_plan(3, (4,)) == [(0, 3, 4)]


@pytest.mark.parametrize("model", ["classifier", "detector"])
def test_io_binding_gives_the_plain_run_outputs(model: str, classifier_path: Path, detector_path: Path) -> None:
    path, side = (classifier_path, 224) if model == "classifier" else (detector_path, 416)
    plain = Engine(path, device="cpu")
    bound = Engine(path, options=EngineOptions(device="cpu", io_binding=True, buckets=(1, 2, 4, 8)))
    assert bound.binding and not plain.binding
    rng = np.random.default_rng(7)
    for size in (1, 3, 5, 9):
        batch = rng.uniform(-1, 1, (size, 3, side, side)).astype(np.float32)
        ours, theirs = bound.run(batch), plain.run(batch)
        assert [o.shape for o in ours] == [t.shape for t in theirs]
        for o, t in zip(ours, theirs, strict=True):
            np.testing.assert_allclose(o, t, atol=1e-5, rtol=1e-5)
    assert sorted(key[0] for key in bound._staging) == [1, 4, 8], "3 -> 4, 5 -> 8, 9 -> 8 + 1"


def test_a_fixed_batch_model_is_not_bucketed(tmp_path: Path) -> None:
    from tests.conftest import channel_mean_model

    engine = Engine(channel_mean_model(tmp_path / "m.onnx"), options=EngineOptions(device="cpu", io_binding=True))
    image = np.full((1, 3, 4, 4), 2.0, np.float32)
    assert engine.max_batch == 1
    np.testing.assert_allclose(engine.run(image)[0], [[2.0, 2.0, 2.0]])
    assert [key[0] for key in engine._staging] == [1]


# --- preprocessing in the graph ----------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", sorted(NORMALIZATIONS))
@pytest.mark.parametrize(("layout", "bgr"), [("nchw", False), ("nhwc", True), ("nchw", True)])
def test_in_graph_colour_normalisation_and_layout_match_to_tensor(
    normalization: str, layout: str, bgr: bool, classifier_path: Path
) -> None:
    mean, std = NORMALIZATIONS[normalization]
    images = list(np.random.default_rng(3).integers(0, 256, (3, 6, 5, 3), dtype=np.uint8))
    for dtype in (np.dtype(np.float32), np.dtype(np.uint8)):
        graph = tensor_graph(size=(5, 6), mean=mean, std=std, layout=layout, bgr=bgr, dtype=dtype)
        engine = Engine(classifier_path, device="cpu", graph=graph.SerializeToString())
        ours = engine.run(np.stack(images))[0]
        expected = to_tensor(images, mean=mean, std=std, layout=layout, bgr=bgr, dtype=dtype)
        assert ours.dtype == expected.dtype and ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)


def _graph_pixels(resize: str, rows: list[GraphItem], size: tuple[int, int], path: Path) -> np.ndarray:
    """The graph's resized pixels (``none`` normalisation, NHWC float) for ``rows``."""
    graph = preprocess_graph(
        size=size, resize=resize, mean=(0.0,) * 3, std=(1.0,) * 3, layout="nhwc", bgr=False, dtype=np.dtype("f4")
    )
    batch = graph_batch(rows)
    return Engine(path, device="cpu", graph=graph.SerializeToString()).run(batch.items, {"frames": batch.frames})[0]


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_in_graph_letterbox_is_within_a_grey_level_of_opencv(photo: Path, detector_path: Path) -> None:
    """cv2.resize (INTER_LINEAR) works in fixed point on uint8 (11-bit weights, its own rounding); the graph's
    bilinear ``Resize`` in float, rounded once: they differ by at most one grey level, on few pixels."""
    image = read_image(photo)
    row, box = letterbox_item(0, (0, 0, image.shape[1], image.shape[0]), (416, 416))
    ours = _graph_pixels("letterbox", [GraphItem(image, row)], (416, 416), detector_path)[0]
    expected, expected_box = letterbox(image, (416, 416), 127)
    assert box == expected_box
    difference = np.abs(ours - expected.astype(np.float32))
    assert difference.max() <= 1.0
    assert (difference > 0).mean() < 0.2


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_in_graph_antialiased_crop_is_within_two_grey_levels_of_the_cpu_path(
    photo: Path, classifier_path: Path
) -> None:
    """The graph's ``Resize`` (cubic, a = -1/2, antialias, exclude_outside: Pillow's filter, exactly, in
    float) against the CPU path's approximation of Pillow on OpenCV (halvings, a short filter, one warp):
    a few pixels at sharp edges differ by more, nearly all by at most a level or two."""
    image = read_image(photo)
    height, width = image.shape[:2]
    boxes = [(0, 0, width, height), (width // 5, height // 7, width * 3 // 4, height * 2 // 3)]
    items = [GraphItem(image, crop_item(0, box, (224, 224), "crop", 256)) for box in boxes]
    ours = _graph_pixels("crop", items, (224, 224), classifier_path)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        expected = resize_center_crop(image[y1:y2, x1:x2], (224, 224), 256).astype(np.float32)
        difference = np.abs(ours[k] - expected)
        assert difference.mean() < 0.5, difference.mean()
        assert np.percentile(difference, 99) <= 2.0


def test_pack_frames_stores_each_image_once_and_pads_smaller_ones() -> None:
    big, small = np.full((4, 6, 3), 9, np.uint8), np.full((2, 3, 3), 5, np.uint8)
    packing = pack_frames([big, small, big])
    assert packing.index == (0, 1, 0)
    assert packing.frames.shape == (2, 4, 6, 3)
    assert (packing.frames[1, :2, :3] == 5).all() and (packing.frames[1, 2:] == 0).all()


def test_prepend_keeps_the_model_and_takes_frames(classifier_path: Path) -> None:
    import onnx

    model = onnx.load(str(classifier_path))
    crop: dict[str, Any] = {"size": (224, 224), "resize": "crop", "mean": (127.5,) * 3, "std": (127.5,) * 3}
    crop |= {"layout": "nchw", "bgr": False, "dtype": np.dtype("f4")}
    with pytest.raises(ValueError, match=r"the preprocessing's output is 'pixels', the model's input 'image'"):
        prepend(preprocess_graph(**crop), model)
    merged = prepend(preprocess_graph(**crop, output="image"), model)
    assert [i.name for i in merged.graph.input] == ["items", "frames"]
    assert {o.name for o in merged.graph.output} == {"logits"}
    engine = Engine(classifier_path, device="cpu", graph=merged.SerializeToString())
    assert [i.name for i in engine.inputs] == ["items", "frames"]


def test_preprocess_graph_refuses_unknown_resize() -> None:
    with pytest.raises(ConfigError, match=r"resize = 'squash' cannot run in the graph"):
        preprocess_graph(
            size=(8, 8), resize="squash", mean=(0,) * 3, std=(1,) * 3, layout="nchw", bgr=False, dtype=np.dtype("f4")
        )


def test_graph_preprocessing_gives_the_same_top1(classifiers: tuple[ClassifierStage, ClassifierStage]) -> None:
    cpu, graph = classifiers
    assert cpu.graph is None and graph.graph is not None
    images = [read_image(p) for p in PHOTOS]
    ours = graph.scores([graph.fit(i) for i in images])
    expected = cpu.scores([cpu.fit(i) for i in images])
    assert ours.argmax(1).tolist() == expected.argmax(1).tolist()
    np.testing.assert_allclose(ours.max(1), expected.max(1), atol=0.05)


def test_graph_crops_give_the_same_top1(classifiers: tuple[ClassifierStage, ClassifierStage]) -> None:
    cpu, graph = classifiers
    collage = read_image(SAMPLES / "collage.jpg")
    quarters = [np.array(b, np.float32) for b in ((0, 0, 480, 320), (480, 0, 960, 320), (480, 320, 960, 640))]
    ours = graph.scores([graph.fit_crop(collage, b, 0.0) for b in quarters])  # type: ignore[misc]
    expected = cpu.scores([cpu.fit_crop(collage, b, 0.0) for b in quarters])  # type: ignore[misc]
    assert ours.argmax(1).tolist() == expected.argmax(1).tolist()
    assert graph.fit_crop(collage, np.array([5, 5, 6, 6], np.float32), 0.0) is None, "under 2 pixels"


def _unmatched(a: Detections, b: Detections, floor: float) -> list[int]:
    """Detections of ``a`` scoring >= ``floor`` with no detection of ``b`` of their class at IoU >= 0.9."""
    missing = []
    for k in np.flatnonzero(a.scores >= floor).tolist():
        same = b.boxes[b.class_ids == a.class_ids[k]]
        if not len(same) or iou_matrix(a.boxes[k : k + 1], same).max() < 0.9:
            missing.append(k)
    return missing


def test_graph_letterbox_gives_the_same_detections(
    detectors: tuple[DetectorStage, DetectorStage], street: list[np.ndarray]
) -> None:
    """Every detection clear of the confidence threshold (by 0.05) is found by both, boxes at IoU >= 0.9;
    one right at the threshold may fall either side of it."""
    cpu, graph = detectors
    size = (street[0].shape[1], street[0].shape[0])
    (tensor, boxes), (batch, graph_boxes) = cpu.prepare(street), graph.prepare(street)
    assert boxes == graph_boxes
    cpu_outputs, graph_outputs = cpu.run(tensor), graph.run(batch)
    floor = float(cpu.declaration.confidence or 0.0) + 0.05
    total = 0
    for k, box in enumerate(boxes):
        ours, theirs = graph.decode(graph_outputs, k, box, size), cpu.decode(cpu_outputs, k, box, size)
        assert _unmatched(ours, theirs, floor) == [] and _unmatched(theirs, ours, floor) == [], k
        total += int((theirs.scores >= floor).sum())
    assert total >= len(street), "the street has objects in it"


def test_the_cascade_with_graph_preprocessing(cache_dir: Path) -> None:
    collage = read_image(SAMPLES / "collage.jpg")
    requests = [Request("", collage), Request("", collage[:400, :700])]  # two sizes in one batch
    results = []
    for preprocess in ("cpu", "graph"):
        config = CascadeConfig(
            stages="cascade", device="cpu", cache_dir=cache_dir, engine=EngineOptions(preprocess=preprocess)
        )
        results.append(Cascade(config).run(requests))
    for cpu, graph in zip(*results, strict=True):
        assert [o.name for o in graph.objects] == [o.name for o in cpu.objects]
        assert [o.classes[0].name if o.classes else None for o in graph.objects] == [
            o.classes[0].name if o.classes else None for o in cpu.objects
        ]
