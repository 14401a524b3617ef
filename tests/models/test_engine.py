"""Execution providers and model loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamer.errors import ConfigError, DeviceUnavailableError, ModelError
from streamer.models.engine import Engine, cuda_status, resolve_providers
from tests.conftest import channel_mean_model


def test_cpu_is_always_there() -> None:
    assert resolve_providers("cpu") == ("CPUExecutionProvider",)
    assert resolve_providers("auto")[-1] == "CPUExecutionProvider"


def test_auto_and_cuda_follow_what_can_really_load() -> None:
    reason = cuda_status()
    if reason is None:  # a machine with a usable GPU
        assert resolve_providers("auto")[0] == "CUDAExecutionProvider"
        assert resolve_providers("cuda")[0] == "CUDAExecutionProvider"
    else:
        assert resolve_providers("auto") == ("CPUExecutionProvider",)
        with pytest.raises(DeviceUnavailableError, match=r"device .cuda. cannot be used: .+") as info:
            resolve_providers("cuda")
        assert reason in str(info.value)


def test_unknown_device() -> None:
    with pytest.raises(ConfigError, match=r"device = 'gpu' is not allowed; use one of: auto, cpu, cuda, tensorrt"):
        resolve_providers("gpu")


def test_auto_on_this_machine_prints_one_quiet_line(tmp_path: Path) -> None:
    """No onnxruntime error spam where CUDA cannot load: at most one line, and no error."""
    model = channel_mean_model(tmp_path / "m.onnx")
    code = (
        "import logging, sys; from pathlib import Path; logging.basicConfig(level=logging.INFO);"
        "from streamer.models.engine import Engine;"
        f"Engine(Path({str(model)!r}), device='auto'); Engine(Path({str(model)!r}), device='auto')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "error" not in lines[0].lower()
    assert "running on CPU" in lines[0] or "CUDAExecutionProvider" in lines[0]


def test_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not protobuf")
    with pytest.raises(ModelError, match=r"junk.onnx is not a loadable ONNX model"):
        Engine(junk, device="cpu")
    with pytest.raises(ModelError, match=r"nothing.onnx does not exist"):
        Engine(tmp_path / "nothing.onnx", device="cpu")


def test_threads_cap_the_session_and_idle_threads_sleep(tmp_path: Path) -> None:
    model = channel_mean_model(tmp_path / "mean.onnx")
    engine = Engine(model, device="cpu", threads=1)
    session = engine._session.get_session_options()
    assert session.intra_op_num_threads == 1
    assert session.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert Engine(model, device="cpu")._session.get_session_options().intra_op_num_threads == 0, "0: one per core"
