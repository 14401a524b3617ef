"""The Pipeline: real clips through the real models, many streams, one failing, streams added live."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sources import Frame, PyAVSource, SourceState
from streamer.tasks import Classifier, ClassifierOptions
from tests.media import make_clip


@pytest.fixture(scope="module")
def cascade() -> Classifier:
    return Classifier.create_from_options(ClassifierOptions(stages="cascade", device="cpu", max_results=1))


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


def test_files_are_annotated_losslessly_and_in_order(tmp_path: Path, cascade: Classifier) -> None:
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


def test_one_failing_stream_never_stops_the_others(tmp_path: Path, cascade: Classifier) -> None:
    good = make_clip(tmp_path / "good.mp4", frames=200, fps=15, size=(320, 240))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 50_000)
    collect = Collector()
    pipeline = Pipeline(cascade, on_result=collect, max_frame_age_ms=1000)
    pipeline.add(PyAVSource("good", str(good), realtime=True, loop=True))
    pipeline.add(PyAVSource("junk", str(junk)))
    with pipeline:
        time.sleep(3)
        stats = {row["stream"]: row for row in pipeline.stats()}
    assert stats["junk"]["state"] == "failed" and "junk.mp4" in stats["junk"]["last_error"]
    assert stats["good"]["state"] == "live"
    assert len(collect.of("good")) >= 5
    assert collect.of("junk") == []


def test_streams_can_be_added_and_removed_while_running(tmp_path: Path, cascade: Classifier) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    collect = Collector()
    with Pipeline(cascade, on_result=collect, max_frame_age_ms=1000) as pipeline:
        pipeline.add(PyAVSource("a", str(clip), realtime=True, loop=True))
        time.sleep(1.5)
        pipeline.add(PyAVSource("b", str(clip), realtime=True, loop=True))
        time.sleep(1.5)
        pipeline.remove("a")
        count_a = len(collect.of("a"))
        time.sleep(1.5)
        assert len(collect.of("a")) <= count_a + 1, "a removed stream stops producing"
        assert len(collect.of("b")) >= 5
        assert [row["stream"] for row in pipeline.stats()] == ["b"]
    assert all(r.timings_ms["age"] < 1000 + 500 for r in collect.results)


def test_duplicate_stream_ids_are_refused(tmp_path: Path, cascade: Classifier) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=3, fps=15, size=(160, 120))
    pipeline = Pipeline(cascade, on_result=Collector())
    pipeline.add(PyAVSource("a", str(clip)))
    with pytest.raises(ValueError, match="stream 'a' is already running"):
        pipeline.add(PyAVSource("a", str(clip)))
    pipeline.stop()


def test_states_of_finished_sources(tmp_path: Path, cascade: Classifier) -> None:
    clip = make_clip(tmp_path / "short.mp4", frames=3, fps=15, size=(160, 120))
    source = PyAVSource("short", str(clip))
    with Pipeline(cascade, on_result=Collector(), lossless=True) as pipeline:
        pipeline.add(source)
        assert pipeline.wait(30)
    assert source.state is SourceState.ENDED


def test_on_frame_sees_every_decoded_frame_even_the_dropped(tmp_path: Path, cascade: Classifier) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=30, size=(320, 240))
    seen: list[tuple[str, int, float]] = []
    collect = Collector()
    source = PyAVSource("cam", str(clip), realtime=True)
    with Pipeline(
        cascade, on_result=collect, on_frame=lambda f: seen.append((f.stream_id, f.index, f.pts_ms))
    ) as pipeline:
        pipeline.add(source)
        assert pipeline.wait(30)
    assert [index for _, index, _ in seen] == list(range(30)), "every decoded frame, in order"
    assert len(collect.results) < 30, "a realtime source at 30 fps outruns the cascade, yet on_frame saw all"
