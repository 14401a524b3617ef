"""INT8 models for the CPU: ONNX Runtime static quantization, calibrated on real frames, checked against fp32.

``precision`` (``[classifier]``/``[detector]``, ``--precision``) is ``fp32``,
``int8`` or unset: fp32 while :data:`INT8_BY_DEFAULT` is off (on, it would be
int8 on a CPU with VNNI, :func:`has_vnni`).
Call order: :class:`~streamer.models.stage.ModelStage` locates the fp32
model, then :func:`for_precision` returns the file to load: the fp32 one, or
its int8 build, made on first use and cached under
``<cache_dir>/int8/<key>/`` (``model.onnx`` and ``build.json``, written last,
with the sha256 of both models, of the calibration set and the agreement
reached; a cache that does not match it is rebuilt, as the embedded models').

The build (QDQ, per-channel weights, uint8 activations) quantizes a
classifier's whole graph but its last matrix product (the class scores) and a
detector's convolutions (its decode stays fp32); activation ranges are the
:data:`CALIBRATION_PERCENTILE` of what it sees on crops, flips and exposures
of the shipped samples
(``samples/``: photographs and frames of ``street.mp4``), or of a folder of
the user's images (``calibration = "path/to/folder"``; required for a model
that is not embedded). It then runs both models on other images made from the
same sources (never the calibration ones) through the stages' own
preprocessing and fails with a :class:`~streamer.errors.ModelError` unless
int8 agrees with fp32: classifier top-1 on :data:`CLASSIFIER_AGREEMENT` of
the images, detector boxes (same class, IoU >= 0.5) on
:data:`DETECTOR_AGREEMENT` of them (a failed build leaves nothing in the
cache); :func:`build_int8` with ``check=False`` returns such a build with its
numbers instead (``benchmarks/bench_int8.py``).

On x86 without VNNI, ONNX Runtime's uint8 x int8 kernels add products in
pairs into int16 and can saturate; there the weights of the convolutions that
run as matrix products take 7 bits (``reduce_range``), depthwise ones keep 8.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx

from streamer.errors import ConfigError, ModelError
from streamer.files import atomic_path
from streamer.models.convert import sha256_file
from streamer.models.engine import Engine
from streamer.models.spec import PRECISIONS, ClassifierModel, DetectorModel, normalization_constants
from streamer.results import Detections
from streamer.vision.detect import decode
from streamer.vision.nms import iou_matrix
from streamer.vision.preprocess import Letterbox, fit, letterbox, to_tensor

__all__ = [
    "CLASSIFIER_AGREEMENT",
    "DETECTOR_AGREEMENT",
    "PRECISIONS",
    "Int8Build",
    "box_agreement",
    "build_int8",
    "cpu_flags",
    "default_precision",
    "for_precision",
    "has_vnni",
    "last_products",
    "sample_sources",
    "top1_agreement",
    "variants",
]

log = logging.getLogger(__name__)

#: the share of check images whose int8 top-1 class is fp32's, at least.
CLASSIFIER_AGREEMENT = 0.97
#: the share of boxes int8 and fp32 both find (same class, IoU >= 0.5), at least.
DETECTOR_AGREEMENT = 0.95
#: whether unset precision may pick int8 (:func:`default_precision`): off until both embedded models meet the
#: agreement above on a VNNI CPU; a failed build is not cached, so a default that fails would rebuild at every start.
INT8_BY_DEFAULT = False
#: bump when the recipe below changes, so old int8 builds are rebuilt.
QUANTIZER_VERSION = 3
CALIBRATION_IMAGES = 64
#: activation ranges: cut at this percentile of the calibration values (outliers clipped), not at their extremes.
CALIBRATION_PERCENTILE = 99.999
CHECK_IMAGES = 160
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def has_vnni(flags: str) -> bool:
    """Whether a ``/proc/cpuinfo`` ``flags`` line names an int8 dot-product unit (``avx512_vnni``, ``avx_vnni``)."""
    return bool({"avx512_vnni", "avx_vnni"} & set(flags.split()))


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> str:
    """The first ``flags`` line of ``path`` (empty where there is none: not Linux, not x86)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return value.strip()
    return ""


def default_precision(flags: str, *, cpu_only: bool, can_calibrate: bool) -> str:
    """``int8`` where it is faster and can be built (a VNNI CPU runs the model, calibration images exist), else
    ``fp32``."""
    return "int8" if cpu_only and can_calibrate and has_vnni(flags) else "fp32"


