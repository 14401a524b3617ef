"""The Classifier in IMAGE mode: real photographs, small real models, every misuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from streamer.errors import ConfigError, ImageError, InputNotFoundError, ModelError, RunningModeError
from streamer.models.spec import ClassifierModel
from streamer.tasks import Classifier, ClassifierOptions, RunningMode
from streamer.vision.postprocess import sigmoid, softmax
from streamer.vision.preprocess import RegionOfInterest
from tests.conftest import channel_mean_model

CAT_IDS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def test_chelsea_is_a_cat(classifier: Classifier, chelsea: np.ndarray) -> None:
    result = classifier.classify(chelsea)
    assert {c.class_id for c in result.classes[:2]} <= CAT_IDS
    assert result.classes[0].name in {"tabby", "tiger cat", "Egyptian cat"}
    assert (result.width, result.height) == (451, 300)
    assert set(result.timings_ms) == {"preprocess", "inference"}


def test_coffee_is_espresso(classifier: Classifier, coffee: np.ndarray) -> None:
    top = classifier.classify(coffee).classes[0]
    assert (top.class_id, top.name, top.display_name) == (967, "espresso", "espresso")
    assert top.confidence > 0.9


def test_max_results_threshold_allow_and_deny(cache_dir: Path, chelsea: np.ndarray) -> None:
    def top(**options: object) -> list[str]:
        opts = ClassifierOptions(cache_dir=cache_dir, device="cpu", **options)  # type: ignore[arg-type]
        with Classifier.create_from_options(opts) as c:
            return [x.name for x in c.classify(chelsea).classes]

    assert len(top(max_results=2)) == 2
    assert len(top(max_results=None)) == 1000
    assert top(score_threshold=0.2) == ["tiger cat", "Egyptian cat"]
    assert top(category_allowlist=("tabby", "lynx", "espresso")) == ["tabby", "lynx", "espresso"]
    assert "tiger cat" not in top(category_denylist=("tiger cat",))


def test_region_of_interest_classifies_only_that_part(classifier: Classifier, coffee: np.ndarray) -> None:
    """A cat pasted into the right half of a coffee photo: the ROI decides which one is seen."""
    from skimage import data

    canvas = coffee.copy()
    cat = data.chelsea()[:300, :300]
    canvas[50:350, 300:600] = cat
    left = classifier.classify(canvas, region_of_interest=RegionOfInterest(0.0, 0.0, 0.45, 1.0))
    right = classifier.classify(canvas, region_of_interest=RegionOfInterest(0.5, 0.125, 1.0, 0.875))
    assert right.classes[0].class_id in CAT_IDS
    assert left.classes[0].class_id not in CAT_IDS
    assert (right.width, right.height) == (600, 400), "sizes are the full image's"


@pytest.mark.parametrize(
    ("normalization", "expected"),
    [
        ("none", [10.0, 20.0, 30.0]),
        ("half", [10 / 255 - 0.5, 20 / 255 - 0.5, 30 / 255 - 0.5]),
        ("full", [10 / 127.5 - 1, 20 / 127.5 - 1, 30 / 127.5 - 1]),
        ("imagenet", [(10 - 123.675) / 58.395, (20 - 116.28) / 57.12, (30 - 103.53) / 57.375]),
    ],
)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_normalization_and_layout(tmp_path: Path, normalization: str, expected: list[float], layout: str) -> None:
    model = ClassifierModel(
        model=str(channel_mean_model(tmp_path / "m.onnx", layout=layout)),
        normalization=normalization,
        layout=layout,
        resize="stretch",
        head="regression",
    )
    with Classifier.create_from_options(ClassifierOptions(model=model, device="cpu")) as c:
        values = c.classify(np.full((9, 13, 3), (10, 20, 30), np.uint8)).values
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)


def test_bgr_color_order_reverses_channels(tmp_path: Path) -> None:
    model = ClassifierModel(
        model=str(channel_mean_model(tmp_path / "m.onnx")), normalization="none", color="bgr", head="regression"
    )
    with Classifier.create_from_options(ClassifierOptions(model=model, device="cpu")) as c:
        assert c.classify(np.full((8, 8, 3), (10, 20, 30), np.uint8)).values == (30.0, 20.0, 10.0)


def test_uint8_model_gets_raw_pixels(tmp_path: Path) -> None:
    path = channel_mean_model(tmp_path / "m.onnx", dtype=TensorProto.UINT8)
    model = ClassifierModel(model=str(path), head="regression", normalization="none")
    with Classifier.create_from_options(ClassifierOptions(model=model, device="cpu")) as c:
        assert c.classify(np.full((8, 8, 3), (1, 2, 255), np.uint8)).values == (1.0, 2.0, 255.0)
    with pytest.raises(ModelError, match=r"uint8, which takes raw pixels; set classifier\.normalization = 'none'"):
        Classifier.create_from_options(
            ClassifierOptions(model=ClassifierModel(model=str(path), normalization="full"), device="cpu")
        )


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_heads(tmp_path: Path, head: str) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("red\ngreen\nblue\n")
    model = ClassifierModel(
        model=str(channel_mean_model(tmp_path / "m.onnx")),
        labels=str(labels),
        normalization="none",
        mean=(0.0, 0.0, 0.0),
        std=(10.0, 10.0, 10.0),
        head=head,
    )
    with Classifier.create_from_options(ClassifierOptions(model=model, device="cpu", max_results=None)) as c:
        result = c.classify(np.full((8, 8, 3), (10, 20, 30), np.uint8))
    logits = np.array([[1.0, 2.0, 3.0]])
    expected = (softmax(logits) if head == "softmax" else sigmoid(logits))[0]
    assert [x.name for x in result.classes] == ["blue", "green", "red"]
    np.testing.assert_allclose([x.confidence for x in result.classes], expected[::-1], rtol=1e-5)
    if head == "softmax":
        assert sum(x.confidence for x in result.classes) == pytest.approx(1.0)
    else:
        assert result.classes[0].confidence == pytest.approx(1 / (1 + np.exp(-3.0)))


def test_locale_display_names(tmp_path: Path, cache_dir: Path, coffee: np.ndarray) -> None:
    names = (cache_dir / "models" / "efficientnet-lite0" / "labels.txt").read_text().splitlines()
    labels = tmp_path / "imagenet.txt"
    labels.write_text("\n".join(names) + "\n")
    german = list(names)
    german[967] = "Espresso (de)"
    (tmp_path / "labels.de.txt").write_text("\n".join(german) + "\n")
    model = ClassifierModel(model="efficientnet-lite0", labels=str(labels))
    options = ClassifierOptions(model=model, cache_dir=cache_dir, device="cpu", display_names_locale="de")
    with Classifier.create_from_options(options) as c:
        top = c.classify(coffee).classes[0]
    assert (top.name, top.display_name) == ("espresso", "Espresso (de)")
    with pytest.raises(ConfigError, match=r"display_names_locale = 'xx'.*available locales: de"):
        Classifier.create_from_options(
            ClassifierOptions(model=model, cache_dir=cache_dir, device="cpu", display_names_locale="xx")
        )


# --- misuse and bad input ---------------------------------------------------------------------


def test_allow_and_deny_together() -> None:
    with pytest.raises(ConfigError, match="mutually exclusive"):
        ClassifierOptions(category_allowlist=("cat",), category_denylist=("dog",))


def test_unknown_category_names(cache_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"category_allowlist names classes the model does not have: 'kitten'"):
        Classifier.create_from_options(ClassifierOptions(cache_dir=cache_dir, category_allowlist=("kitten", "tabby")))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_results": 0}, r"max_results = 0; expected an integer >= 1, or None"),
        ({"score_threshold": 1.5}, r"score_threshold = 1.5; expected a number in \[0, 1\]"),
        ({"device": "gpu"}, r"device = 'gpu' is not allowed"),
        ({"running_mode": "image"}, r"running_mode = 'image'; use RunningMode"),
        ({"result_callback": print}, r"result_callback is only used in LIVE_STREAM mode, not IMAGE"),
        ({"running_mode": RunningMode.LIVE_STREAM}, r"LIVE_STREAM needs a result_callback"),
    ],
)
def test_invalid_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ClassifierOptions(**options)  # type: ignore[arg-type]


def test_model_declaration_choices_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"classifier.layout = 'chw' is not allowed; use one of: nchw, nhwc"):
        ClassifierModel(model="m.onnx", layout="chw")
    with pytest.raises(ConfigError, match=r"classifier.std = \[1.0, 0.0, 1.0\]; every value must be > 0"):
        ClassifierModel(model="m.onnx", std=(1.0, 0.0, 1.0))


def test_calling_another_modes_method(cache_dir: Path, coffee: np.ndarray) -> None:
    options = ClassifierOptions(cache_dir=cache_dir, device="cpu", running_mode=RunningMode.VIDEO)
    with (
        Classifier.create_from_options(options) as c,
        pytest.raises(RunningModeError, match=r"classify\(\) needs running_mode IMAGE.*created for VIDEO"),
    ):
        c.classify(coffee)


def test_closed_classifier(cache_dir: Path, coffee: np.ndarray) -> None:
    c = Classifier.create_from_options(ClassifierOptions(cache_dir=cache_dir, device="cpu"))
    with c:
        pass
    with pytest.raises(RunningModeError, match="closed"):
        c.classify(coffee)


def test_direct_construction_is_refused() -> None:
    with pytest.raises(TypeError, match="create_from_options"):
        Classifier(ClassifierOptions())


@pytest.mark.parametrize(
    "image",
    [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32), "x.jpg"],
)
def test_bad_image_arrays(classifier: Classifier, image: object) -> None:
    with pytest.raises(ImageError, match="expected"):
        classifier.classify(image)  # type: ignore[arg-type]


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"nope.onnx does not exist; .*embedded models: efficientnet-lite0"):
        Classifier.create_from_model_path(tmp_path / "nope.onnx")


def test_detector_is_not_a_classifier(cache_dir: Path) -> None:
    with pytest.raises(ConfigError, match="'yolov3-tiny' is a detector, not a classifier"):
        Classifier.create_from_options(ClassifierOptions(model=ClassifierModel(model="yolov3-tiny")))


def test_model_rank_contradicts_options(tmp_path: Path) -> None:
    import onnx
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
    )
    path = tmp_path / "flat.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8), path)
    with pytest.raises(ModelError, match=r"flat.onnx: input 'x' has shape \[1, 12\]; expected rank 4"):
        Classifier.create_from_model_path(path)


def test_model_size_and_layout_contradict_options(tmp_path: Path) -> None:
    path = str(channel_mean_model(tmp_path / "m.onnx", size=4))
    with pytest.raises(ModelError, match=r"classifier.input_size = \[224, 224\] contradicts it \(expected \[4, 4\]\)"):
        Classifier.create_from_options(ClassifierOptions(model=ClassifierModel(model=path, input_size=(224, 224))))
    nhwc = str(channel_mean_model(tmp_path / "nhwc.onnx", layout="nhwc", size=5))
    with pytest.raises(ModelError, match=r"which is not nchw with 3 channels; is classifier.layout = 'nhwc'\?"):
        Classifier.create_from_model_path(nhwc)


def test_label_count_contradicts_model_outputs(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    model = ClassifierModel(model=str(channel_mean_model(tmp_path / "m.onnx")), labels=str(labels))
    with pytest.raises(ModelError, match=r"labels.txt has 2 names but model .*m.onnx outputs 3 scores"):
        Classifier.create_from_options(ClassifierOptions(model=model))
