"""Detection, then classification of each object, with the real embedded models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from skimage import data

from streamer.errors import ConfigError, ModelError
from streamer.models.spec import ClassifierModel, DetectorModel
from streamer.tasks import Classifier, ClassifierOptions
from streamer.vision.nms import iou_matrix

CUP_BOX = (170, 18, 412, 302)  # measured by hand on skimage's coffee
MOTORBIKE_BOX = (60, 55, 700, 455)  # measured by hand on the left image of stereo_motorcycle


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(iou_matrix(np.array([a], np.float32), np.array([b], np.float32))[0, 0])


@pytest.fixture(scope="module")
def cascade(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    options = ClassifierOptions(stages="cascade", device="cpu", max_results=3)
    return Classifier.create_from_options(options)


def test_coffee_has_a_cup_that_is_espresso(cascade: Classifier, coffee: np.ndarray) -> None:
    result = cascade.classify(coffee)
    cup = result.objects[0]
    assert (cup.class_id, cup.name) == (41, "cup")
    assert cup.confidence >= 0.5
    assert _iou(cup.box, CUP_BOX) >= 0.5
    assert cup.classes[0].name == "espresso"
    assert result.classes == (), "cascade classifies objects, not the whole frame"


def test_motorcycle_is_a_motorbike(cascade: Classifier) -> None:
    left = data.stereo_motorcycle()[0]
    bike = cascade.classify(left).objects[0]
    assert bike.name == "motorbike"
    assert _iou(bike.box, MOTORBIKE_BOX) >= 0.5
    assert bike.classes[0].name in {"moped", "motor scooter", "crash helmet", "disc brake"}


def test_several_objects_each_classified_in_one_frame(cascade: Classifier, collage: np.ndarray) -> None:
    objects = cascade.classify(collage).objects
    names = {o.name for o in objects}
    assert {"person", "cat", "cup", "motorbike"} <= names
    assert all(len(o.classes) == 3 for o in objects if o.name != "person")
    assert all(not o.classes for o in objects if o.name == "person"), "ImageNet has no person: not cascaded"
    cat = next(o for o in objects if o.name == "cat")
    assert cat.classes[0].name in {"tabby", "tiger cat", "Egyptian cat"}
    h, w = collage.shape[:2]
    for obj in objects:
        x1, y1, x2, y2 = obj.box
        assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h


def test_cascade_batches_every_crop_of_a_frame_in_one_run(cascade: Classifier, collage: np.ndarray) -> None:
    assert cascade.classifier is not None
    engine = cascade.classifier.engine
    calls: list[int] = []
    original = engine.run
    engine.run = lambda batch, *extra: calls.append(len(batch)) or original(batch, *extra)  # type: ignore[method-assign]
    try:
        objects = cascade.classify(collage).objects
    finally:
        engine.run = original  # type: ignore[method-assign]
    assert calls == [sum(1 for o in objects if o.name != "person")], "every describable crop in one run"


def test_detect_only_and_cascade_classes(collage: np.ndarray) -> None:
    detect = Classifier.create_from_options(ClassifierOptions(stages="detect", device="cpu"))
    assert detect.classifier is None
    objects = detect.classify(collage).objects
    assert objects and all(o.classes == () for o in objects)
    only_cats = Classifier.create_from_options(
        ClassifierOptions(stages="cascade", device="cpu", cascade_classes=("cat",))
    )
    for obj in only_cats.classify(collage).objects:
        assert bool(obj.classes) == (obj.name == "cat")


def test_object_allowlist(collage: np.ndarray) -> None:
    people = Classifier.create_from_options(
        ClassifierOptions(stages="detect", device="cpu", object_allowlist=("person",))
    )
    assert {o.name for o in people.classify(collage).objects} == {"person"}


def test_region_of_interest_keeps_whole_image_coordinates(cascade: Classifier, collage: np.ndarray) -> None:
    from streamer.vision.preprocess import RegionOfInterest

    right_half = RegionOfInterest(0.5, 0.0, 1.0, 1.0)
    objects = cascade.classify(collage, region_of_interest=right_half).objects
    assert {"cat", "motorbike"} <= {o.name for o in objects}
    assert "person" not in {o.name for o in objects}
    assert all(o.box[0] >= collage.shape[1] / 2 - 1 for o in objects)


def test_zero_detections(cascade: Classifier) -> None:
    result = cascade.classify(np.full((240, 320, 3), 90, np.uint8))
    assert len(result.objects) == 0 and result.classes == ()


def _constant_detector(folder: Path, rows: list[list[float]]) -> DetectorModel:
    """A real ONNX detector (yolov5 layout, 32x32 input, classes 'dot' and 'blob') whose output is ``rows``."""
    output = np.asarray([rows], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["detections"], value=numpy_helper.from_array(output))],
        "constant_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("detections", TensorProto.FLOAT, list(output.shape))],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), folder / "d.onnx")
    (folder / "names.txt").write_text("dot\nblob\n")
    return DetectorModel(
        model=str(folder / "d.onnx"), labels=str(folder / "names.txt"), family="yolov5", min_box_size=0
    )


def test_tiny_crops_are_reported_but_not_classified(tmp_path: Path) -> None:
    """An object whose crop is under 2 px is kept, with no classes; the others are classified."""
    detector = _constant_detector(
        tmp_path,
        [
            [10.5, 10.5, 1.0, 1.0, 0.9, 0.9, 0.1],  # a 1x1 px dot
            [20.0, 20.0, 16.0, 16.0, 0.9, 0.1, 0.9],  # a 16x16 px blob
        ],
    )
    options = ClassifierOptions(stages="cascade", device="cpu", detector=detector, crop_margin=0.0)
    with Classifier.create_from_options(options) as cascade:
        dot, blob = cascade.classify(np.full((32, 32, 3), 100, np.uint8)).objects
    assert (dot.name, dot.box, dot.classes) == ("dot", (10.0, 10.0, 11.0, 11.0), ())
    assert blob.name == "blob" and blob.box == (12.0, 12.0, 28.0, 28.0)
    assert len(blob.classes) == 5


# --- bad declarations ---------------------------------------------------------------------------


def test_declared_family_contradicts_outputs() -> None:
    with pytest.raises(ModelError, match="yolov8"):
        Classifier.create_from_options(
            ClassifierOptions(stages="detect", detector=DetectorModel(model="yolov3-tiny", family="yolov8"))
        )


def test_detector_with_more_classes_than_names(tmp_path: Path) -> None:
    names = tmp_path / "coco79.names"
    names.write_text("\n".join(f"class{i}" for i in range(79)) + "\n")
    with pytest.raises(ModelError, match=r"80 classes.*79"):
        Classifier.create_from_options(
            ClassifierOptions(stages="detect", detector=DetectorModel(model="yolov3-tiny", labels=str(names)))
        )


def test_options_that_contradict_each_other() -> None:
    with pytest.raises(ConfigError, match="cascade_classes is set but stages = 'classify'"):
        ClassifierOptions(cascade_classes=("car",))
    with pytest.raises(ConfigError, match="object_allowlist and object_denylist are both set"):
        ClassifierOptions(stages="detect", object_allowlist=("car",), object_denylist=("cat",))
    with pytest.raises(ConfigError, match="stages = 'both' is not allowed; use one of: classify, detect, cascade"):
        ClassifierOptions(stages="both")
    with pytest.raises(ConfigError, match=r"crop_margin = 2\.0"):
        ClassifierOptions(stages="cascade", crop_margin=2.0)
    with pytest.raises(ConfigError, match="'efficientnet-lite0' is a classifier, not a detector"):
        Classifier.create_from_options(
            ClassifierOptions(stages="detect", detector=DetectorModel(model="efficientnet-lite0"))
        )


def test_unknown_cascade_class() -> None:
    with pytest.raises(ConfigError, match="cascade_classes names classes the model does not have: 'unicorn'"):
        Classifier.create_from_options(ClassifierOptions(stages="cascade", cascade_classes=("unicorn",)))


def test_regression_head_cannot_label_objects(tmp_path: Path) -> None:
    from tests.conftest import channel_mean_model

    model = ClassifierModel(model=str(channel_mean_model(tmp_path / "m.onnx")), head="regression")
    with pytest.raises(ConfigError, match="regression head"):
        Classifier.create_from_options(ClassifierOptions(stages="cascade", model=model))
