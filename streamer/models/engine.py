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

How a session runs (:class:`EngineOptions`, config ``[engine]``): which GPU,
TensorRT in fp16 with its engine and timing caches under
``<cache_dir>/tensorrt/<key>/`` (:func:`tensorrt_cache_key`: a changed model,
GPU or TensorRT version builds anew, an unchanged one loads in seconds), CUDA
graphs, and IO binding: a batch padded up to the next of a few fixed sizes
(:func:`batch_plan`) in a staging buffer kept per size, so a GPU sees few
shapes and copies from pinned memory. :func:`provider_list` turns the options
into onnxruntime's providers and their options; it and the cache key are pure.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import importlib.util
import io
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from streamer.errors import ConfigError, DeviceUnavailableError, ModelError
from streamer.models.convert import sha256_file
from streamer.nvidia import driver_status, gpu_name, load_error

__all__ = [
    "DEFAULT_BUCKETS",
    "DEVICES",
    "PREPROCESS",
    "Engine",
    "EngineOptions",
    "TensorInfo",
    "batch_plan",
    "cuda_status",
    "provider_list",
    "resolve_providers",
    "session_options",
    "tensorrt_cache_key",
    "tensorrt_profile",
    "tensorrt_status",
    "tensorrt_version",
]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"
_TENSORRT = "TensorrtExecutionProvider"
_DTYPES: dict[str, np.dtype[Any]] = {"tensor(float)": np.dtype(np.float32), "tensor(uint8)": np.dtype(np.uint8)}
_GPU_PROVIDERS = (_CUDA, _TENSORRT)
#: the batch sizes IO binding pads a batch up to (``[engine] buckets``).
DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32)
#: where preprocessing runs: ``cpu`` (numpy and OpenCV), ``graph`` (inside the ONNX graph, see
#: :mod:`streamer.models.graph_preprocess`), ``auto`` (the graph on CUDA and TensorRT, the CPU otherwise).
PREPROCESS = ("auto", "cpu", "graph")


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
    if (reason := driver_status()) is not None:
        return reason
    _preload_pip_cuda()
    provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    reason = load_error(str(provider))
    if reason is not None:
        return (
            f"the CUDA provider cannot load: {reason}; install CUDA and cuDNN 9, "
            "e.g. pip install 'onnxruntime-gpu[cuda,cudnn]'"
        )
    if load_error("libcudnn.so.9") is not None:
        return "cuDNN 9 (libcudnn.so.9) cannot be loaded; pip install 'onnxruntime-gpu[cuda,cudnn]'"
    return None


@functools.cache
def tensorrt_status() -> str | None:
    """None if the TensorRT provider can load, else why not."""
    if (reason := cuda_status()) is not None:
        return reason
    if _TENSORRT not in ort.get_available_providers():
        return "this onnxruntime build has no TensorRT provider"
    if load_error("libnvinfer.so.10") is not None:
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


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """How every model session runs; validated on creation, errors name the config key.

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``tensorrt`` (see the module); ``device_id``: which GPU.
    ``tensorrt_fp16``: TensorRT may use fp16 kernels. ``cache_dir``: TensorRT's engine and timing caches
    go under ``<cache_dir>/tensorrt/<key>/`` (``None``: the model cache, ``$STREAMER_CACHE_DIR`` or
    ``~/.cache/streamer``). ``cuda_graphs``: replay each batch size's captured CUDA graph (CUDA only,
    needs IO binding and fixed shapes, so ``preprocess = "cpu"``). ``io_binding``: pad batches to
    ``buckets`` in staging buffers bound to the session (``None``: on for CUDA and TensorRT, off on the
    CPU). ``preprocess``: see :data:`PREPROCESS`.
    """

    device: str = "auto"
    device_id: int = 0
    tensorrt_fp16: bool = True
    cache_dir: Path | None = None
    cuda_graphs: bool = False
    io_binding: bool | None = None
    buckets: tuple[int, ...] = DEFAULT_BUCKETS
    preprocess: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device = {self.device!r} is not allowed; use one of: {', '.join(DEVICES)}")
        if isinstance(self.device_id, bool) or not isinstance(self.device_id, int) or self.device_id < 0:
            raise ConfigError(f"engine.device_id = {self.device_id!r}; expected an integer >= 0 (0: the first GPU)")
        for name in ("tensorrt_fp16", "cuda_graphs"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"engine.{name} = {getattr(self, name)!r}; expected true or false")
        if self.io_binding is not None and not isinstance(self.io_binding, bool):
            raise ConfigError(f"engine.io_binding = {self.io_binding!r}; expected true, false or unset (auto)")
        buckets = self.buckets
        if (
            not isinstance(buckets, tuple)
            or not buckets
            or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in buckets)
            or list(buckets) != sorted(set(buckets))
        ):
            raise ConfigError(
                f"engine.buckets = {list(buckets) if isinstance(buckets, tuple) else buckets!r}; "
                "expected increasing batch sizes >= 1, e.g. [1, 2, 4, 8, 16, 32]"
            )
        if self.preprocess not in PREPROCESS:
            raise ConfigError(
                f"engine.preprocess = {self.preprocess!r} is not allowed; use one of: {', '.join(PREPROCESS)}"
            )
        if self.cuda_graphs and self.preprocess == "graph":
            raise ConfigError(
                "engine.cuda_graphs needs fixed shapes, which engine.preprocess = 'graph' (any frame size) "
                "has not; set engine.preprocess = 'cpu' or turn cuda_graphs off"
            )
        if self.cuda_graphs and self.io_binding is False:
            raise ConfigError("engine.cuda_graphs replays bound buffers; it needs engine.io_binding on (or unset)")

    def binds(self, provider: str) -> bool:
        """Whether runs on ``provider`` use IO binding."""
        return self.io_binding if self.io_binding is not None else provider in _GPU_PROVIDERS

    def graph_preprocess(self, provider: str) -> bool:
        """Whether preprocessing runs inside the graph on ``provider``."""
        return self.preprocess == "graph" or (self.preprocess == "auto" and provider in _GPU_PROVIDERS)


