"""``streamer annotate`` on real clips: every frame kept with its timestamp, audio copied, boxes where the JSON says."""

from __future__ import annotations

import csv
import json
import os
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from streamer.annotation.job import BACKGROUND_NICE, annotate
from streamer.annotation.reader import VideoReader
from streamer.cli import main
from streamer.inference.backend import LocalBackend
from streamer.inference.cascade import CascadeConfig
from streamer.results import Category, Detection, FrameResult, Label
from streamer.sinks.table import COLUMNS
from streamer.vision.draw import draw_result
from tests.media import clip_frame, make_clip, photo


def video_frames(path: Path) -> tuple[list[float], list[np.ndarray], Any]:
    """Seconds and RGB images of every frame, and (time base, average rate, codec) of the video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = (stream.time_base, stream.average_rate, stream.codec_context.name)
        frames = list(container.decode(stream))
        return [float(f.pts * f.time_base) for f in frames], [f.to_ndarray(format="rgb24") for f in frames], info


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    """(seconds, payload) of every audio packet."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [
            (float(p.pts * p.time_base), bytes(p))
            for p in container.demux(container.streams.audio[0])
            if p.size and p.pts is not None
        ]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def from_wire(record: dict[str, Any]) -> FrameResult:
    """A FrameResult back from its wire format (what the JSON lines hold)."""

    def category(c: dict[str, Any]) -> Category:
        return Category(c["class_id"], c["name"], c["display_name"], c["confidence"])

    objects = tuple(
        Detection(
            tuple(o["box"]),
            o["class_id"],
            o["name"],
            o["confidence"],
            tuple(map(category, o["classes"])),
            o["track_id"],
            Label(**o["label"]) if o["label"] else None,
            tuple(o["zones"]),
        )
        for o in record["objects"]
    )
    return FrameResult(record["width"], record["height"], tuple(map(category, record["classes"])), objects)


