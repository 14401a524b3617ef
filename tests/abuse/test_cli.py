"""The real ``streamer`` command given what careless users type: one clear line, the right exit code, no data lost.

Each case runs the command as a subprocess (``python -m streamer``) and
checks the exit code, that stderr has no traceback, that the message names
what was wrong, and that no input was touched.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.media import black_png, make_clip
from tests.process import REPO, spawn
from tests.required import unavailable

SAMPLES = REPO / "samples"


def streamer(*args: str, cwd: Path = REPO, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=6, fps=6)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A folder no file can be made in, and the command prefix that makes it so.

    As root (who ignores permission bits) the folder is a read-only tmpfs
    mounted in the command's own mount namespace; otherwise its mode is 0555.
    """
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, ()
        folder.chmod(0o755)
        return
    unshare = shutil.which("unshare")
    probe = (
        subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro,size=1m tmpfs {folder} && ! touch {folder}/x"],
            capture_output=True,
            timeout=30,
        )
        if unshare
        else None
    )
    if probe is None or probe.returncode != 0:
        unavailable("cannot mount a read-only folder (needs unshare -m and mount as root)")
    yield folder, ("unshare", "-m", "sh", "-c", f'mount -t tmpfs -o ro,size=1m tmpfs {folder} && exec "$@"', "-")


# --- 4. no output is ever an input; results files are whole, kept unless --force, or appended -------------------------


def test_run_never_writes_over_its_input(clip: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copy(clip, tmp_path / "v.mp4"))
    before = digest(copy)
    done = streamer("run", str(copy), "--jsonl", str(copy))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"streamer: error: {copy} is an input; pick another output name (an output never replaces an input)"
    ]
    done = streamer("run", str(copy), "--jsonl", str(copy), "--force")
    assert done.returncode == 2 and "is an input" in done.stderr
    assert digest(copy) == before


def test_run_results_file_is_kept_unless_force_and_appended_with_append(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text("precious\n")
    done = streamer("run", str(clip), "--jsonl", str(out))
    assert done.returncode == 2 and f"{out} already exists; use --force" in done.stderr
    assert out.read_text() == "precious\n"
    assert streamer("run", str(clip), "--jsonl", str(out), "--append").returncode == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "precious" and [json.loads(line)["frame"] for line in lines[1:]] == list(range(6))
    assert streamer("run", str(clip), "--jsonl", str(out), "--force").returncode == 0
    assert [json.loads(line)["frame"] for line in out.read_text().splitlines()] == list(range(6))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"], "no temporary file left behind"
    help_text = streamer("run", "--help").stdout
    assert "--append" in help_text and "--force" in help_text and "moved into place" in help_text


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.1)