def batch_plan(size: int, buckets: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """How IO binding runs a batch of ``size``: ``(start, stop, bucket)`` per run, each slice padded up to
    the smallest bucket that holds it; a batch over the largest bucket is split into runs of that size."""
    plan = []
    largest = buckets[-1]
    for start in range(0, size, largest):
        stop = min(start + largest, size)
        plan.append((start, stop, next(b for b in buckets if b >= stop - start)))
    return plan


def tensorrt_cache_key(
    *, model_sha256: str, gpu: str, tensorrt: str, fp16: bool, profile: dict[str, str] | None = None
) -> str:
    """The folder name of a model's TensorRT caches: it changes with the model's content, the GPU, the
    TensorRT version, the precision and the profile shapes (each changes the engine), and only with them."""
    parts = [model_sha256, gpu.strip(), tensorrt.strip(), "fp16" if fp16 else "fp32"]
    parts += [f"{k}={v}" for k, v in sorted((profile or {}).items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def tensorrt_profile(name: str, shape: tuple[int | str | None, ...], buckets: tuple[int, ...]) -> dict[str, str]:
    """TensorRT's optimisation profile for an input ``name`` of ``shape`` whose first axis is the batch:
    batches from the smallest bucket to the largest, tuned for the largest. ``{}`` where an axis but the
    batch is dynamic (TensorRT then builds for the shapes it meets)."""
    rest = shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        return {}
    dims = "x".join(str(d) for d in rest)
    low, high = buckets[0], buckets[-1]
    return {
        "trt_profile_min_shapes": f"{name}:{low}x{dims}",
        "trt_profile_opt_shapes": f"{name}:{high}x{dims}",
        "trt_profile_max_shapes": f"{name}:{high}x{dims}",
    }


def provider_list(
    providers: tuple[str, ...],
    options: EngineOptions,
    *,
    tensorrt_cache: Path | None = None,
    profile: dict[str, str] | None = None,
) -> list[tuple[str, dict[str, str]]]:
    """``providers`` with their onnxruntime provider options, as ``InferenceSession(providers=...)`` takes
    them. ``tensorrt_cache`` is the folder of this model's TensorRT caches (``None``: no caching);
    ``profile`` is :func:`tensorrt_profile`'s answer."""
    chosen: list[tuple[str, dict[str, str]]] = []
    device = str(options.device_id)
    for provider in providers:
        if provider == _TENSORRT:
            trt = {"device_id": device, "trt_fp16_enable": _flag(options.tensorrt_fp16)}
            if tensorrt_cache is not None:
                trt |= {
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": str(tensorrt_cache),
                    "trt_timing_cache_enable": "True",
                    "trt_timing_cache_path": str(tensorrt_cache),
                }
            chosen.append((provider, trt | (profile or {})))
        elif provider == _CUDA:
            cuda = {"device_id": device}
            if options.cuda_graphs:
                cuda["enable_cuda_graph"] = "1"
            chosen.append((provider, cuda))
        else:
            chosen.append((provider, {}))
    return chosen


def _flag(value: bool) -> str:
    return "True" if value else "False"


@functools.cache
@functools.cache
def tensorrt_version() -> str:
    """The loadable TensorRT's version number (``getInferLibVersion``, e.g. ``100900``); ``""`` without one."""
    if load_error("libnvinfer.so.10") is not None:
        return ""
    return str(ctypes.CDLL("libnvinfer.so.10").getInferLibVersion())


def _model_sha256(path: Path, graph: bytes | None) -> str:
    return hashlib.sha256(graph).hexdigest() if graph is not None else sha256_file(path)


def _pinned(shape: tuple[int, ...], dtype: np.dtype[Any], device_id: int) -> tuple[np.ndarray, Any] | None:
    """A host buffer in CUDA pinned (page-locked) memory and its OrtValue, where this onnxruntime can
    allocate one (``OrtEpDevice.memory_info(HOST_ACCESSIBLE)``); ``None`` otherwise."""
    with contextlib.suppress(Exception):  # older onnxruntime builds have no EP devices: plain numpy then
        for ep in ort.get_ep_devices():
            if ep.ep_name == _CUDA and getattr(ep.device, "device_id", device_id) == device_id:
                info = ep.memory_info(ort.OrtDeviceMemoryType.HOST_ACCESSIBLE)
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, memory_info=info)
                return value.numpy(), value
    return None


@dataclass
class _Staging:
    """One bucket's input buffer (host; pinned on CUDA where possible) and, for CUDA graphs, its device
    copy and outputs, whose addresses never change."""

    host: np.ndarray
    pinned: Any = None  # the OrtValue owning ``host`` when it is pinned memory
    device: Any = None  # CUDA graphs: the input OrtValue on the GPU
    outputs: list[Any] = field(default_factory=list)  # CUDA graphs: the outputs' OrtValues on the GPU
    graph_id: int = 0


class Engine:
    """One ONNX Runtime session. Create, then :meth:`run` from one thread at a time.

    ``device`` (given) overrides ``options.device``. ``graph``: the model's bytes, when they are not the
    file at ``path`` (a model with preprocessing prepended, :mod:`streamer.models.graph_preprocess`;
    ``path`` then names it in messages); such a model may take more inputs than the image.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str | None = None,
        threads: int | None = None,
        options: EngineOptions | None = None,
        graph: bytes | None = None,
    ) -> None:
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist")
        options = options or EngineOptions()
        if device is not None and device != options.device:
            options = replace(options, device=device)
        self.options = options
        providers = resolve_providers(options.device)
        profile = self._profile(path, graph) if _TENSORRT in providers else None
        tensorrt_cache = self._tensorrt_cache(path, graph, profile) if profile is not None else None
        chosen = provider_list(providers, options, tensorrt_cache=tensorrt_cache, profile=profile)
        building = tensorrt_cache is not None and not any(tensorrt_cache.glob("*.engine"))
        if building:
            log.info("building TensorRT engine for %s, this takes minutes (cached in %s)", path.name, tensorrt_cache)
        started = time.perf_counter()
        try:
            source = graph if graph is not None else str(path)
            self._session = ort.InferenceSession(source, session_options(threads), providers=chosen)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path} is not a loadable ONNX model: {str(exc).strip()[:300]}") from None
        if building:
            log.info("built TensorRT engine for %s in %.0f s", path.name, time.perf_counter() - started)
        self.path = path
        #: the providers and their options this session was built with (benchmarks build bare sessions alike)
        self.provider_options = chosen
        self.provider: str = self._session.get_providers()[0]
        self.inputs = tuple(TensorInfo(i.name, tuple(i.shape), i.type) for i in self._session.get_inputs())
        self.outputs = tuple(TensorInfo(o.name, tuple(o.shape), o.type) for o in self._session.get_outputs())
        if len(self.inputs) != 1 and graph is None:
            raise ModelError(f"{path} has {len(self.inputs)} inputs; streamer models take exactly one image tensor")
        self.input = self.inputs[0]
        if self.input.type not in _DTYPES and graph is None:
            raise ModelError(f"{path}: input {self.input.name!r} is {self.input.type}; expected float or uint8")
        self.binding = options.binds(self.provider)
        self._staging: dict[tuple[int, tuple[int, ...], str], _Staging] = {}

    def _tensorrt_cache(self, path: Path, graph: bytes | None, profile: dict[str, str]) -> Path:
        """This model's TensorRT cache folder (created), keyed by the model, GPU, TensorRT, fp16 and ``profile``."""
        from streamer.models.zoo import default_cache_dir  # only here: zoo converts models, the engine runs them

        key = tensorrt_cache_key(
            model_sha256=_model_sha256(path, graph),
            gpu=gpu_name(self.options.device_id),
            tensorrt=tensorrt_version(),
            fp16=self.options.tensorrt_fp16,
            profile=profile,
        )
        folder = (self.options.cache_dir or default_cache_dir()) / "tensorrt" / key
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _profile(self, path: Path, graph: bytes | None) -> dict[str, str]:
        """The TensorRT profile of the model's image input (``{}`` for a model with preprocessing inside)."""
        if graph is not None:
            return {}
        import onnx  # the declared shapes only; onnxruntime's session does not exist yet

        model = onnx.load(str(path), load_external_data=False)
        initializers = {t.name for t in model.graph.initializer}
        (first,) = [i for i in model.graph.input if i.name not in initializers][:1] or [None]
        if first is None:
            return {}
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in first.type.tensor_type.shape.dim)
        return tensorrt_profile(first.name, dims, self.options.buckets)

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

    def run(self, batch: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Run the model on one input batch; returns every output, in model order.

        ``extra``: the other inputs of a model with preprocessing inside (``frames``), fed unchanged.
        With IO binding, ``batch`` runs as :func:`batch_plan` says and the outputs are cut back to its rows.
        """
        feeds = {self.input.name: batch, **(extra or {})}
        if not self.binding:
            return self._session.run(None, feeds)  # type: ignore[no-any-return]
        if self.max_batch is not None:  # a fixed batch size: nothing to pad
            return self._bound(self._stage(len(batch), batch), batch, extra)
        parts = []
        for start, stop, bucket in batch_plan(len(batch), self.options.buckets):
            staging = self._stage(bucket, batch)
            rows = stop - start
            staging.host[:rows] = batch[start:stop]
            staging.host[rows:] = batch[stop - 1]  # padding: the last row again, a real input
            parts.append([output[:rows] for output in self._bound(staging, staging.host, extra)])
        return parts[0] if len(parts) == 1 else [np.concatenate(chunks) for chunks in zip(*parts, strict=True)]

    def _stage(self, bucket: int, batch: np.ndarray) -> _Staging:
        """The staging buffer of ``bucket`` rows shaped like ``batch``'s, made on first use."""
        key = (bucket, tuple(batch.shape[1:]), batch.dtype.str)
        if key not in self._staging:
            shape = (bucket, *batch.shape[1:])
            pinned = _pinned(shape, batch.dtype, self.options.device_id) if self.provider in _GPU_PROVIDERS else None
            host, owner = pinned if pinned is not None else (np.empty(shape, batch.dtype), None)
            staging = _Staging(host, owner, graph_id=len(self._staging))
            if self.options.cuda_graphs and self.provider == _CUDA:
                staging.device = ort.OrtValue.ortvalue_from_shape_and_type(
                    list(shape), batch.dtype, "cuda", self.options.device_id
                )
                staging.outputs = [self._device_output(o, bucket) for o in self.outputs]
            self._staging[key] = staging
        return self._staging[key]

    def _device_output(self, output: TensorInfo, bucket: int) -> Any:
        """A GPU buffer for ``output`` at ``bucket`` rows (CUDA graphs need outputs at fixed addresses)."""
        rest = output.shape[1:]
        if not all(isinstance(d, int) for d in rest):
            raise ModelError(
                f"{self.path}: output {output.name!r} has shape {list(output.shape)}; engine.cuda_graphs needs "
                "every axis but the batch fixed; turn engine.cuda_graphs off for this model"
            )
        shape = [bucket, *(int(d) for d in rest if isinstance(d, int))]
        return ort.OrtValue.ortvalue_from_shape_and_type(shape, output.dtype, "cuda", self.options.device_id)

    def _bound(self, staging: _Staging, batch: np.ndarray, extra: dict[str, np.ndarray] | None) -> list[np.ndarray]:
        """One ``run_with_iobinding`` of ``batch`` (``staging.host`` or a fixed-size batch) and ``extra``."""
        binding = self._session.io_binding()
        run_options = None
        if staging.device is not None:  # CUDA graphs: fixed device buffers, one captured graph per bucket
            staging.device.update_inplace(batch)
            binding.bind_ortvalue_input(self.input.name, staging.device)
            for info, value in zip(self.outputs, staging.outputs, strict=True):
                binding.bind_ortvalue_output(info.name, value)
            run_options = ort.RunOptions()
            run_options.add_run_config_entry("gpu_graph_id", str(staging.graph_id + 1))
        else:
            if staging.pinned is not None and batch is staging.host:
                binding.bind_ortvalue_input(self.input.name, staging.pinned)
            else:
                binding.bind_cpu_input(self.input.name, batch)
            for info in self.outputs:
                binding.bind_output(info.name, "cpu")
        for name, value in (extra or {}).items():
            binding.bind_cpu_input(name, value)
        self._session.run_with_iobinding(binding, run_options)
        return binding.copy_outputs_to_cpu()  # type: ignore[no-any-return]
