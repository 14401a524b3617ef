"""Shared fixtures: one model cache per test session, built from the real weights."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from skimage import data

from streamer import config as config_module
from streamer.config import load_config
from streamer.models import zoo
from streamer.runtime import Runtime
from streamer.sources.images import read_image
from streamer.tasks import Classifier, ClassifierOptions
from tests.rtsp import rtsp_server  # noqa: F401  (a fixture for every test module)

# Session- and module-scoped runtimes are built before the autouse fixture below runs: none writes events
# into the developer's data directory either.
config_module.DEFAULTS["storage.dir"] = tempfile.mkdtemp(prefix="streamer-storage-")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache with the embedded classifier built from scratch for this session."""
    folder = tmp_path_factory.mktemp("cache")
    zoo.build("efficientnet-lite0", folder)
    return folder


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's own config or cache, nor writes events into their data directory."""
    for name in list(__import__("os").environ):
        if name.startswith("STREAMER_") and name != "STREAMER_REQUIRE_ALL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(cache_dir))
    storage = str(tmp_path_factory.mktemp("storage"))
    monkeypatch.setenv("STREAMER_STORAGE_DIR", storage)
    monkeypatch.setitem(config_module.DEFAULTS, "storage.dir", storage)


@pytest.fixture(scope="session")
def classifier(cache_dir: Path) -> Iterator[Classifier]:
    with Classifier.create_from_options(ClassifierOptions(cache_dir=cache_dir, device="cpu")) as c:
        yield c


@pytest.fixture(scope="session")
def runtime(cache_dir: Path) -> Iterator[Runtime]:
    """One started runtime on the embedded classifier (CPU) for the session, no streams; a test that adds
    streams to it removes them."""
    runtime = Runtime(load_config(env={}, overrides={"device": "cpu", "cache_dir": str(cache_dir)}))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return data.coffee()


SAMPLES = Path(__file__).resolve().parents[1] / "samples"


@pytest.fixture(scope="session")
def collage() -> np.ndarray:
    """samples/collage.jpg: four real photographs in a 2x2 grid, a cup, a motorbike, a person, a cat."""
    return read_image(SAMPLES / "collage.jpg")


def channel_mean_model(path: Path, *, layout: str = "nchw", size: int = 4, dtype: int = TensorProto.FLOAT) -> Path:
    """A tiny real ONNX model whose 3 outputs are the mean of each input channel.

    With a constant image the outputs are exactly the preprocessed pixel values,
    which proves normalisation, colour order and layout; the head then turns
    them into scores.
    """
    shape = [1, 3, size, size] if layout == "nchw" else [1, size, size, 3]
    axes = [2, 3] if layout == "nchw" else [1, 2]
    nodes = []
    source = "image"
    if dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["image"], ["image_f"], to=TensorProto.FLOAT))
        source = "image_f"
    nodes.append(
        helper.make_node("ReduceMean", [source, "axes"], ["scores"], keepdims=0),
    )
    graph = helper.make_graph(
        nodes,
        "channel_mean",
        [helper.make_tensor_value_info("image", dtype, shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [2], axes)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
