"""The model engine: the only module that imports onnxruntime.

Device choice (``device``):

- ``auto``: CUDA when it can really load here, else CPU, said in one quiet line;
- ``cpu``: CPU only;
- ``cuda``: CUDA then CPU; a :class:`DeviceUnavailableError` says what is missing;
- ``tensorrt``: TensorRT, CUDA, CPU; likewise an error if TensorRT cannot load.

onnxruntime-gpu lists the CUDA provider even where the driver, CUDA or cuDNN
are missing, and then prints an error for every session. :func:`cuda_status`
checks first, by loading the driver and the provider's libraries, so a
CPU-only machine sees no error spam.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from streamer.errors import ConfigError, DeviceUnavailableError, ModelError

__all__ = ["DEVICES", "Engine", "TensorInfo", "cuda_status", "resolve_providers", "session_options", "tensorrt_status"]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
_DTYPES: dict[str, np.dtype[Any]] = {"tensor(float)": np.dtype(np.float32), "tensor(uint8)": np.dtype(np.uint8)}


def _load(library: str) -> str | None:
    """None if ``library`` loads, else dlopen's reason."""
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return str(exc)
    return None


def _preload_pip_cuda() -> None:
    """Load CUDA/cuDNN from ``nvidia-*`` pip packages, if installed, quietly."""
    if importlib.util.find_spec("nvidia") is None:
        return
    with contextlib.redirect_stdout(io.StringIO()) as printed, contextlib.suppress(Exception):
        ort.preload_dlls(directory="")
    if printed.getvalue().strip():
        log.debug("onnxruntime.preload_dlls: %s", printed.getvalue().strip())


@functools.cache
def cuda_status() -> str | None:
    """None if the CUDA provider can load and sees a GPU, else why not."""
    if _CUDA not in ort.get_available_providers():
        return "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    reason = _load("libcuda.so.1")
    if reason is not None:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    cuda = ctypes.CDLL("libcuda.so.1")
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver sees no GPU"
    _preload_pip_cuda()
    provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    reason = _load(str(provider))
    if reason is not None:
        return (
            f"the CUDA provider cannot load: {reason}; install CUDA and cuDNN 9, "
            "e.g. pip install 'onnxruntime-gpu[cuda,cudnn]'"
        )
    if _load("libcudnn.so.9") is not None:
        return "cuDNN 9 (libcudnn.so.9) cannot be loaded; pip install 'onnxruntime-gpu[cuda,cudnn]'"
    return None


@functools.cache
def tensorrt_status() -> str | None:
    """None if the TensorRT provider can load, else why not."""
    if (reason := cuda_status()) is not None:
        return reason
    if _TENSORRT not in ort.get_available_providers():
        return "this onnxruntime build has no TensorRT provider"
    if _load("libnvinfer.so.10") is not None:
        return "TensorRT 10 (libnvinfer.so.10) cannot be loaded; pip install tensorrt"
    return None


@functools.cache
def resolve_providers(device: str) -> tuple[str, ...]:
    """The execution providers for ``device``, best first; logs the choice once (debug: one-shot commands
    need not hear it; ``streamer serve`` says it itself)."""
    if device not in DEVICES:
        raise ConfigError(f"device = {device!r} is not allowed; use one of: {', '.join(DEVICES)}")
    if device == "cpu":
        providers: tuple[str, ...] = (_CPU,)
    elif device == "tensorrt":
        if (reason := tensorrt_status()) is not None:
            raise DeviceUnavailableError(f"device 'tensorrt' cannot be used: {reason}")
        providers = (_TENSORRT, _CUDA, _CPU)
    elif (reason := cuda_status()) is None:
        providers = (_CUDA, _CPU)
    elif device == "cuda":
        raise DeviceUnavailableError(f"device 'cuda' cannot be used: {reason}")
    else:
        log.debug("running on CPU: %s", reason)
        return (_CPU,)
    log.debug("execution providers: %s", ", ".join(providers))
    return providers


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape (str or None for dynamic axes), dtype."""

    name: str
    shape: tuple[int | str | None, ...]
    type: str

    @property
    def dtype(self) -> np.dtype[Any]:
        return _DTYPES.get(self.type, np.dtype(np.float32))


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """The ONNX Runtime options of every streamer session (benchmarks give their bare sessions the same).

    Idle pool threads sleep instead of spinning: the detector's and the
    classifier's pools, decoders, encoders and the server share the cores,
    and a spinning pool steals them (on a 2-core machine the cascade went
    from 13.5 to 17.2 frames/s without it, and even a lone classifier called
    back to back from ~115 to ~148 images/s). ``threads`` caps
    the intra-op pool (``None``: one thread per core).
    """
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


class Engine:
    """One ONNX Runtime session. Create, then :meth:`run` from one thread at a time."""

    def __init__(self, path: Path, *, device: str = "auto", threads: int | None = None) -> None:
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        providers = resolve_providers(device)
        try:
            self._session = ort.InferenceSession(str(path), session_options(threads), providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path} is not a loadable ONNX model: {str(exc).strip()[:300]}") from None
        self.path = path
        self.provider: str = self._session.get_providers()[0]
        self.inputs = tuple(TensorInfo(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs())
        self.outputs = tuple(TensorInfo(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs())
        if len(self.inputs) != 1:
            raise ModelError(f"{path} has {len(self.inputs)} inputs; streamer models take exactly one image tensor")
        self.input = self.inputs[0]
        if self.input.type not in _DTYPES:
            raise ModelError(f"{path}: input {self.input.name!r} is {self.input.type}; expected float or uint8")

    @property
    def max_batch(self) -> int | None:
        """The fixed batch size of the input, or ``None`` when it is dynamic."""
        first = self.input.shape[0] if self.input.shape else None
        return first if isinstance(first, int) and first > 0 else None

    def image_size(
        self, *, section: str, layout: str, declared: tuple[int, int] | None, normalization: str | None
    ) -> tuple[int, int]:
        """Check the image input against its declaration; return (width, height).

        ``section`` (``classifier``/``detector``) names the config keys in errors.
        """
        shape = self.input.shape
        where = f"{self.path}: input {self.input.name!r} has shape {list(shape)}"
        if len(shape) != 4:
            raise ModelError(f"{where}; expected rank 4 ({layout}: batch, ...)")
        channels, height, width = (shape[1], shape[2], shape[3]) if layout == "nchw" else (shape[3], shape[1], shape[2])
        if isinstance(channels, int) and channels != 3:
            other = "nhwc" if layout == "nchw" else "nchw"
            raise ModelError(f"{where}, which is not {layout} with 3 channels; is {section}.layout = {other!r}?")
        static = (width, height) if isinstance(width, int) and isinstance(height, int) else None
        if declared is not None and static is not None and tuple(declared) != static:
            raise ModelError(
                f"{where}; {section}.input_size = {list(declared)} contradicts it (expected {list(static)})"
            )
        size = declared or static
        if size is None:
            raise ConfigError(f"{where} with dynamic height/width; set {section}.input_size = [width, height]")
        if self.input.dtype == np.uint8 and normalization not in (None, "none"):
            raise ModelError(f"{where} of type uint8, which takes raw pixels; set {section}.normalization = 'none'")
        return int(size[0]), int(size[1])

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the model on one input batch; returns every output, in model order."""
        return self._session.run(None, {self.input.name: batch})  # type: ignore[no-any-return]
