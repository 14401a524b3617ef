"""VIDEO and LIVE_STREAM running modes, on real decoded video, and every misuse."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamer.errors import RunningModeError
from streamer.results import FrameResult
from streamer.tasks import Classifier, ClassifierOptions, RunningMode
from tests.media import make_clip


def _frames(path: Path) -> list[tuple[np.ndarray, int]]:
    with av.open(str(path)) as container:
        return [(f.to_ndarray(format="rgb24"), round(f.time * 1000)) for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, int]]:
    return _frames(make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=12, fps=12, source="coffee"))


def test_video_mode_classifies_every_frame_in_order(cache_dir: Path, clip_frames: list[tuple[np.ndarray, int]]) -> None:
    options = ClassifierOptions(running_mode=RunningMode.VIDEO, device="cpu", cache_dir=cache_dir)
    with Classifier.create_from_options(options) as video:
        results = [video.classify_for_video(image, ts) for image, ts in clip_frames]
    assert [r.frame for r in results] == list(range(12))
    assert [r.pts_ms for r in results] == [float(ts) for _, ts in clip_frames]
    assert sum(r.classes[0].name in {"espresso", "cup", "coffee mug"} for r in results) >= 10


def test_video_timestamps_must_strictly_increase(cache_dir: Path, coffee: np.ndarray) -> None:
    options = ClassifierOptions(running_mode=RunningMode.VIDEO, device="cpu", cache_dir=cache_dir)
    with Classifier.create_from_options(options) as video:
        video.classify_for_video(coffee, 100)
        with pytest.raises(RunningModeError, match="timestamp_ms must strictly increase: got 100 after 100"):
            video.classify_for_video(coffee, 100)
        with pytest.raises(RunningModeError, match="got 50 after 100"):
            video.classify_for_video(coffee, 50)
        assert video.classify_for_video(coffee, 101).frame == 1


def test_live_stream_calls_back_off_the_caller_thread(
    cache_dir: Path, clip_frames: list[tuple[np.ndarray, int]]
) -> None:
    received: list[tuple[FrameResult, int, int, str]] = []
    done = threading.Event()

    returned = threading.Event()  # every classify_async call has returned
    early: list[bool] = []  # per result: had they all returned before it was delivered?

    def callback(result: FrameResult, image: np.ndarray, timestamp_ms: int) -> None:
        early.append(returned.wait(30))  # a classify_async that waited for its result would never let this pass
        received.append((result, image.shape[1], timestamp_ms, threading.current_thread().name))
        if timestamp_ms == clip_frames[-1][1]:
            done.set()

    options = ClassifierOptions(
        running_mode=RunningMode.LIVE_STREAM, result_callback=callback, device="cpu", cache_dir=cache_dir
    )
    with Classifier.create_from_options(options) as live:
        for image, ts in clip_frames:
            live.classify_async(image, ts)
        returned.set()
        assert done.wait(60), "the last frame is always delivered"
        dropped = live.dropped
    assert early and all(early), "classify_async returns at once, before results are delivered"
    stamps = [ts for _, _, ts, _ in received]
    assert stamps == sorted(stamps) and stamps[-1] == clip_frames[-1][1]
    assert len(received) + dropped == len(clip_frames), "every frame is either delivered or counted as dropped"
    assert {name for *_, name in received} == {"result-callback"}
    assert all(r.pts_ms == ts for r, _, ts, _ in received)


def test_live_stream_survives_a_raising_callback(cache_dir: Path, coffee: np.ndarray) -> None:
    calls: list[int] = []

    def callback(result: FrameResult, image: np.ndarray, timestamp_ms: int) -> None:
        calls.append(timestamp_ms)
        raise RuntimeError("user code failed")

    options = ClassifierOptions(
        running_mode=RunningMode.LIVE_STREAM, result_callback=callback, device="cpu", cache_dir=cache_dir
    )
    with Classifier.create_from_options(options) as live:
        live.classify_async(coffee, 1)
        deadline = time.monotonic() + 10
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        live.classify_async(coffee, 2)
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert calls == [1, 2]


@pytest.mark.parametrize(
    ("mode", "method"),
    [
        (RunningMode.IMAGE, "classify_for_video"),
        (RunningMode.IMAGE, "classify_async"),
        (RunningMode.VIDEO, "classify_async"),
        (RunningMode.VIDEO, "classify"),
        (RunningMode.LIVE_STREAM, "classify"),
        (RunningMode.LIVE_STREAM, "classify_for_video"),
    ],
)
def test_each_mode_refuses_the_others_methods(
    cache_dir: Path, coffee: np.ndarray, mode: RunningMode, method: str
) -> None:
    callback = (lambda r, i, t: None) if mode is RunningMode.LIVE_STREAM else None
    options = ClassifierOptions(running_mode=mode, result_callback=callback, device="cpu", cache_dir=cache_dir)
    with Classifier.create_from_options(options) as classifier:
        args = (coffee,) if method == "classify" else (coffee, 1)
        with pytest.raises(RunningModeError, match=rf"{method}\(\) needs running_mode .* created for {mode.name}"):
            getattr(classifier, method)(*args)
