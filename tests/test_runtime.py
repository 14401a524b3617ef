"""The Runtime: streams from config and while running, one-off images beside them, models swapped live.

Real clips, real models; every wait is bounded and nothing depends on speed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from streamer.config import Config, StreamSpec, load_config
from streamer.errors import ConfigError, InputNotFoundError
from streamer.frames import Frame
from streamer.models import zoo
from streamer.results import FrameResult
from streamer.runtime import Runtime
from streamer.sources import PyAVSource
from tests.media import make_clip, photo


class Collector:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: FrameResult, frame: Frame) -> None:
        with self.lock:
            self.results.append(result)

    def of(self, stream: str) -> list[FrameResult]:
        with self.lock:
            return [r for r in self.results if r.stream == stream]


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition``, at most ``timeout`` seconds (a bound against hanging, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def _config(path: Path, text: str) -> Config:
    path.write_text('device = "cpu"\n' + text)
    return load_config(path, env={})


def test_streams_from_config_and_while_running(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    config = _config(tmp_path / "config.toml", f'[[streams]]\nid = "door"\nsource = "{clip}"\nloop = true\n')
    collect = Collector()
    runtime = Runtime(config)
    runtime.subscribe(collect)
    runtime.start()
    try:
        _until(lambda: len(collect.of("door")) >= 3)
        runtime.add_stream(StreamSpec(id="yard", source=str(clip), loop=True, inference_fps=5))
        with pytest.raises(ConfigError, match="stream id 'yard' is already running"):
            runtime.add_stream(StreamSpec(id="yard", source=str(clip)))
        _until(lambda: len(collect.of("yard")) >= 3)
        assert sorted(row["stream"] for row in runtime.stats()) == ["door", "yard"]
        image = photo("coffee")
        [answer] = runtime.classify([image]).result(timeout=60)
        assert answer.classes and answer.classes[0].name in ("espresso", "cup", "coffee mug")
        assert runtime.remove_stream("door") and not runtime.remove_stream("door")
        count = len(collect.of("door"))
        yard = len(collect.of("yard"))
        _until(lambda: len(collect.of("yard")) >= yard + 3)
        assert len(collect.of("door")) <= count + 1, "a removed stream stops producing"
        assert [row["stream"] for row in runtime.stats()] == ["yard"]
    finally:
        runtime.stop()
    assert collect.of("") == [], "one-off results go to their caller only"


def test_models_name_their_versions(tmp_path: Path) -> None:
    runtime = Runtime(_config(tmp_path / "config.toml", 'stages = "cascade"\n'))
    try:
        detector, classifier = runtime.models()
        assert (detector.task, detector.name, detector.classes, detector.input_size) == (
            "detector",
            "yolov3-tiny",
            80,
            (416, 416),
        )
        assert (classifier.name, classifier.classes, classifier.input_size) == ("efficientnet-lite0", 1000, (224, 224))
        assert len(classifier.version) == 12 and classifier.provider == "CPUExecutionProvider"
        assert runtime.detects
    finally:
        runtime.stop()


def _copy_of_classifier(tmp_path: Path, note: str) -> tuple[Path, Path]:
    """The embedded classifier saved again with another doc string: the same weights, another version."""
    built = zoo.build("efficientnet-lite0", zoo.default_cache_dir())
    model = onnx.load(str(built.onnx_path))
    model.doc_string = note
    path = tmp_path / f"{note}.onnx"
    onnx.save(model, str(path))
    assert built.labels_path is not None
    return path, built.labels_path


def test_reload_swaps_models_between_batches_without_losing_a_frame(tmp_path: Path) -> None:
    model, labels = _copy_of_classifier(tmp_path, "v2")
    declared = (
        'resize = "crop"\nresize_shorter = 256\nmean = [127.0, 127.0, 127.0]\nstd = [128.0, 128.0, 128.0]\n'
        'head = "softmax"\n'
    )
    path = tmp_path / "config.toml"
    config = _config(path, "")
    clip = make_clip(tmp_path / "file.mp4", frames=60, fps=15, size=(320, 240))
    collect = Collector()
    reached, release = threading.Event(), threading.Event()

    def hold(frame: Frame) -> None:  # on the source's thread: decoding pauses at frame 20 until the swap
        if frame.index == 20:
            reached.set()
            release.wait(60)

    runtime = Runtime(config, lossless=True, reread=lambda: load_config(path, env={}), max_batch=2)
    runtime.subscribe(collect)
    runtime.subscribe_frames(hold)
    runtime.add_source(PyAVSource("file", str(clip)))
    runtime.start()
    try:
        old = runtime.models()[0]
        assert reached.wait(60)
        path.write_text(f'device = "cpu"\n[classifier]\nmodel = "{model}"\nlabels = "{labels}"\n' + declared)
        [new] = runtime.reload()
        release.set()
        path.write_text(f'device = "cpu"\n[classifier]\nmodel = "{tmp_path / "absent.onnx"}"\n')
        with pytest.raises(InputNotFoundError, match=r"absent\.onnx does not exist"):
            runtime.reload()
        assert runtime.models() == [new], "a model that fails to load leaves the running one"
        assert runtime.wait(120)
    finally:
        runtime.stop()
    results = collect.of("file")
    assert [r.frame for r in results] == list(range(60)), "no frame lost or reordered across the swap"
    tags = [r.models["classifier"] for r in results]
    assert new.version != old.version and tags[0] == old.tag and tags[-1] == new.tag == f"v2.onnx@{new.version}"
    swap = tags.index(new.tag)
    assert set(tags[:swap]) == {old.tag} and set(tags[swap:]) == {new.tag}, "one switch, between two batches"
    assert 10 <= swap <= 21, f"the swap came at frame {swap}, while decoding paused at frame 20"


def test_track_ids_stay_unique_in_a_stream_added_again(cache_dir: Path, tmp_path: Path) -> None:
    overrides = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "detect", "storage.dir": str(tmp_path)}
    runtime = Runtime(load_config(env={}, overrides=overrides), events=False)
    seen = Collector()
    runtime.subscribe(seen)
    street = StreamSpec(id="street", source=str(Path(__file__).parents[1] / "samples" / "street.mp4"), realtime=False)
    runtime.start()
    try:
        passes: list[set[int]] = []
        for _ in range(2):
            runtime.add_stream(street)
            assert runtime.wait(60), "the file ends"
            ids = {o.track_id for r in seen.of("street") for o in r.objects if o.track_id is not None}
            passes.append(ids - set().union(*passes))
            runtime.remove_stream("street")
        first, second = passes
        assert first and second and max(first) < min(second), passes
    finally:
        runtime.stop()
    assert runtime.events is None, "events=False records nothing"


def test_detect_off_pauses_one_stream_only(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    config = _config(tmp_path / "config.toml", "")
    collect = Collector()
    runtime = Runtime(config)
    runtime.subscribe(collect)
    frames: list[str] = []
    runtime.subscribe_frames(lambda frame: frames.append(frame.stream_id))
    for name in ("a", "b"):
        runtime.add_stream(StreamSpec(id=name, source=str(clip), loop=True))
    runtime.start()
    try:
        _until(lambda: len(collect.of("a")) >= 3 and len(collect.of("b")) >= 3)
        assert runtime.set_detect("a", False) and not runtime.set_detect("nope", False)
        paused_at = len(collect.of("a")) + 2  # at most the batches already in flight
        decoded = frames.count("a")
        others = len(collect.of("b"))
        _until(lambda: len(collect.of("b")) >= others + 20)
        assert len(collect.of("b")) >= others + 20, "the other stream goes on"
        assert len(collect.of("a")) <= paused_at, "no result while detect is off"
        assert frames.count("a") > decoded, "its video still plays"
        assert [row["detect"] for row in runtime.stats()] == [False, True]
        runtime.set_detect("a", True)
        _until(lambda: len(collect.of("a")) > paused_at + 3)
        assert len(collect.of("a")) > paused_at + 3, "on again"
    finally:
        runtime.stop()


def test_a_watched_stream_decodes_every_frame_and_an_unwatched_overloaded_one_skips(tmp_path: Path) -> None:
    """Two live streams inferred once a second: the one a frame subscriber says it wants whole (a browser
    watching its video) decodes every frame; the other soon leaves undecoded what the models never take."""
    options = {"preset": "veryfast", "g": "30", "x264-params": "bframes=3:b-pyramid=none:b-adapt=0"}
    clip = make_clip(tmp_path / "cam.mp4", frames=60, fps=30, size=(160, 120), options=options)
    runtime = Runtime(_config(tmp_path / "config.toml", ""))
    runtime.subscribe_frames(lambda frame: None, wanted=lambda stream: stream == "watched")
    for name in ("watched", "unwatched"):
        runtime.add_stream(StreamSpec(id=name, source=str(clip), loop=True, inference_fps=1))
    runtime.start()
    try:
        rows = lambda: {row["stream"]: row for row in runtime.stats()}  # noqa: E731
        _until(lambda: rows()["unwatched"]["skipped"] >= 60, timeout=30)
        stats = rows()
    finally:
        runtime.stop()
    assert stats["unwatched"]["skipped"] >= 60, stats["unwatched"]
    assert stats["watched"]["skipped"] == 0, stats["watched"]
    assert stats["watched"]["decoded"] > stats["unwatched"]["decoded"], (stats["watched"], stats["unwatched"])
