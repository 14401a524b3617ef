"""config.toml < STREAMER_* < CLI, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.config import StreamSpec, load_config
from streamer.errors import ConfigError, InputNotFoundError
from streamer.sources.images import DEFAULT_LIMITS, ImageLimits
from streamer.vision.preprocess import RegionOfInterest

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_shipped_config_loads_with_the_defaults() -> None:
    config = load_config(REPO / "config.toml", env={})
    options = config.classifier_options()
    assert options.model.model == "efficientnet-lite0"
    assert (options.max_results, options.device, options.region_of_interest) == (5, "auto", None)


def test_precedence_file_then_environment_then_cli(tmp_path: Path) -> None:
    path = _write(tmp_path, 'device = "cpu"\n[classifier]\nmax_results = 2\nscore_threshold = 0.1\n')
    env = {"STREAMER_CLASSIFIER_MAX_RESULTS": "3", "STREAMER_CLASSIFIER_SCORE_THRESHOLD": "0.2"}
    config = load_config(path, env=env, overrides={"classifier.max_results": 4, "device": None})
    assert config["classifier.max_results"] == 4
    assert config["classifier.score_threshold"] == 0.2
    assert config["device"] == "cpu"


def test_threads_per_model(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "")).classifier_options().threads is None, "default: one per core"
    assert load_config(_write(tmp_path, "threads = 3\n")).classifier_options().threads == 3
    assert load_config(None, env={"STREAMER_THREADS": "1"}).classifier_options().threads == 1
    with pytest.raises(ConfigError, match=r"threads = 0; expected an integer >= 1"):
        load_config(None, overrides={"threads": 0}).classifier_options()


def test_environment_lists_and_regions(tmp_path: Path) -> None:
    env = {
        "STREAMER_CLASSIFIER_CATEGORY_ALLOWLIST": "tabby, tiger cat",
        "STREAMER_REGION_OF_INTEREST": "0,0.1,0.5,1",
        "STREAMER_CACHE_DIR": str(tmp_path),
        "STREAMER_REQUIRE_ALL": "1",
    }
    options = load_config(None, env=env).classifier_options()
    assert options.category_allowlist == ("tabby", "tiger cat")
    assert options.region_of_interest == RegionOfInterest(0.0, 0.1, 0.5, 1.0)
    assert options.cache_dir == tmp_path


def test_own_model_declaration_from_toml(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[classifier]\nmodel = "m.onnx"\ninput_size = [160, 128]\nnormalization = "half"\nlayout = "nhwc"\n'
        'head = "sigmoid"\ncolor = "bgr"\n',
    )
    model = load_config(path, env={}).classifier_model()
    assert (model.input_size, model.normalization, model.layout, model.head, model.color) == (
        (160, 128),
        "half",
        "nhwc",
        "sigmoid",
        "bgr",
    )


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[classifier]\ntop_k = 3\n", {}, r"unknown configuration key 'classifier.top_k' \(from .*config.toml\)"),
        ("[camera]\nurl = 'x'\n", {}, r"unknown configuration section \[camera\]"),
        ("", {"STREAMER_CLASSIFIER_TOPK": "3"}, r"'classifier.topk' \(from STREAMER_CLASSIFIER_TOPK\)"),
        ("[classifier]\nmax_results = 'five'\n", {}, r"classifier.max_results = 'five' .* is not an integer"),
        ("", {"STREAMER_DEVICE": "gpu"}, r"device = 'gpu' \(from STREAMER_DEVICE\) is not allowed; expected one of"),
        ("[classifier]\nlayout = 'chw'\n", {}, r"layout = 'chw' .* expected one of nchw, nhwc"),
        ("[classifier]\ninput_size = [224]\n", {}, r"input_size = \[224\] .* has 1 items; expected a list of 2 int"),
        ("[classifier]\nmax_results = 0\n", {}, r"max_results = 0; expected an integer >= 1"),
        ("region_of_interest = [0.5, 0, 0.2, 1]\n", {}, r"region_of_interest = \[0.5, 0.0, 0.2, 1.0\]"),
        ("device = \n", {}, r"config.toml is not valid TOML"),
    ],
)
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), env=env)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"config file .*absent.toml does not exist"):
        load_config(tmp_path / "absent.toml", env={})


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, "[classifier]\nmax_results = 7\n")
    assert load_config(None, env={"STREAMER_CONFIG": str(path)})["classifier.max_results"] == 7


def test_image_limits(tmp_path: Path) -> None:
    assert load_config(REPO / "config.toml", env={}).image_limits() == DEFAULT_LIMITS, "the shipped file: defaults"
    assert load_config(None, env={}).image_limits() == ImageLimits(40_000_000, 20.0)
    env = {"STREAMER_LIMITS_MAX_IMAGE_PIXELS": "1000", "STREAMER_LIMITS_MAX_ASPECT_RATIO": "3.5"}
    assert load_config(None, env=env).image_limits() == ImageLimits(1000, 3.5)
    path = _write(tmp_path, "[limits]\nmax_image_pixels = 2_000_000\n")
    assert load_config(path, env={}).image_limits().max_pixels == 2_000_000


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[limits]\nmax_image_pixels = 0\n", {}, r"limits\.max_image_pixels = 0; expected an integer >= 1"),
        ("", {"STREAMER_LIMITS_MAX_IMAGE_PIXELS": "lots"}, r"limits\.max_image_pixels = 'lots' \(from STREAMER_LIMI"),
        ("[limits]\nmax_aspect_ratio = 0.5\n", {}, r"limits\.max_aspect_ratio = 0\.5; expected a number >= 1"),
        ("", {"STREAMER_LIMITS_MAX_ASPECT_RATIO": "wide"}, r"limits\.max_aspect_ratio = 'wide' .* is not a number"),
    ],
)
def test_bad_image_limits_are_named(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), env=env)


def test_streams_tables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[[streams]]\nid = "door"\nsource = "rtsp://u:p@cam/door"\ninference_fps = 5\ndecoder = "nvdec"\n'
        '[[streams]]\nsource = "samples/street.mp4"\nloop = true\nrealtime = false\n'
        "[[streams]]\nsource = 0\n",
    )
    door, street, webcam = load_config(path, env={})["streams"]
    assert door == StreamSpec(id="door", source="rtsp://u:p@cam/door", inference_fps=5, decoder="nvdec")
    assert street.decoder == "auto"
    assert (street.id, street.loop, street.realtime) == ("street.mp4", True, False), "the id defaults to the name"
    assert (webcam.id, webcam.source) == ("camera0", "0")
    assert load_config(_write(tmp_path, ""), env={})["streams"] == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[streams]]\nid = "a"\n', r"streams\[0\] \(.*config.toml\) has no source"),
        ('[[streams]]\nsource = "a.mp4"\nfps = 5\n', r"streams\[0\] .*: unknown key 'fps'; known keys: id, source"),
        ('[[streams]]\nsource = "a.mp4"\ninference_fps = 0\n', r"inference_fps = 0; expected a number"),
        ('[[streams]]\nsource = "a.mp4"\nloop = "yes"\n', r"loop = 'yes'; expected true or false"),
        ('[[streams]]\nsource = "a.mp4"\ndecoder = "gpu"\n', r"decoder = 'gpu'; use one of: auto, software, nvdec"),
        ('[[streams]]\nsource = "a.mp4"\n[[streams]]\nsource = "b/a.mp4"\n', r"streams\[1\] .*'a.mp4' is used twice"),
        ('[[streams]]\nsource = "a.mp4"\nid = " x"\n', r"stream id ' x': expected 1 to 64 printable characters"),
        ('streams = "a.mp4"\n', r"streams \(.*config.toml\) must be \[\[streams\]\] tables"),
    ],
)
def test_bad_streams_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text), env={})


def test_streams_only_from_the_file() -> None:
    with pytest.raises(ConfigError, match=r"streams \(command line\) can only be set in config.toml"):
        load_config(None, env={}, overrides={"streams": "a.mp4"})
