"""The streamer command, run as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def streamer(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def test_classify_prints_a_table() -> None:
    done = streamer("classify", "samples/chelsea.jpg", "samples/coffee.jpg", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("samples/chelsea.jpg  451x300")
    assert "tiger cat" in lines[1] or "Egyptian cat" in lines[1] or "tabby" in lines[1]
    assert any(line.startswith("samples/coffee.jpg") for line in lines)
    assert "espresso" in done.stdout


def test_classify_json(tmp_path: Path) -> None:
    done = streamer("classify", str(REPO / "samples/coffee.jpg"), "--json", "--top-k", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert set(record) == {"path", "width", "height", "classes", "timings_ms"}
    assert (record["width"], record["height"]) == (600, 400)
    assert len(record["classes"]) == 3
    assert set(record["classes"][0]) == {"class_id", "name", "display_name", "confidence"}
    assert record["classes"][0]["name"] == "espresso" and record["classes"][0]["confidence"] > 0.9
    assert set(record["timings_ms"]) == {"preprocess", "inference"}


def test_missing_and_unreadable_images_fail_with_one_line_each(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    done = streamer("classify", str(tmp_path / "gone.jpg"), str(text), "samples/coffee.jpg", "--json")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert errors == [
        f"streamer: error: image {tmp_path / 'gone.jpg'} does not exist",
        f"streamer: error: {text} is not an image OpenCV can decode (12 bytes); "
        "give a PNG, JPEG, BMP, TIFF or WebP file",
    ]
    assert json.loads(done.stdout)["classes"][0]["name"] == "espresso", "the good image is still classified"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--top-k", "0"), "max_results = 0"),
        (("--device", "gpu"), "device = 'gpu' (from command line) is not allowed"),
        (("--model", "missing.onnx"), "classifier model missing.onnx does not exist"),
    ],
)
def test_bad_options_exit_2(args: tuple[str, ...], message: str) -> None:
    done = streamer("classify", "samples/coffee.jpg", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_models_list_and_build(tmp_path: Path) -> None:
    listed = streamer("models", "list", "--cache-dir", str(tmp_path))
    assert listed.returncode == 0
    assert "efficientnet-lite0" in listed.stdout and "not built" in listed.stdout
    built = streamer("models", "build", "efficientnet-lite0", "--cache-dir", str(tmp_path))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "models" / "efficientnet-lite0" / "model.onnx").is_file()
    relisted = streamer("models", "list", "--cache-dir", str(tmp_path))
    line = next(line for line in relisted.stdout.splitlines() if line.startswith("efficientnet-lite0"))
    assert " built " in line


def test_classify_detect_json_has_objects_with_classes() -> None:
    done = streamer("classify", "--detect", "samples/coffee.jpg", "--json", "--top-k", "2")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    cup = record["objects"][0]
    assert cup["name"] == "cup" and cup["confidence"] > 0.5
    assert len(cup["box"]) == 4 and cup["classes"][0]["name"] == "espresso" and len(cup["classes"]) == 2


def test_draw_writes_the_picture_with_boxes(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    out = tmp_path / "drawn.png"
    done = streamer("draw", "samples/coffee.jpg", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "cup" in done.stdout and f"wrote {out}" in done.stdout
    drawn = cv2.imread(str(out))
    source = cv2.imread(str(REPO / "samples/coffee.jpg"))
    assert drawn.shape == source.shape
    changed = np.any(drawn.astype(int) - source.astype(int) != 0, axis=2)
    # the box edges are drawn: the cup's left edge column is changed over most of the box height
    ys, xs = np.nonzero(changed)
    assert changed.mean() < 0.2, "only boxes and labels are drawn"
    assert xs.min() < 160 < xs.max() and ys.max() > 290


def test_run_writes_json_lines_for_every_frame_of_every_file(tmp_path: Path) -> None:
    from tests.media import make_clip

    clips = [
        make_clip(tmp_path / "a.mp4", frames=12, fps=12),
        make_clip(tmp_path / "b.mkv", frames=8, fps=8, source="coffee"),
    ]
    out = tmp_path / "results.jsonl"
    done = streamer("run", *map(str, clips), "--detect", "--jsonl", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_stream = {name: [r["frame"] for r in lines if r["stream"] == name] for name in ("a.mp4", "b.mkv")}
    assert by_stream == {"a.mp4": list(range(12)), "b.mkv": list(range(8))}
    assert set(lines[0]) >= {"stream", "frame", "pts_ms", "width", "height", "timings_ms", "classes", "objects"}
    assert any(o["name"] == "cup" for r in lines if r["stream"] == "b.mkv" for o in r["objects"])


def test_run_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    import signal
    import time

    from tests.media import make_clip
    from tests.process import spawn

    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15)
    out = tmp_path / "live.jsonl"
    with spawn(
        [sys.executable, "-m", "streamer", "run", str(clip), "--realtime", "--loop", "--jsonl", str(out)]
    ) as child:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 2000 for p in tmp_path.glob(".live.jsonl.*")):
            assert time.monotonic() < deadline and child.alive(), child.stderr()
            time.sleep(0.1)
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0, child.stderr()
    assert "Traceback" not in child.stderr()
    lines = out.read_text().splitlines()
    assert lines and all(json.loads(line)["stream"] == "cam.mp4" for line in lines), "complete lines, flushed"


def test_run_reports_a_failed_source(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\0" * 1000)
    done = streamer("run", str(junk))
    assert done.returncode == 1
    assert f"streamer: error: junk.mp4: cannot decode {junk}" in done.stderr


def test_serve_pushes_results_to_a_websocket_client_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import asyncio
    import signal
    import urllib.request

    from websockets.asyncio.client import connect

    from tests.media import make_clip
    from tests.process import spawn_streamer

    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15)
    with spawn_streamer("serve", str(clip), "--loop", "--port", "0", "--device", "cpu") as child:
        url = child.url
        assert url.startswith("http://127.0.0.1:"), url

        async def first_results() -> list[dict[str, object]]:
            async with asyncio.timeout(60), connect(url.replace("http", "ws") + "ws") as ws:
                hello = json.loads(await ws.recv())
                assert hello["type"] == "hello"
                results = []
                while len(results) < 5:
                    message = json.loads(await ws.recv())
                    if message["type"] == "result":
                        results.append(message["result"])
                return results

        results = asyncio.run(first_results())
        assert all(r["stream"] == "cam.mp4" and r["classes"] for r in results)
        streams = json.loads(urllib.request.urlopen(url + "api/streams", timeout=10).read())
        assert streams[0]["stream"] == "cam.mp4" and streams[0]["state"] == "live"
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 0, child.stderr()
    assert "Traceback" not in child.stderr()
