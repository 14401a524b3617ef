"""``streamer annotate`` on bad input: truncated, corrupt, empty and undecodable files, taken outputs, signals.

Every clip is made here with PyAV and then damaged the way real files are:
cut short by a full disk or an interrupted copy, overwritten with noise,
written without a single frame, or in a codec this FFmpeg cannot decode.
"""

from __future__ import annotations

import fractions
import json
import signal
import sys
import time
from pathlib import Path
from typing import cast

import av
import av.error
import numpy as np
import pytest
from av.video.stream import VideoStream

from streamer.cli import main
from streamer.files import atomic_path
from tests.media import clip_frame, make_clip, photo
from tests.process import spawn

FAST = ["--stages", "classify"]  # no detector: these tests are about files, not boxes


def decoded_frames(path: Path) -> int:
    """How many video frames PyAV decodes from ``path``, to the end or the first error."""
    count = 0
    with av.open(str(path)) as container:
        try:
            for _ in container.decode(container.streams.video[0]):
                count += 1
        except av.error.FFmpegError:
            pass
    return count


def leftovers(folder: Path) -> list[str]:
    """Temporary files :func:`atomic_path` left behind in ``folder`` (there should be none)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and ".part" in p.name)


def cut(path: Path, fraction: float, name: str) -> Path:
    """A copy of ``path`` holding only its first ``fraction`` of bytes, like an interrupted download."""
    data = path.read_bytes()
    target = path.with_name(name)
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def tone_frames(seconds: float) -> list[av.AudioFrame]:
    """``seconds`` of a 440 Hz tone as 48 kHz mono frames of 1024 samples (AAC's frame size)."""
    samples = int(48000 * seconds)
    tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
    frames = []
    for start in range(0, samples, 1024):
        frame = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
        frame.sample_rate = 48000
        frame.pts = start
        frames.append(frame)
    return frames


def zero_frame_file(path: Path, *, video: bool = True, audio: bool = False) -> Path:
    """A container with a declared H.264 stream (if ``video``) but no video frame, and an AAC track if ``audio``."""
    with av.open(str(path), "w") as container:
        if video:
            stream = container.add_stream("libx264", rate=15)
            stream.width, stream.height = 320, 240
            stream.pix_fmt = "yuv420p"
        if audio:
            sound = container.add_stream("aac", rate=48000)
            for frame in tone_frames(1.0):
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        container.start_encoding()  # the header, even with nothing after it
    return path


def avs2_file(path: Path) -> Path:
    """An MPEG-TS with an AVS2 video stream: PyAV's FFmpeg muxes it but has no AVS2 decoder."""
    with av.open(str(path), "w") as container:
        stream = cast(VideoStream, container.add_mux_stream("avs2", rate=25))
        stream.width, stream.height = 64, 48
        stream.time_base = fractions.Fraction(1, 25)
        rng = np.random.default_rng(7)
        for i in range(100):
            packet = av.Packet(rng.bytes(2000))
            packet.pts = packet.dts = i
            packet.stream = stream
            packet.time_base = stream.time_base
            container.mux(packet)
    return path


# -- truncated and corrupt files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "muxer", "damage"),
    [
        ("clip.mkv", {}, "cut"),
        ("clip.mp4", {"movflags": "+faststart"}, "cut"),
        ("clip.mp4", {"movflags": "+faststart"}, "noise"),
    ],
    ids=["matroska-cut", "mp4-faststart-cut", "mp4-faststart-noise"],
)
def test_a_truncated_or_corrupt_file_is_annotated_as_far_as_it_decodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, muxer: dict[str, str], damage: str
) -> None:
    whole = make_clip(tmp_path / name, frames=40, container_options=muxer)
    if damage == "cut":
        broken = cut(whole, 0.55, f"cut-{name}")
    else:  # the second half overwritten: the header still promises 40 frames, the decoder fails half way
        data = bytearray(whole.read_bytes())
        data[len(data) // 2 :] = np.random.default_rng(3).bytes(len(data) - len(data) // 2)
        broken = tmp_path / f"noisy-{name}"
        broken.write_bytes(bytes(data))
    readable = decoded_frames(broken)
    assert 0 < readable < 40, "the cut must leave some frames, and not all"
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"

    code = main(["annotate", str(broken), "-o", str(out), "--jsonl", str(jsonl), *FAST])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert decoded_frames(out) == readable, "every frame that decodes is annotated, and no other"
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["frame"] for r in records] == list(range(readable))
    assert f"{broken}: {readable} frames" in captured.out
    warning = next(line for line in captured.err.splitlines() if "warning" in line)
    assert str(broken) in warning
    assert f"frame {readable} (" in warning and " s)" in warning, f"says where it stopped: {warning}"
    assert leftovers(tmp_path) == []