def test_run_results_file_is_whole_after_sigterm(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.jsonl"
    args = [sys.executable, "-m", "streamer", "run", str(clip), "--realtime", "--loop", "--jsonl", str(out)]
    with spawn(args) as child:
        wait_until(
            lambda: any(p.stat().st_size > 500 for p in tmp_path.glob(".live.jsonl.*.part.jsonl")), "results written"
        )
        assert not out.exists(), "the final name appears only once the file is whole"
        child.send_signal(signal.SIGTERM)
        assert child.wait(60) == 0, child.stderr()
    assert "Traceback" not in child.stderr()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(r["stream"] == "clip.mp4" for r in lines)
    assert not list(tmp_path.glob(".live.jsonl.*"))


# --- 10. tracebacks turned into one clear line -----------------------------------------------------------------------


def test_run_jsonl_into_a_directory_or_missing_folder(clip: Path, tmp_path: Path) -> None:
    for target, message in (
        (tmp_path, f"{tmp_path} is a directory; give a file name for the output"),
        (tmp_path / "missing" / "r.jsonl", f"folder {tmp_path / 'missing'} does not exist; create it first"),
    ):
        done = streamer("run", str(clip), "--jsonl", str(target))
        assert done.returncode == 2, done.stderr
        assert error_lines(done.stderr) == [
            f"streamer: error: {message}"
            if "directory" in message
            else f"streamer: error: cannot write {target}: {message}"
        ]
    assert not (tmp_path / "missing").exists()


def test_outputs_into_a_read_only_folder(clip: Path, tmp_path: Path, read_only: tuple[Path, tuple[str, ...]]) -> None:
    folder, prefix = read_only
    for args in (
        ("run", str(clip), "--jsonl", str(folder / "r.jsonl")),
        ("draw", str(SAMPLES / "coffee.jpg"), "-o", str(folder / "x.png")),
        ("annotate", str(clip), "-o", str(folder / "x.mp4")),
        ("annotate", str(clip), "--csv", str(folder / "x.csv")),
    ):
        done = streamer(*args, prefix=prefix)
        assert done.returncode == 2, (args, done.stderr)
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and lines[0].startswith("streamer: error: cannot write "), (args, done.stderr)
        assert "Read-only file system" in lines[0] or "Permission denied" in lines[0], lines
        assert "refuses these streams" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-batch", "0"), "--max-batch 0: expected an integer >= 1"),
        (("--duration", "-5"), "--duration -5.0: expected a number > 0"),
        (("--inference-fps", "0"), "--inference-fps 0.0: expected a number > 0"),
        (("--inference-fps", "-1"), "--inference-fps -1.0: expected a number > 0"),
        (("--max-frame-age-ms", "nan"), "--max-frame-age-ms nan: expected a number > 0"),
        (("--max-frame-age-ms", "inf"), "--max-frame-age-ms inf: expected a number > 0"),
        (("--append",), "--force and --append are about the --jsonl file"),
    ],
)
def test_run_options_out_of_range(clip: Path, args: tuple[str, ...], message: str) -> None:
    done = streamer("run", str(clip), *args)
    assert done.returncode == 2
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"streamer: error: {message}"), lines


