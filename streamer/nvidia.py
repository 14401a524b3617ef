"""Whether an NVIDIA GPU can be used here: its driver loaded and a device seen, checked once per process.

Both the model engine (CUDA, TensorRT) and the video decoders (NVDEC) ask
before they try, so a machine without a GPU logs one line, not an error
per stream or per session.
"""

from __future__ import annotations

import ctypes
import functools

__all__ = ["driver_status", "gpu_name", "load_error"]


def load_error(library: str) -> str | None:
    """None if the shared ``library`` loads, else dlopen's reason."""
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return str(exc)
    return None


@functools.cache
def driver_status() -> str | None:
    """None if the NVIDIA driver loads and sees a GPU, else why not."""
    if load_error("libcuda.so.1") is not None:
        return "no NVIDIA driver (libcuda.so.1 cannot be loaded)"
    cuda = ctypes.CDLL("libcuda.so.1")
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "the NVIDIA driver sees no GPU"
    return None


def gpu_name(device_id: int) -> str:
    """The name of GPU ``device_id`` from the NVIDIA driver, e.g. ``NVIDIA H200``; ``""`` without one."""
    if driver_status() is not None:
        return ""
    cuda = ctypes.CDLL("libcuda.so.1")
    handle, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
    if cuda.cuDeviceGet(ctypes.byref(handle), device_id) != 0:
        return ""
    if cuda.cuDeviceGetName(name, len(name), handle) != 0:
        return ""
    return name.value.decode(errors="replace")
