"""Detection, then classification of each object, with the real embedded models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
    assert all(len(o.classes) == 3 for o in objects)
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
    engine.run = lambda batch: calls.append(len(batch)) or original(batch)  # type: ignore[method-assign]
    try:
        objects = cascade.classify(collage).objects
    finally:
        engine.run = original  # type: ignore[method-assign]
    assert calls == [len(objects)]


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
    assert result.objects == () and result.classes == ()


def test_tiny_crops_are_reported_but_not_classified(collage: np.ndarray) -> None:
    """Objects whose crop is under 2 px are kept; the classifier never sees them."""
    tiny = Classifier.create_from_options(
        ClassifierOptions(stages="cascade", device="cpu", detector=DetectorModel(model="yolov3-tiny", min_box_size=0))
    )
    shrunk = collage[::40, ::40]  # 16 x 24 px: boxes of a pixel or two
    result = tiny.classify(np.ascontiguousarray(shrunk))
    for obj in result.objects:
        width, height = obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]
        if width * 1.2 < 2 or height * 1.2 < 2:
            assert obj.classes == ()


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
