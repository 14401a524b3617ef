"""The Pipeline: real clips through the real models, many streams, one failing, streams added live.

Nothing here depends on speed: each test waits (bounded) for the results it
needs; the speed and latency claims live in benchmarks/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streamer.frames import Frame
from streamer.inference.backend import LocalBackend, Request
from streamer.inference.cascade import CascadeConfig
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources import PyAVSource, SourceState
from tests.media import make_clip, photo


@pytest.fixture(scope="module")
def cascade() -> Iterator[LocalBackend]:
    backend = LocalBackend(CascadeConfig(stages="cascade", device="cpu", max_results=1))
    yield backend
    backend.close()


def _until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for ``condition``, at most ``timeout`` seconds (a bound against hanging, not a speed claim)."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


class Collector:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, result: FrameResult, frame: Frame) -> None:
        with self.lock:
            self.results.append(result)
            self.threads.add(threading.current_thread().name)

    def of(self, stream: str) -> list[FrameResult]:
        with self.lock:
            return [r for r in self.results if r.stream == stream]


def test_files_are_annotated_losslessly_and_in_order(tmp_path: Path, cascade: LocalBackend) -> None:
    clips = [make_clip(tmp_path / f"c{i}.mp4", frames=15, fps=15, size=(320, 240)) for i in range(2)]
    collect = Collector()
    pipeline = Pipeline(cascade, on_result=collect, lossless=True, max_batch=2)
    for i, clip in enumerate(clips):
        pipeline.add(PyAVSource(f"clip{i}", str(clip)))
    with pipeline:
        assert pipeline.wait(60)
    for i in range(2):
        results = collect.of(f"clip{i}")
        assert [r.frame for r in results] == list(range(15))
        assert sum(1 for r in results if any(o.name == "cat" for o in r.objects)) >= 10
    assert collect.threads == {"pipeline-results"}, "callbacks never run on the inference thread"
    stats = {row["stream"]: row for row in pipeline.stats()}
    assert stats["clip0"]["state"] == "ended" and stats["clip0"]["inferred"] == 15


def test_one_failing_stream_never_stops_the_others(tmp_path: Path, cascade: LocalBackend) -> None:
    good = make_clip(tmp_path / "good.mp4", frames=200, fps=15, size=(320, 240))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 50_000)
    collect = Collector()
    pipeline = Pipeline(cascade, on_result=collect, max_frame_age_ms=1000)
    pipeline.add(PyAVSource("good", str(good), realtime=True, loop=True))
    pipeline.add(PyAVSource("junk", str(junk)))
    with pipeline:
        _until(lambda: len(collect.of("good")) >= 5 and pipeline.stats()[1]["state"] == "failed")
        stats = {row["stream"]: row for row in pipeline.stats()}
    assert stats["junk"]["state"] == "failed" and "junk.mp4" in stats["junk"]["last_error"]
    assert stats["good"]["state"] == "live"
    assert len(collect.of("good")) >= 5
    assert collect.of("junk") == []


def test_streams_can_be_added_and_removed_while_running(tmp_path: Path, cascade: LocalBackend) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    collect = Collector()
    with Pipeline(cascade, on_result=collect, max_frame_age_ms=1000) as pipeline:
        pipeline.add(PyAVSource("a", str(clip), realtime=True, loop=True))
        _until(lambda: len(collect.of("a")) >= 3)
        pipeline.add(PyAVSource("b", str(clip), realtime=True, loop=True))
        _until(lambda: len(collect.of("b")) >= 3)
        pipeline.remove("a")
        count_a, count_b = len(collect.of("a")), len(collect.of("b"))
        _until(lambda: len(collect.of("b")) >= count_b + 5)
        assert len(collect.of("a")) <= count_a + 1, "a removed stream stops producing"
        assert len(collect.of("b")) >= count_b + 5
        assert [row["stream"] for row in pipeline.stats()] == ["b"]


def test_duplicate_stream_ids_are_refused(tmp_path: Path, cascade: LocalBackend) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=3, fps=15, size=(160, 120))
    pipeline = Pipeline(cascade, on_result=Collector())
    pipeline.add(PyAVSource("a", str(clip)))
    with pytest.raises(ValueError, match="stream 'a' is already running"):
        pipeline.add(PyAVSource("a", str(clip)))
    pipeline.stop()


def test_states_of_finished_sources(tmp_path: Path, cascade: LocalBackend) -> None:
    clip = make_clip(tmp_path / "short.mp4", frames=3, fps=15, size=(160, 120))
    source = PyAVSource("short", str(clip))
    with Pipeline(cascade, on_result=Collector(), lossless=True) as pipeline:
        pipeline.add(source)
        assert pipeline.wait(30)
    assert source.state is SourceState.ENDED


def test_on_frame_sees_every_decoded_frame_even_the_dropped(tmp_path: Path, cascade: LocalBackend) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=30, size=(320, 240))
    seen: list[tuple[str, int, float]] = []
    collect = Collector()
    source = PyAVSource("cam", str(clip), realtime=True)
    with Pipeline(
        cascade, on_result=collect, on_frame=lambda f: seen.append((f.stream_id, f.index, f.pts_ms))
    ) as pipeline:
        pipeline.add(source)
        assert pipeline.wait(30)
    assert [index for _, index, _ in seen] == list(range(30)), "every decoded frame, in order, inferred or not"
    assert {r.frame for r in collect.results} <= set(range(30))


def test_one_off_images_are_batched_beside_the_streams(tmp_path: Path, cascade: LocalBackend) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    collect = Collector()
    with Pipeline(cascade, on_result=collect, max_frame_age_ms=1000) as pipeline:
        pipeline.add(PyAVSource("cam", str(clip), realtime=True, loop=True))
        _until(lambda: len(collect.of("cam")) >= 2)
        image = photo("collage")
        results = pipeline.classify([Request("", image), Request("", image[:, ::-1].copy())]).result(timeout=60)
        _until(lambda: len(collect.of("cam")) >= 4)
    assert [(r.width, r.height) for r in results] == [image.shape[1::-1]] * 2
    assert all(r.stream == "" and any(o.name == "cat" for o in r.objects) for r in results)
    assert results[0].models.keys() == {"detector", "classifier"}
    assert len(collect.of("cam")) >= 4 and not collect.of(""), "one-off results go to their caller only"