# --- images --------------------------------------------------------------------------------------------------


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _video_frames(path: Path, every: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        index += 1
    capture.release()
    return frames


def _quarters(image: np.ndarray) -> list[np.ndarray]:
    height, width = image.shape[:2]
    h, w = height // 2, width // 2
    return [image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:]]


def sample_sources(folder: Path = SAMPLES) -> list[np.ndarray]:
    """The shipped samples as RGB images: each photograph, the collage's four tiles, every 15th video frame."""
    if not (folder / "collage.jpg").is_file():
        raise ModelError(
            f"the samples int8 calibration uses are missing ({folder}); install streamer from its source tree, "
            "or set calibration = 'a folder of images' for this model, or precision = 'fp32'"
        )
    photos = [
        image for name in ("chelsea", "coffee", "collage") if (image := _read_rgb(folder / f"{name}.jpg")) is not None
    ]
    return photos + _quarters(photos[-1]) + _video_frames(folder / "street.mp4", 15)


def folder_sources(folder: Path, key: str) -> list[np.ndarray]:
    """Every readable image directly in ``folder``, sorted by name; ``key`` names the config key in errors."""
    if not folder.is_dir():
        raise ConfigError(f"{key} = {str(folder)!r} is not a folder; give a folder of calibration images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    images = [image for path in paths if (image := _read_rgb(path)) is not None]
    if not images:
        raise ConfigError(f"{key} = {str(folder)!r} holds no readable images ({', '.join(_IMAGE_SUFFIXES)})")
    return images


def variant(source: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random view of ``source``: a crop of 40-100% of each side, maybe mirrored, exposure x0.75-1.25."""
    height, width = source.shape[:2]
    scale = rng.uniform(0.4, 1.0)
    w = min(width, max(16, round(width * scale * rng.uniform(0.85, 1.15))))
    h = min(height, max(16, round(height * scale)))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    view = source[y : y + h, x : x + w]
    if rng.random() < 0.5:
        view = view[:, ::-1]
    gain, offset = rng.uniform(0.75, 1.25), rng.uniform(-15.0, 15.0)
    exposed: np.ndarray = np.clip(view.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)
    return exposed


def variants(sources: Sequence[np.ndarray], count: int, seed: int) -> list[np.ndarray]:
    """``count`` random views (:func:`variant`) of ``sources`` taken in turn; the same ``seed``, the same views."""
    rng = np.random.default_rng(seed)
    return [variant(sources[i % len(sources)], rng) for i in range(count)]


# --- agreement -----------------------------------------------------------------------------------------------


def top1_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The share of rows whose best score is in the same column in both ``[images, classes]`` arrays."""
    return float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1)))


def matched_boxes(reference: Detections, candidate: Detections, iou: float = 0.5) -> int:
    """How many boxes pair up, greedily best-scored first: same class, IoU >= ``iou``, each box used once."""
    free = np.ones(len(candidate.boxes), bool)
    matched = 0
    for box, cls in zip(reference.boxes, reference.class_ids, strict=True):
        overlaps = np.where(free & (candidate.class_ids == cls), iou_matrix(box[None], candidate.boxes)[0], 0.0)
        if len(overlaps) and overlaps.max() >= iou:
            free[int(overlaps.argmax())] = False
            matched += 1
    return matched


def box_agreement(reference: Sequence[Detections], candidate: Sequence[Detections]) -> tuple[float, int]:
    """(matched boxes / boxes of the model that found more, per image, summed; that total of boxes).

    A box only one model finds counts against agreement, lost or extra. No box at all: (1.0, 0).
    """
    total = sum(max(len(r.boxes), len(c.boxes)) for r, c in zip(reference, candidate, strict=True))
    matched = sum(matched_boxes(r, c) for r, c in zip(reference, candidate, strict=True))
    return (matched / total if total else 1.0), total


# --- preprocessing as the stages do it -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Feed:
    """How to turn RGB images into the model's input and its outputs into what the check compares."""

    size: tuple[int, int]
    tensor: Callable[[list[np.ndarray]], np.ndarray]
    fit: Callable[[np.ndarray], tuple[np.ndarray, Letterbox | None]]