@pytest.mark.parametrize(
    ("name", "codec", "audio_codec", "output"),
    [
        ("h264-aac.mp4", "libx264", "aac", "out.mp4"),
        ("vp9-opus.webm", "libvpx-vp9", "libopus", "out.mkv"),
        ("h264-silent.mp4", "libx264", None, "out.mp4"),
    ],
)
def test_every_frame_keeps_its_timestamp_and_the_audio_is_copied(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, codec: str, audio_codec: str | None, output: str
) -> None:
    clip = make_clip(
        tmp_path / name, frames=24, fps=12, codec=codec, audio=audio_codec is not None, audio_codec=audio_codec or ""
    )
    out, jsonl, table = tmp_path / output, tmp_path / "r.jsonl", tmp_path / "r.csv"
    code = main(["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl), "--csv", str(table)])
    assert code == 0, capsys.readouterr().err
    assert f"{clip}: 24 frames (24 classified)" in capsys.readouterr().out

    times_in, images_in, (_, rate_in, _) = video_frames(clip)
    times_out, images_out, (_, rate_out, codec_out) = video_frames(out)
    assert len(images_out) == len(images_in) == 24
    assert rate_out == rate_in == 12
    assert times_out == pytest.approx(times_in, abs=1e-6)
    assert codec_out == "h264"
    if audio_codec is None:
        assert audio_packets(out) == []
    else:
        copied, original = audio_packets(out), audio_packets(clip)
        assert len(copied) == len(original) > 20
        assert [p for _, p in copied] == [p for _, p in original], "packets copied byte for byte"
        assert [t for t, _ in copied] == pytest.approx([t for t, _ in original], abs=1e-3)

    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == list(range(24))
    assert [r["pts_ms"] for r in records] == pytest.approx([t * 1000 for t in times_in], abs=1e-3)
    assert {r["stream"] for r in records} == {str(clip)}
    assert all(r["objects"] for r in records), "the collage has a cup, a motorbike, a person and a cat"
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == sum(len(r["objects"]) for r in records), "one row per object per frame"
    objects = [o for r in records for o in r["objects"]]
    assert rows[0]["object_name"] == objects[0]["name"] and float(rows[0]["x1"]) == pytest.approx(objects[0]["box"][0])
    for row, obj in zip(rows, objects, strict=True):
        assert row["class_name"] == (obj["classes"][0]["name"] if obj["classes"] else "")
        assert row["track_id"] == ("" if obj["track_id"] is None else str(obj["track_id"]))
        assert row["label"] == (obj["label"]["name"] if obj["label"] else "")
    tracked = [o for o in objects if o["track_id"] is not None]
    assert tracked and any(o["label"] for o in tracked), "annotate tracks: ids, and labels once they settle"
    assert sum(1 for o in objects if o["classes"]) < len(objects) / 3, "settled tracks are not classified again"


def test_boxes_are_drawn_where_the_json_says(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=6, fps=6, size=(640, 480), options={"crf": "12"})
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    assert main(["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl)]) == 0
    _, images_in, _ = video_frames(clip)
    _, images_out, _ = video_frames(out)
    for record, source, annotated in zip(read_jsonl(jsonl), images_in, images_out, strict=True):
        expected = draw_result(source, from_wire(record))
        drawn = np.any(expected != source, axis=2)  # the box edges and labels of this frame's JSON
        assert drawn.mean() > 0.01
        error = np.abs(annotated.astype(int) - expected.astype(int)).sum(axis=2)
        unlike = np.abs(annotated.astype(int) - source.astype(int)).sum(axis=2)
        assert error[drawn].mean() < 0.25 * unlike[drawn].mean(), "the output has the drawing, not the bare frame"
        assert error[~drawn].mean() < 12, "and elsewhere it is the input frame"


def test_variable_frame_rate_timestamps_survive(tmp_path: Path) -> None:
    """Gaps in the input's timestamps stay gaps: nothing is resampled to a constant rate."""
    clip = tmp_path / "vfr.mkv"
    ticks = [0, 1, 2, 5, 6, 10, 11, 12, 20, 21]  # in 1/30 s
    picture = photo("chelsea")
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        for i, tick in enumerate(ticks):
            frame = av.VideoFrame.from_ndarray(clip_frame(picture, i, len(ticks), (320, 240)), format="rgb24")
            frame.pts = tick
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mkv"
    assert main(["annotate", str(clip), "-o", str(out), "--stages", "classify"]) == 0
    times, _, _ = video_frames(out)
    assert times == pytest.approx([t / 30 for t in ticks], abs=1e-3)


def test_every_start_and_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=45, fps=15, audio=True)
    out, jsonl = tmp_path / "part.mp4", tmp_path / "r.jsonl"
    code = main(
        ["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl), "--start", "1", "--end", "2", "--every", "3"]
    )
    assert code == 0, capsys.readouterr().err
    times, _, _ = video_frames(out)
    assert len(times) == 15, "frames 15..29, all of them written"
    assert times == pytest.approx([i / 15 for i in range(15)], abs=1e-3), "the excerpt starts at 0"
    records = read_jsonl(jsonl)
    assert [r["frame"] for r in records] == [0, 3, 6, 9, 12], "every third frame classified"
    assert [r["pts_ms"] for r in records] == pytest.approx([1000 + i * 1000 / 15 for i in (0, 3, 6, 9, 12)])
    sound = audio_packets(out)
    assert sound and 0 <= sound[0][0] < 0.05 and sound[-1][0] < 1.0, "the audio of that second, shifted too"


def test_several_inputs_and_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "recordings"
    (folder / "day2").mkdir(parents=True)
    one = make_clip(tmp_path / "one.mp4", frames=5, fps=5)
    make_clip(folder / "a.mkv", frames=4, fps=4, codec="mpeg4")
    make_clip(folder / "day2" / "b.mp4", frames=3, fps=3)
    (folder / "notes.txt").write_text("not a video")
    outdir, jsonl = tmp_path / "annotated", tmp_path / "all.jsonl"
    code = main(["annotate", str(one), str(folder), "-o", str(outdir), "--jsonl", str(jsonl), "--stages", "classify"])
    assert code == 0, capsys.readouterr().err
    written = {p.relative_to(outdir).as_posix(): len(video_frames(p)[0]) for p in outdir.rglob("*.mp4")}
    assert written == {"one.mp4": 5, "a.mp4": 4, "day2/b.mp4": 3}
    streams = [r["stream"] for r in read_jsonl(jsonl)]
    assert streams == [str(one)] * 5 + [str(folder / "a.mkv")] * 4 + [str(folder / "day2" / "b.mp4")] * 3
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "no temporary files left"


def test_results_only_and_whole_frame_rows(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=4, fps=4, source="chelsea")
    table = tmp_path / "r.csv"
    assert main(["annotate", str(clip), "--csv", str(table), "--stages", "classify"]) == 0
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    assert [r["frame"] for r in rows] == ["0", "1", "2", "3"], "one row per frame without a detector"
    assert all(r["x1"] == "" and r["object_name"] == "" for r in rows)
    assert {r["class_name"] for r in rows} <= {"tabby", "tiger cat", "Egyptian cat"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "r.csv"], "no video written unless asked"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to write"),
        (["-o", "x.mp4", "--every", "0"], "--every"),
        (["-o", "x.mp4", "--start", "5", "--end", "2"], "--end"),
        (["-o", "x.mp4", "--jsonl", "x.mp4"], "same name"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    clip = make_clip(tmp_path / "clip.mp4", frames=2, fps=2)
    assert main(["annotate", str(clip), *[str(tmp_path / a) if a.endswith(".mp4") else a for a in args]]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("audio_codec", "output", "expected"),
    [
        ("pcm_s16le", "out.mp4", "aac"),  # MP4 would take the PCM, then fail to finish the file
        ("libopus", "out.mov", "aac"),  # MOV refuses Opus when the header is written
        ("aac", "out.webm", "opus"),  # WebM lists no AAC at all
    ],
)
def test_audio_the_output_cannot_hold_is_re_encoded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], audio_codec: str, output: str, expected: str
) -> None:
    clip = make_clip(tmp_path / "clip.mkv", frames=10, fps=10, codec="mpeg4", audio=True, audio_codec=audio_codec)
    out = tmp_path / output
    assert main(["annotate", str(clip), "-o", str(out), "--stages", "classify"]) == 0, capsys.readouterr().err
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == expected
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples == pytest.approx(48000, rel=0.05), "one second of sound, as in the input"
    assert len(video_frames(out)[0]) == 10


@pytest.mark.parametrize(("rotation", "corner"), [(90, "bottom-left"), (-90, "top-right"), (180, "bottom-right")])
def test_a_phone_video_is_annotated_upright(tmp_path: Path, rotation: int, corner: str) -> None:
    """A clip stored sideways with a display rotation is classified and written the way players show it."""
    stored = np.zeros((240, 320, 3), np.uint8)
    stored[:60, :80] = 255  # a white block in the stored frame's top-left corner
    clip = tmp_path / "phone.mp4"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.set_display_rotation(rotation)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    assert main(["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl), "--stages", "detect"]) == 0
    _, images, _ = video_frames(out)
    height, width = images[0].shape[:2]
    assert (width, height) == ((240, 320) if rotation % 180 else (320, 240))
    assert {(r["width"], r["height"]) for r in read_jsonl(jsonl)} == {(width, height)}, "results in upright pixels"
    with av.open(str(out)) as container:
        assert next(container.decode(video=0)).rotation == 0, "no rotation left for players to apply twice"
    rows = slice(0, 40) if corner.startswith("top") else slice(height - 40, height)
    cols = slice(0, 40) if corner.endswith("left") else slice(width - 40, width)
    assert images[0][rows, cols].mean() > 200, f"the block is {corner}, where a player shows it"
    opposite = (
        slice(height - 40, height) if corner.startswith("top") else slice(0, 40),
        slice(width - 40, width) if corner.endswith("left") else slice(0, 40),
    )
    assert images[0][opposite].mean() < 50, "and the opposite corner is dark"


def test_b_frames_at_ntsc_rate_keep_order_and_timestamps(tmp_path: Path) -> None:
    """Frames decoded out of order (B-frames) at 30000/1001 fps come out in order, on the same clock."""
    clip = tmp_path / "bframes.mp4"
    picture = photo("collage")
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "medium", "bf": "3"}
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(clip_frame(picture, i, 30, (320, 240)), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with av.open(str(clip)) as container:
        assert any(frame.pict_type == av.video.frame.PictureType.B for frame in container.decode(video=0))
    out, jsonl = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    assert main(["annotate", str(clip), "-o", str(out), "--jsonl", str(jsonl), "--stages", "classify"]) == 0
    times_in, _, (_, rate_in, _) = video_frames(clip)
    times_out, _, (_, rate_out, _) = video_frames(out)
    assert rate_out == rate_in == Fraction(30000, 1001)
    assert times_out == pytest.approx(times_in, abs=1e-6) and len(times_out) == 30
    assert [r["pts_ms"] for r in read_jsonl(jsonl)] == pytest.approx([t * 1000 for t in times_in], abs=1e-3)


def test_annotate_records_events_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STREAMER_STORAGE_DIR")  # config.toml's [storage] dir below, then
    clip = make_clip(tmp_path / "clip.mp4", frames=24, fps=12, size=(640, 480))
    storage = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text(f'[storage]\ndir = "{storage}"\npre_capture_s = 1.0\npost_capture_s = 0.5\n', encoding="utf-8")
    assert main(["annotate", str(clip), "--config", str(config), "--jsonl", str(tmp_path / "r.jsonl")]) == 0
    assert not (storage / "events.db").exists(), "no events unless asked"
    assert main(["annotate", str(clip), "--config", str(config), "--events", "--stages", "detect"]) == 0
    capsys.readouterr()
    assert main(["events", "--config", str(config), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and all(e["stream"] == str(clip) and e["end_time"] is not None for e in events), events
    ids = {e["track_id"] for e in events}
    tracked = {o["track_id"] for r in read_jsonl(tmp_path / "r.jsonl") for o in r["objects"]} - {None}
    assert len(ids) == len(events) and tracked, (ids, tracked)
    assert all(e["has_snapshot"] for e in events)
    with_clip = [e for e in events if e["has_clip"]]
    assert with_clip, "the encoder wrote the clips of events that ended with the file"
    with av.open(str(storage / "clips" / f"{with_clip[0]['id']}.mp4")) as container:
        assert len(list(container.decode(video=0))) >= 5
    assert main(["annotate", str(clip), "--config", str(config), "--events", "--stages", "classify"]) == 2


def test_decoding_and_encoding_yield_the_cores_to_inference(tmp_path: Path) -> None:
    """The encoding thread (where watchers run) works at the background priority; the caller's is untouched."""
    clip = make_clip(tmp_path / "clip.mp4", frames=6)
    seen: set[int] = set()
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    backend = LocalBackend(CascadeConfig(stages="classify", device="cpu"))
    reader = VideoReader(clip)
    try:
        watcher = lambda result, frame: seen.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))  # noqa: E731
        outcome = annotate(backend, reader, stream_id="clip", watchers=[watcher])
    finally:
        reader.close()
        backend.close()
    assert outcome.frames == 6
    assert seen == {max(before, BACKGROUND_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
