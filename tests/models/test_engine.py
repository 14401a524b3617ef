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


@pytest.mark.parametrize(("level", "count"), [("INFO", 0), ("DEBUG", 1)])
def test_auto_on_this_machine_is_quiet(tmp_path: Path, level: str, count: int) -> None:
    """No onnxruntime error spam where CUDA cannot load; the choice is said once, at debug level
    (one-shot commands need not hear it; ``streamer serve`` says it itself)."""
    model = channel_mean_model(tmp_path / "m.onnx")
    code = (
        f"import logging, sys; from pathlib import Path; logging.basicConfig(level=logging.{level});"
        "from streamer.models.engine import Engine;"
        f"Engine(Path({str(model)!r}), device='auto'); Engine(Path({str(model)!r}), device='auto')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("DEBUG:") or "streamer" in line]
    assert len(lines) == count, lines
    assert not any("error" in line.lower() for line in lines)
    assert all("running on CPU" in line or "CUDAExecutionProvider" in line for line in lines)


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