def _tall_png(path: Path) -> Path:
    """A 1 x 100000 PNG: a few hundred bytes that once made a 256 x 25.6M intermediate."""
    ok, data = cv2.imencode(".png", np.zeros((100_000, 1, 3), np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_classify_refuses_image_bombs_and_still_classifies_the_rest(tmp_path: Path) -> None:
    tall = _tall_png(tmp_path / "tall.png")
    huge = tmp_path / "huge.png"
    huge.write_bytes(black_png(20_000, 20_000))
    assert huge.stat().st_size < 200_000
    done = streamer("classify", str(tall), str(huge), str(SAMPLES / "coffee.jpg"), "--json")
    assert done.returncode == 1
    errors = error_lines(done.stderr)
    assert len(errors) == 2
    assert "tall.png is 1x100000 pixels" in errors[0] and "limit" in errors[0]
    assert "huge.png is 20000x20000 pixels" in errors[1] and "limit" in errors[1]
    assert json.loads(done.stdout)["classes"][0]["name"] == "espresso", "the good image is still classified"


def test_draw_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    coffee = str(SAMPLES / "coffee.jpg")
    (tmp_path / "folder.png").mkdir()
    cases = [
        (("-o", str(tmp_path / "x.gifx")), "OpenCV cannot write .gifx; use .png or .jpg"),
        (("-o", str(tmp_path / "missing" / "x.png")), "does not exist; create it first"),
        (("-o", coffee), "is an input"),
        (("-o", str(tmp_path / "folder.png")), "is a directory"),
    ]
    for args, message in cases:
        done = streamer("draw", coffee, *args)
        assert done.returncode == 2, (args, done.stderr)
        lines = error_lines(done.stderr)
        assert len(lines) == 1 and message in lines[0], (args, lines)
    out = tmp_path / "x.png"
    out.write_bytes(b"mine")
    done = streamer("draw", coffee, "-o", str(out))
    assert done.returncode == 2 and "already exists; use --force" in done.stderr and out.read_bytes() == b"mine"
    assert streamer("draw", coffee, "-o", str(out), "--force").returncode == 0
    assert cv2.imread(str(out)) is not None


def test_run_and_serve_name_repeated_sources_alike(clip: Path) -> None:
    done = streamer("run", str(clip), str(clip))
    assert done.returncode == 0, done.stderr
    streams = {json.loads(line)["stream"] for line in done.stdout.splitlines()}
    assert streams == {"clip.mp4", "clip.mp4#2"}
    import urllib.request

    args = [sys.executable, "-m", "streamer", "serve", str(clip), str(clip), "--loop", "--port", "0", "--device", "cpu"]
    with spawn(args) as child:
        url = child.wait_for_stdout(r"streamer: serving on (http://\S+/)", timeout=120).group(1)
        with urllib.request.urlopen(url + "api/streams", timeout=10) as response:
            listed = sorted(row["stream"] for row in json.loads(response.read()))
        child.send_signal(signal.SIGINT)
        assert child.wait(60) == 0
    assert listed == ["clip.mp4", "clip.mp4#2"]
    assert "Traceback" not in child.stderr()


# --- 11. options and sources that make no sense ----------------------------------------------------------------------


def test_run_says_what_a_non_video_source_is(tmp_path: Path) -> None:
    done = streamer("run", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path} is a directory, not a video file" in done.stderr and "does not exist" not in done.stderr
    done = streamer("run", "/dev/zero")
    assert done.returncode == 2
    assert "/dev/zero is a character device, not a video file" in done.stderr


def test_run_says_where_a_truncated_file_stopped(tmp_path: Path) -> None:
    whole = make_clip(tmp_path / "whole.mkv", frames=48, fps=12)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    done = streamer("run", str(cut))
    frames = [json.loads(line)["frame"] for line in done.stdout.splitlines()]
    assert 0 < len(frames) < 48
    assert re.search(r"(decoding stopped after frame \d+|the video ends after frame \d+)", done.stderr), done.stderr


def test_run_logs_each_retry_with_its_reason_and_wait() -> None:
    done = streamer("run", "http://127.0.0.1:9/x.mp4", "--duration", "4")
    assert done.returncode == 0
    retries = re.findall(
        r"source 127\.0\.0\.1/x\.mp4: .*refused.*; retrying in (\d+\.\d) s \(attempt (\d+)\)", done.stderr
    )
    assert len(retries) >= 2, done.stderr
    assert [int(attempt) for _, attempt in retries[:2]] == [1, 2]
    assert float(retries[1][0]) > float(retries[0][0]), "the wait grows"


# --- 13. a closed stdout ends the command quietly --------------------------------------------------------------------


def test_run_into_a_closed_pipe_ends_quietly(clip: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run", str(clip), "--loop", "--realtime"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()  # as `| head -1` does
        assert json.loads(first)["stream"] == "clip.mp4"
        process.stdout.close()
        code = process.wait(60)
        stderr = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
    assert code == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


# --- friction ---------------------------------------------------------------------------------------------------------


def test_an_unknown_flag_shows_the_sub_commands_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streamer", "classify", "x.jpg", "--bogus"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("usage: streamer classify") and "unrecognized arguments: --bogus" in done.stderr


def test_an_unknown_config_key_suggests_the_nearest(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[classifier]\nmax_result = 3\n")
    done = streamer("classify", str(SAMPLES / "coffee.jpg"), "--config", str(config))
    assert done.returncode == 2
    assert error_lines(done.stderr) == [
        f"streamer: error: unknown configuration key 'classifier.max_result' (from {config}); "
        "did you mean 'classifier.max_results'?"
    ]


def test_one_shot_commands_do_not_announce_the_cpu() -> None:
    done = streamer("classify", str(SAMPLES / "coffee.jpg"))
    assert done.returncode == 0 and "running on CPU" not in done.stderr