def test_a_whole_file_with_longer_audio_is_not_called_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Matroska's duration is its longest track's: a video track that ends first is still complete."""
    clip = tmp_path / "clip.mkv"
    picture = photo()
    with av.open(str(clip), "w") as container:
        video = container.add_stream("libx264", rate=15)
        video.width, video.height, video.pix_fmt = 320, 240, "yuv420p"
        video.options = {"preset": "ultrafast"}
        sound = container.add_stream("aac", rate=48000)
        for i in range(15):
            frame = av.VideoFrame.from_ndarray(clip_frame(picture, i, 15, (320, 240)), format="rgb24")
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for block in tone_frames(2.0):  # twice as long as the video
            container.mux(sound.encode(block))
        container.mux(sound.encode(None))
    out = tmp_path / "out.mkv"
    code = main(["annotate", str(clip), "-o", str(out), *FAST])
    assert code == 0, capsys.readouterr().err
    assert decoded_frames(out) == 15


def test_an_mp4_cut_before_its_index_is_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    whole = make_clip(tmp_path / "clip.mp4", frames=20)  # the moov atom is written last
    broken = cut(whole, 0.6, "cut.mp4")
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    assert main(["annotate", str(broken), "-o", str(out), "--jsonl", str(jsonl), *FAST]) == 1
    error = capsys.readouterr().err
    assert f"streamer: error: cannot open {broken}" in error
    assert not out.exists() and not jsonl.exists(), "nothing written for an input that yields no frame"
    assert leftovers(tmp_path) == []


def test_random_bytes_fail_by_name_and_the_good_input_is_still_annotated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "x.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(200_000))
    alone = tmp_path / "alone.mp4"
    assert main(["annotate", str(noise), "-o", str(alone), *FAST]) == 1
    assert str(noise) in capsys.readouterr().err
    assert not alone.exists()

    good = make_clip(tmp_path / "good.mkv", frames=20)
    folder, jsonl = tmp_path / "annotated", tmp_path / "r.jsonl"
    code = main(["annotate", str(noise), str(good), "-o", str(folder), "--jsonl", str(jsonl), *FAST])
    captured = capsys.readouterr()
    assert code == 1, "one input failed"
    assert f"streamer: error: cannot open {noise}" in captured.err
    assert sorted(p.name for p in folder.iterdir()) == ["good.mp4"]
    assert decoded_frames(folder / "good.mp4") == 20
    records = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 20 and {r["stream"] for r in records} == {str(good)}
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "video", "audio", "message"),
    [
        ("header-only.mkv", True, False, "no video frames"),
        ("empty-track.mp4", True, False, "no video stream"),
        ("audio-only.mp4", False, True, "no video stream"),
        ("silent-picture.mkv", True, True, "no video frames"),
    ],
)
def test_a_file_without_a_video_frame_fails_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, video: bool, audio: bool, message: str
) -> None:
    empty = zero_frame_file(tmp_path / name, video=video, audio=audio)
    out, table = tmp_path / "out.mp4", tmp_path / "r.csv"
    assert main(["annotate", str(empty), "-o", str(out), "--csv", str(table), *FAST]) == 1
    error = capsys.readouterr().err
    assert str(empty) in error and message in error, error
    assert not out.exists() and not table.exists()
    assert leftovers(tmp_path) == []


# -- codecs -----------------------------------------------------------------------------------------------------------


def test_an_undecodable_codec_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = avs2_file(tmp_path / "avs2.ts")
    out = tmp_path / "out.mp4"
    assert main(["annotate", str(clip), "-o", str(out), *FAST]) == 1
    error = capsys.readouterr().err
    assert f"{clip}: its video codec avs2 cannot be decoded" in error
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("codec", "message"),
    [
        ("nosuchcodec", "no video encoder named 'nosuchcodec'"),
        ("pcm_s16le", "is not a video codec (it is audio)"),
    ],
)
def test_a_bad_output_codec_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str, message: str
) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=4)
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    assert main(["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl), "--codec", codec, *FAST]) == 2
    error = capsys.readouterr().err
    assert message in error
    if codec == "nosuchcodec":
        assert "use one of: h264" in error, "lists the encoders there are"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


# -- outputs that exist -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["-o", "--jsonl", "--csv"])
def test_an_existing_output_is_kept_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=6)
    taken = tmp_path / {"-o": "out.mp4", "--jsonl": "r.jsonl", "--csv": "r.csv"}[option]
    taken.write_bytes(b"precious")
    assert main(["annotate", str(clip), option, str(taken), *FAST]) == 2
    error = capsys.readouterr().err
    assert f"{taken} already exists; use --force" in error
    assert taken.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []

    assert main(["annotate", str(clip), option, str(taken), "--force", *FAST]) == 0
    if option == "-o":
        assert decoded_frames(taken) == 6
    elif option == "--jsonl":
        assert [json.loads(line)["frame"] for line in taken.read_text().splitlines()] == list(range(6))
    else:
        assert taken.read_text().splitlines()[0].startswith("stream,")
        assert len(taken.read_text().splitlines()) == 1 + 6
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("option", ["-o", "--jsonl"])
def test_the_input_is_never_an_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    before = clip.read_bytes()
    assert main(["annotate", str(clip), option, str(clip), "--force", *FAST]) == 2
    assert f"{clip} is an input" in capsys.readouterr().err
    assert clip.read_bytes() == before


# -- interrupted runs -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Long enough that the cascade takes many seconds on a CPU."""
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=300, fps=30, size=(640, 480))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_leaves_no_output(tmp_path: Path, long_clip: Path, signum: signal.Signals) -> None:
    out, jsonl, table = tmp_path / "out.mp4", tmp_path / "r.jsonl", tmp_path / "r.csv"
    command = [sys.executable, "-m", "streamer.cli", "annotate", str(long_clip), "-o", str(out)]
    command += ["--jsonl", str(jsonl), "--csv", str(table), "--stages", "cascade"]
    with spawn(command) as child:
        deadline = time.monotonic() + 60
        encoding = False
        while not encoding and child.alive() and time.monotonic() < deadline:
            time.sleep(0.1)  # until the annotated video has frames in it: the run is well under way
            encoding = any(p.stat().st_size > 0 for p in tmp_path.glob(".out.mp4.*.part.mp4"))
        assert encoding, f"the run never started writing: {child.stderr()}"
        assert len(leftovers(tmp_path)) == 3, "one temporary file per output while it runs"
        child.send_signal(signum)
        code = child.wait(30)
    assert code == 130, child.stderr()
    assert not out.exists() and not jsonl.exists() and not table.exists()
    assert leftovers(tmp_path) == []


# -- atomic_path ------------------------------------------------------------------------------------------------------


def test_atomic_path_replaces_the_file_only_when_the_block_succeeds(tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".results.jsonl.") and tmp.suffix == ".jsonl"
        tmp.write_text("new")
        assert target.read_text() == "old", "untouched until the block ends"
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_path_keeps_the_old_file_when_the_block_fails(tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.mp4"
    target.write_text("old")
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise error
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_atomic_path_makes_the_folder_and_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "out.csv"
    with pytest.raises(ValueError), atomic_path(target):
        raise ValueError("no rows")
    assert not target.exists() and leftovers(target.parent) == []
    with atomic_path(target) as tmp:
        tmp.write_text("rows")
    assert target.read_text() == "rows"
