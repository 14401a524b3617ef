"""Read a legacy (pre-zip) PyTorch ``state_dict`` file into numpy, without torch.

The legacy format is a sequence of pickles followed by raw storage bytes:

1. magic number, protocol version, system info (three small pickles);
2. the state dict, whose tensors are ``torch._utils._rebuild_tensor_v2`` calls
   on *persistent* storages ``('storage', type, key, location, numel)``;
3. a pickled list of storage keys, then for each key an int64 element count
   and the storage's little-endian bytes.

The unpickler here is restricted: it resolves only ``OrderedDict``, the tensor
rebuild function and the typed storages, so a hostile file cannot run code.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from streamer.errors import ModelError

__all__ = ["load_legacy_state_dict"]

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(frozen=True)
class _TensorRef:
    key: str
    dtype: np.dtype[Any]
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, np.dtype[Any]], offset: int, size: Any, stride: Any, *_: Any) -> _TensorRef:
    key, dtype = storage
    return _TensorRef(key, dtype, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, handle: IO[bytes], source: Path) -> None:
        super().__init__(handle)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise ModelError(
            f"{self._source}: refusing to unpickle {module}.{name}; only plain tensor "
            "state dicts can be read without torch"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise ModelError(f"{self._source}: unexpected persistent id {pid!r:.80}")
        storage_type = pid[1]
        if not isinstance(storage_type, _StorageType):
            raise ModelError(f"{self._source}: unknown storage type {storage_type!r:.80}")
        return (str(pid[2]), storage_type.dtype)


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    flat = storages[ref.key]
    if not ref.size:
        return flat[ref.offset : ref.offset + 1].reshape(()).copy()
    extent = ref.offset + 1 + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True))
    if extent > flat.size:
        raise ModelError(f"tensor needs {extent} elements of storage {ref.key}, which has {flat.size}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.size,
        strides=tuple(s * flat.itemsize for s in ref.stride),
        writeable=False,
    )
    return np.array(view)


def load_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Return the tensors of a legacy ``torch.save`` state dict as numpy arrays.

    Raises :class:`ModelError` naming ``path`` if the file is not in that format,
    is truncated, or holds anything but tensors.
    """
    try:
        with open(path, "rb") as handle:
            magic = pickle.load(handle)
            if magic != _MAGIC:
                raise ModelError(
                    f"{path}: not a legacy torch file (bad magic number); zip-format checkpoints are not supported"
                )
            protocol = pickle.load(handle)
            if protocol != _PROTOCOL:
                raise ModelError(f"{path}: unsupported torch protocol {protocol!r}, expected {_PROTOCOL}")
            pickle.load(handle)  # system info: endianness and type sizes
            state = _RestrictedUnpickler(handle, path).load()
            keys = pickle.load(handle)
            storages: dict[str, np.ndarray] = {}
            dtypes = {ref.key: ref.dtype for ref in state.values() if isinstance(ref, _TensorRef)}
            for key in keys:
                count = int(np.frombuffer(handle.read(8), "<i8")[0])
                dtype = dtypes.get(key, np.dtype("u1"))
                raw = handle.read(count * dtype.itemsize)
                if len(raw) != count * dtype.itemsize:
                    raise ModelError(
                        f"{path}: truncated in storage {key} ({len(raw)} of {count * dtype.itemsize} bytes)"
                    )
                storages[key] = np.frombuffer(raw, dtype)
    except (pickle.UnpicklingError, EOFError, IndexError, ValueError, TypeError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{path}: cannot read as a legacy torch state dict ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelError(f"{path}: expected a state dict, found {type(state).__name__}")
    tensors: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise ModelError(f"{path}: entry {name!r} is not a tensor")
        tensors[str(name)] = _materialise(ref, storages)
    return tensors