def _feed(declaration: ClassifierModel | DetectorModel, engine: Engine, task: str) -> _Feed:
    d = declaration
    size = engine.image_size(section=task, layout=d.layout or "nchw", declared=d.input_size, normalization=None)
    mean, std = normalization_constants(d.normalization, d.mean, d.std)

    def tensor(images: list[np.ndarray]) -> np.ndarray:
        layout, bgr = d.layout or "nchw", d.color == "bgr"
        return to_tensor(images, mean=mean, std=std, layout=layout, bgr=bgr, dtype=engine.input.dtype)

    if isinstance(d, DetectorModel):
        pad = d.pad_value or 0

        def fitted(image: np.ndarray) -> tuple[np.ndarray, Letterbox | None]:
            canvas, box = letterbox(image, size, pad)
            return canvas, box
    else:
        shorter = d.resize_shorter or round(min(size) / 0.875)
        resize = d.resize or "crop"

        def fitted(image: np.ndarray) -> tuple[np.ndarray, Letterbox | None]:
            return fit(image, size, resize, shorter), None

    return _Feed(size, tensor, fitted)


def _outputs(engine: Engine, tensor: np.ndarray, batch: int = 8) -> list[np.ndarray]:
    step = engine.max_batch or batch
    runs = [engine.run(tensor[i : i + step]) for i in range(0, len(tensor), step)]
    return [np.concatenate(parts) for parts in zip(*runs, strict=True)]


def _detections(declaration: DetectorModel, feed: _Feed, images: list[np.ndarray], engine: Engine) -> list[Detections]:
    fitted = [feed.fit(image) for image in images]
    outputs = _outputs(engine, feed.tensor([canvas for canvas, _ in fitted]))
    d = declaration
    return [
        decode(
            outputs,
            d.family or "yolov5",
            i,
            letterbox=box or Letterbox(1.0, 0, 0),
            source_size=(image.shape[1], image.shape[0]),
            conf_threshold=float(d.confidence or 0.0),
            iou_threshold=float(d.iou or 0.0),
            max_detections=int(d.max_detections or 1),
            min_box_size=float(d.min_box_size or 0.0),
            normalized_boxes=bool(d.normalized_boxes),
            input_size=feed.size,
        )
        for i, ((_, box), image) in enumerate(zip(fitted, images, strict=True))
    ]


# --- quantization --------------------------------------------------------------------------------------------


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every node named (quantization excludes nodes by name)."""
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_{i}"
    return model


def _is_depthwise(node: onnx.NodeProto) -> bool:
    return node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)


_PRODUCTS = ("Conv", "Gemm", "MatMul")


def last_products(model: onnx.ModelProto, op_types: Sequence[str] = ("Gemm", "MatMul")) -> list[str]:
    """Names of the ``op_types`` nodes after which no convolution or matrix product runs: a classifier's last
    layer, which makes the class scores, where rounding costs most, for a small share of the work."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    feeds_product: dict[str, bool] = {}

    def reaches_product(node: onnx.NodeProto) -> bool:
        if node.name not in feeds_product:
            feeds_product[node.name] = False
            after = [c for out in node.output for c in consumers.get(out, [])]
            feeds_product[node.name] = any(c.op_type in _PRODUCTS or reaches_product(c) for c in after)
        return feeds_product[node.name]

    return [node.name for node in model.graph.node if node.op_type in op_types and not reaches_product(node)]


def _weight_overrides(model: onnx.ModelProto, vnni: bool) -> dict[str, list[dict[str, Any]]]:
    """Per-channel 7-bit weights for the convolutions ONNX Runtime runs as uint8 x int8 matrix products, where
    the CPU lacks VNNI (see the module); none where it has it."""
    if vnni:
        return {}
    channels = {init.name: int(init.dims[0]) for init in model.graph.initializer if init.dims}
    names = [n.input[1] for n in model.graph.node if n.op_type == "Conv" and not _is_depthwise(n)]
    return {
        name: [{"axis": 0, "reduce_range": True}] + [{"reduce_range": True}] * (channels[name] - 1)
        for name in names
        if name in channels
    }


class _Batches:
    """Calibration inputs one image at a time, as ONNX Runtime's ``CalibrationDataReader`` reads them."""

    def __init__(self, name: str, tensor: np.ndarray) -> None:
        self._rows: Iterator[np.ndarray] = iter(tensor)
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        row = next(self._rows, None)
        return None if row is None else {self._name: row[None]}


def _quantizer_advice(record: logging.LogRecord) -> bool:
    """False for ONNX Runtime's quantizer suggesting its pre-processing (streamer's build needs none)."""
    return not record.getMessage().startswith("Please consider")


