"""What an overloaded decoder skips: the pure policy on a fake clock, then real clips decoded by PyAVSource."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from av.codec.hwaccel import hwdevices_available

from streamer.frames import Frame, Picture
from streamer.nvidia import driver_status
from streamer.sources.pyav import PyAVSource, decoded_picture, hardware_decoding
from streamer.sources.skipping import DEFAULT, NONKEY, NONREF, Counts, SkipConfig, SkipPolicy
from tests.media import make_clip

CONFIG = SkipConfig(window_s=1.0, overloaded=0.5, probe_windows=3)


class Feed:
    """Counters of a fake decoder at 30 fps with a keyframe a second, fed to a policy one window at a time."""

    def __init__(self, policy: SkipPolicy) -> None:
        self.policy = policy
        self.now = 0.0
        self.counts = Counts()
        policy.update(self.counts, self.now)

    def window(self, *, decoded: int, dropped: int, packets: int = 30, keyframes: int = 1) -> str:
        c = self.counts
        self.counts = Counts(c.packets + packets, c.keyframes + keyframes, c.decoded + decoded, c.dropped + dropped)
        self.now += CONFIG.window_s
        return self.policy.update(self.counts, self.now)


def test_an_overloaded_decoder_skips_non_reference_frames_and_comes_back_when_the_consumer_keeps_up() -> None:
    feed = Feed(SkipPolicy(CONFIG))
    assert feed.window(decoded=30, dropped=10) == DEFAULT  # a third dropped: not overloaded
    assert feed.window(decoded=30, dropped=20) == NONREF
    assert feed.window(decoded=10, dropped=2, packets=30) == NONREF  # it keeps up now, but probes only later
    assert feed.window(decoded=10, dropped=2) == NONREF
    assert feed.window(decoded=10, dropped=2) == DEFAULT  # after probe_windows calm windows: try every frame
    assert feed.window(decoded=30, dropped=20) == NONREF  # overloaded again


def test_keyframes_only_when_the_consumer_takes_no_more_than_there_are_keyframes() -> None:
    feed = Feed(SkipPolicy(CONFIG))
    assert feed.window(decoded=30, dropped=29) == NONREF  # inference_fps 1 on a 30 fps camera, no B-frames
    assert feed.window(decoded=30, dropped=29) == NONKEY  # 1 taken per second, 1 keyframe per second
    assert feed.window(decoded=1, dropped=0) == NONKEY
    assert feed.window(decoded=1, dropped=0) == NONKEY
    assert feed.window(decoded=1, dropped=0) == NONREF  # a probe: maybe it takes more now
    assert feed.window(decoded=30, dropped=25) == NONREF  # 5 a second: more than the keyframes, stay
    assert feed.window(decoded=30, dropped=25) == NONREF


def test_nothing_is_skipped_while_every_frame_is_wanted_or_before_a_window_passes() -> None:
    policy = SkipPolicy(CONFIG)
    feed = Feed(policy)
    assert feed.window(decoded=30, dropped=29) == NONREF
    assert policy.update(feed.counts, feed.now + 0.1, every_frame_wanted=True) == DEFAULT
    policy = SkipPolicy(CONFIG)
    policy.update(Counts(), 0.0)
    assert policy.update(Counts(30, 1, 30, 30), 0.5) == DEFAULT  # half a window: no decision yet
    assert policy.update(Counts(30, 1, 0, 0), 5.0) == DEFAULT  # nothing decoded: nothing to judge


def test_skip_config_is_checked() -> None:
    for bad in ({"window_s": 0}, {"overloaded": 1.0}, {"probe_windows": 0}):
        with pytest.raises(ValueError, match="SkipConfig"):
            SkipConfig(**bad)  # type: ignore[arg-type]


def test_a_picture_is_converted_once_on_first_use_from_any_thread() -> None:
    calls: list[int] = []

    def convert() -> np.ndarray:
        calls.append(1)
        time.sleep(0.01)  # let the other threads arrive while it converts
        return np.zeros((2, 3, 3), np.uint8)

    picture = Picture(3, 2, convert)
    frame = Frame("cam", 0, 0.0, picture, 0.0)
    assert frame.size == (3, 2) and not picture.converted and calls == []
    seen: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: seen.append(frame.image)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and picture.converted
    assert all(image is seen[0] for image in seen) and seen[0].shape == (2, 3, 3)
    plain = Frame("cam", 1, 0.0, np.zeros((5, 7, 3), np.uint8), 0.0)
    assert plain.size == (7, 5) and plain.image is plain.picture


def test_a_sideways_video_frame_knows_its_upright_size_before_conversion(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "phone.mp4", frames=2, size=(64, 48), rotation=90)
    with av.open(str(clip)) as container:
        frame = next(container.decode(video=0))
    picture = decoded_picture(frame)
    assert (picture.width, picture.height) == (48, 64) and not picture.converted
    assert picture.rgb().shape == (64, 48, 3)


def _bframes_clip(path: Path) -> Path:
    """60 frames at 30 fps, 3 B-frames between references (no B-pyramid: those are never referenced)."""
    options = {"preset": "veryfast", "g": "30", "x264-params": "bframes=3:b-pyramid=none:b-adapt=0"}
    return make_clip(path, frames=60, fps=30, size=(160, 120), options=options)


def _all_frames(clip: Path) -> dict[float, np.ndarray]:
    with av.open(str(clip)) as container:
        return {round(f.time * 1000.0, 3): f.to_ndarray(format="rgb24") for f in container.decode(video=0)}


def _until(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_an_overloaded_live_source_skips_frames_and_every_frame_it_gives_is_whole(tmp_path: Path) -> None:
    """Nobody takes frames from a live source's buffer: every frame is dropped, so the decoder soon leaves
    non-reference frames undecoded, then (taking none is taking fewer than the keyframes) all but the
    keyframes. The frames it still decodes equal a full decode's at the same time, no
    dropped frame was ever converted to RGB, and the skipped ones are counted."""
    clip = _bframes_clip(tmp_path / "b.mp4")
    reference = _all_frames(clip)
    seen: list[Frame] = []
    source = PyAVSource("cam", str(clip), live=True, skipping=SkipConfig(window_s=0.05), decoder="software")
    source.on_frame = seen.append
    source.start()
    try:
        _until(lambda: source.stats().skipped >= 100)
    finally:
        source.stop()
        assert source.join(5)
    stats = source.stats()
    assert stats.skipped >= 100, stats
    assert stats.skipped > stats.decoded  # most of the file's 60 packets a pass went undecoded
    assert not any(frame.picture.converted for frame in seen if isinstance(frame.picture, Picture))
    late = [frame for frame in seen if frame.index >= 60]  # after the first pass: skipping, each frame whole
    assert late and len({round(frame.pts_ms % 2000, 3) for frame in late}) <= 18
    for frame in late:
        pts = round(frame.pts_ms % 2000.0, 3)
        assert np.array_equal(frame.image, reference[pts]), pts


def test_nothing_is_skipped_while_someone_wants_every_frame(tmp_path: Path) -> None:
    clip = _bframes_clip(tmp_path / "b.mp4")
    source = PyAVSource("cam", str(clip), live=True, skipping=SkipConfig(window_s=0.05), decoder="software")
    source.every_frame_wanted = lambda: True  # a browser watches the video
    source.start()
    try:
        _until(lambda: source.stats().decoded >= 300)
    finally:
        source.stop()
        assert source.join(5)
    assert source.stats().decoded >= 300 and source.stats().skipped == 0


def test_a_file_read_without_loss_is_never_skipped(tmp_path: Path) -> None:
    clip = _bframes_clip(tmp_path / "b.mp4")
    source = PyAVSource("cam", str(clip), skipping=SkipConfig(window_s=0.01))
    source.start()
    frames = []
    while (frame := source.buffer.get(timeout=5)) is not None:
        frames.append(frame)
        time.sleep(0.002)  # a slow consumer: a lossless source waits for it
    assert source.join(5)
    assert len(frames) == 60 and source.stats().skipped == 0


def test_hardware_decoding_is_asked_only_where_it_can_work() -> None:
    assert hardware_decoding("software", ("cuda",), None) == (False, None)
    assert hardware_decoding("auto", ("cuda", "drm"), None) == (True, None)
    assert hardware_decoding("nvdec", ("cuda",), None) == (True, None)
    use, why = hardware_decoding("auto", ("vaapi",), None)
    assert not use and why is not None and "no CUDA hardware decoding" in why and "vaapi" in why
    assert hardware_decoding("nvdec", ("cuda",), "no NVIDIA driver") == (False, "no NVIDIA driver")
    with pytest.raises(ValueError, match="decoder = 'gpu'"):
        hardware_decoding("gpu", (), None)


def test_without_a_gpu_nvdec_falls_back_to_software_saying_why_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reason = driver_status()
    if reason is None:  # a GPU machine: the decoder really is NVDEC; this test is about its absence
        pytest.skip("an NVIDIA driver is present here; the software fallback cannot be observed")
    clip = make_clip(tmp_path / "c.mp4", frames=10)
    with caplog.at_level(logging.WARNING, logger="streamer.sources.pyav"):
        source = PyAVSource("cam", str(clip), decoder="nvdec")
    lines = [r.getMessage() for r in caplog.records if "decoding in software" in r.getMessage()]
    assert lines == [f"source cam: decoding in software: {reason}"] or (
        "cuda" not in hwdevices_available() and len(lines) == 1
    )
    assert source.hwaccel is None
    source.start()
    frames = []
    while (frame := source.buffer.get(timeout=5)) is not None:
        frames.append(frame)
    assert source.join(5) and len(frames) == 10 and frames[0].image.shape == (240, 320, 3)