@contextlib.contextmanager
def _filtered(logger: logging.Logger, keep: Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """``logger`` (its own records, not those its children pass up) drops what ``keep`` refuses meanwhile."""
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def quantize(
    source: Path, target: Path, calibration: np.ndarray, input_name: str, *, vnni: bool, detector: bool
) -> None:
    """Write the int8 (QDQ) model of ``source`` to ``target``, calibrated on the input batch ``calibration``.

    A classifier: every operator ONNX Runtime can quantize but the last matrix product (:func:`last_products`);
    a detector: its convolutions only (its decode, exponentials and sigmoids, stays fp32). Activation ranges
    by percentile. On a CPU without VNNI these agreed best; the others tried agreed less or as well: signed
    activations, 8-bit weights, the classifier's convolutions only, the detector's heads in fp32, ranges by
    min/max or by entropy (as ``quantize_static`` runs it, 128 bins: the same as min/max), 160 calibration
    images.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = _named(onnx.load(str(source)))
    op_types, exclude = (["Conv"], []) if detector else (None, last_products(model))
    root = logging.getLogger()  # the quantizer's advice ("consider pre-processing") goes to the root logger
    with (
        tempfile.TemporaryDirectory(prefix="streamer-int8-") as work,
        atomic_path(target) as tmp,
        _filtered(root, _quantizer_advice),
    ):
        prepared = Path(work) / "named.onnx"
        onnx.save(model, str(prepared))
        quantize_static(
            str(prepared),
            str(tmp),
            _Batches(input_name, calibration),  # type: ignore[arg-type]  # a duck-typed reader
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            nodes_to_exclude=exclude,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={
                "TensorQuantOverrides": _weight_overrides(model, vnni),
                "CalibPercentile": CALIBRATION_PERCENTILE,
            },
        )


# --- build and cache -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What one int8 build reads: the fp32 model, calibration and check images, and its cache folder."""

    fp32: Path
    fp32_sha256: str
    calibration: list[np.ndarray]
    check: list[np.ndarray]
    images_sha256: str
    folder: Path


def _images_digest(images: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for image in images:
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _plan(fp32: Path, calibration_folder: str | None, task: str, cache_dir: Path, vnni: bool) -> _Plan:
    samples = sample_sources() if calibration_folder is None or (SAMPLES / "collage.jpg").is_file() else []
    if calibration_folder:
        sources = folder_sources(Path(calibration_folder).expanduser(), f"{task}.calibration")
        calibration = variants(sources, CALIBRATION_IMAGES, seed=1)
        # other views of the user's images, and the samples where installed: a narrow folder fails the check
        check = variants(sources, CHECK_IMAGES // 2, seed=2) + variants(samples or sources, CHECK_IMAGES // 2, seed=3)
    else:
        calibration = variants(samples, CALIBRATION_IMAGES, seed=1)
        check = variants(samples, CHECK_IMAGES, seed=2)
    fp32_sha = sha256_file(fp32)
    images_sha = _images_digest(calibration + check)
    key = hashlib.sha256(f"{fp32_sha} {images_sha} {QUANTIZER_VERSION} {vnni}".encode()).hexdigest()[:16]
    return _Plan(fp32, fp32_sha, calibration, check, images_sha, cache_dir / "int8" / key)


def _cached(plan: _Plan) -> Int8Build | None:
    path = plan.folder / "model.onnx"
    try:
        record = json.loads((plan.folder / "build.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if record.get("quantizer_version") != QUANTIZER_VERSION or record.get("fp32_sha256") != plan.fp32_sha256:
        return None
    if not path.is_file() or sha256_file(path) != record.get("onnx_sha256"):
        log.warning("cached int8 model %s does not match its build record; rebuilding", path)
        return None
    try:
        return Int8Build(
            path, float(record["agreement"]), float(record["needed"]), int(record["count"]), str(record["unit"])
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Int8Build:
    """An int8 build and how well it agrees with its fp32 model on the check images."""

    path: Path
    #: the share of images (classifier: same top-1 class) or of boxes (detector) that agree.
    agreement: float
    #: the share needed (:data:`CLASSIFIER_AGREEMENT`, :data:`DETECTOR_AGREEMENT`).
    needed: float
    #: how many images or boxes were compared.
    count: int
    #: ``images`` or ``boxes``.
    unit: str

    @property
    def agrees(self) -> bool:
        return self.agreement >= self.needed


def _agreement(
    declaration: ClassifierModel | DetectorModel, task: str, plan: _Plan, int8: Path
) -> tuple[float, float, int, str]:
    """(agreement, the share needed, how many, of what) of the int8 model with fp32 on the check images."""
    reference, candidate = Engine(plan.fp32, device="cpu"), Engine(int8, device="cpu")
    feed = _feed(declaration, reference, task)
    if isinstance(declaration, DetectorModel):
        share, boxes = box_agreement(
            _detections(declaration, feed, plan.check, reference),
            _detections(declaration, feed, plan.check, candidate),
        )
        return share, DETECTOR_AGREEMENT, boxes, "boxes"
    tensor = feed.tensor([feed.fit(image)[0] for image in plan.check])
    share = top1_agreement(_outputs(reference, tensor)[0], _outputs(candidate, tensor)[0])
    return share, CLASSIFIER_AGREEMENT, len(plan.check), "images"


def build_int8(
    fp32: Path,
    declaration: ClassifierModel | DetectorModel,
    task: str,
    *,
    name: str,
    cache_dir: Path,
    vnni: bool | None = None,
    check: bool = True,
) -> Int8Build:
    """The int8 build of ``fp32``, measured against it; ``name`` names the model in messages; ``vnni``
    ``None``: this CPU's.

    Only a build that agrees is cached. ``check``: one that does not raises a :class:`ModelError` saying by
    how much, and its file is removed; without ``check`` it is returned all the same (for measuring), and a
    later build redoes it.
    """
    vnni = has_vnni(cpu_flags()) if vnni is None else vnni
    plan = _plan(fp32, declaration.calibration, task, cache_dir, vnni)
    if (cached := _cached(plan)) is not None:
        return cached
    log.info("quantizing %s to int8 (calibrating on %d images)", name, len(plan.calibration))
    reference = Engine(fp32, device="cpu")
    feed = _feed(declaration, reference, task)
    calibration = feed.tensor([feed.fit(image)[0] for image in plan.calibration])
    target = plan.folder / "model.onnx"
    (plan.folder / "build.json").unlink(missing_ok=True)
    quantize(
        fp32, target, calibration, reference.input.name, vnni=vnni, detector=isinstance(declaration, DetectorModel)
    )
    share, needed, count, unit = _agreement(declaration, task, plan, target)
    build = Int8Build(target, share, needed, count, unit)
    if not build.agrees:
        if not check:
            return build
        target.unlink(missing_ok=True)
        where = f"calibration folder {declaration.calibration}" if declaration.calibration else "the shipped samples"
        counted = f"top-1 classes of {count} images" if unit == "images" else f"{count} boxes"
        raise ModelError(
            f"int8 {name} agrees with fp32 on {share:.1%} of {counted} (needs {needed:.0%}), calibrated on "
            f"{where}; give {task}.calibration a folder of more varied images like the model's input, "
            f"or set {task}.precision = 'fp32'"
        )
    record = {
        "name": name,
        "quantizer_version": QUANTIZER_VERSION,
        "fp32_sha256": plan.fp32_sha256,
        "images_sha256": plan.images_sha256,
        "onnx_sha256": sha256_file(target),
        "vnni": vnni,
        "agreement": round(share, 4),
        "needed": needed,
        "count": count,
        "unit": unit,
    }
    with atomic_path(plan.folder / "build.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return build


def for_precision(
    fp32: Path,
    declaration: ClassifierModel | DetectorModel,
    task: str,
    *,
    embedded: bool,
    cpu_only: bool,
    cache_dir: Path,
) -> Path:
    """The model file to load for ``declaration.precision``: ``fp32`` itself, or its int8 build.

    Unset precision is int8 where :func:`default_precision` says so; such an int8 build that does not agree
    falls back to fp32 with a warning, where an explicit ``int8`` fails.
    """
    precision = declaration.precision
    can_calibrate = embedded or declaration.calibration is not None
    if precision is None and not INT8_BY_DEFAULT:
        return fp32
    if precision is None:
        precision = default_precision(cpu_flags(), cpu_only=cpu_only, can_calibrate=can_calibrate)
        if precision == "fp32":
            return fp32
        try:
            return build_int8(fp32, declaration, task, name=declaration.model, cache_dir=cache_dir).path
        except ModelError as exc:
            log.warning("%s; running fp32", exc)
            return fp32
    if precision == "fp32":
        return fp32
    if not can_calibrate:
        raise ConfigError(
            f"{task}.precision = 'int8' needs calibration images for {declaration.model}: "
            f"set {task}.calibration = 'a folder of images like its input'"
        )
    return build_int8(fp32, declaration, task, name=declaration.model, cache_dir=cache_dir).path
