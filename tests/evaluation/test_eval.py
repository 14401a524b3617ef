"""Evaluation end to end: a real photo dataset made at test time, the real EfficientNet-Lite0.

The expected figures are counted here with plain Python from each image's own
``classifier.classify`` result, independently of the metrics module.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from skimage import data

from streamer.config import load_config
from streamer.errors import ConfigError, ImageError
from streamer.evaluation import evaluate, load_dataset
from streamer.evaluation.command import add_parser, run
from streamer.evaluation.metrics import EvalReport
from streamer.sources.images import read_image
from streamer.tasks import Classifier, ClassifierOptions

# the dataset's labels and the model's names for them ("Espresso" matches "espresso" loosely)
NAMES = {"Espresso": "espresso", "missile": "missile", "tabby": "tabby", "tiger cat": "tiger cat"}


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT))


def crop(image: np.ndarray, fraction: float) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = int(h * fraction), int(w * fraction)
    return image[dy : h - dy, dx : w - dx]


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    scaled: np.ndarray = np.clip(image.astype(np.float32) * factor, 0, 255)
    return scaled.astype(np.uint8)


AUGMENT: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "plain": lambda im: im,
    "flip": lambda im: im[:, ::-1],
    "crop": lambda im: crop(im, 0.12),
    "dark": lambda im: brightness(im, 0.6),
    "bright": lambda im: brightness(im, 1.3),
    "rot": lambda im: rotate(im, 12),
    "small": lambda im: cv2.resize(im, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
}

# folder: (photo, augmentations); the cat photo is labelled both "tiger cat" and "tabby", so some answers are
# right, some land on the other dataset class and some on classes outside the dataset ("other")
LAYOUT: dict[str, tuple[Callable[[], np.ndarray], list[str]]] = {
    "tiger cat": (data.chelsea, ["plain", "flip", "dark", "crop", "rot"]),
    "tabby": (data.chelsea, ["plain", "small", "bright"]),
    "Espresso": (data.coffee, ["plain", "flip", "crop", "bright"]),
    "missile": (data.rocket, ["plain", "flip", "crop"]),
}


def save(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval") / "photos"
    for label, (photo, augmentations) in LAYOUT.items():
        image = photo()
        for i, name in enumerate(augmentations):
            save(root / label / f"{name}.{'png' if i % 2 else 'jpg'}", AUGMENT[name](image))
    return root


def expected(classifier: Classifier, samples: Sequence[tuple[Path, str]]) -> dict[str, Any]:
    """The figures counted by hand from one ``classify`` per image."""
    labels = sorted(NAMES)
    confusion = {label: dict.fromkeys([*labels, "other"], 0) for label in labels}
    top1 = top5 = 0
    confidences: dict[str, list[float]] = {label: [] for label in labels}
    for path, label in samples:
        classes = classifier.classify(read_image(path)).classes
        best = classes[0].name
        top1 += best == NAMES[label]
        top5 += NAMES[label] in [c.name for c in classes[:5]]
        predicted = next((other for other in labels if NAMES[other] == best), "other")
        confusion[label][predicted] += 1
        confidences[label].append(classes[0].confidence)
    per_class = {}
    for label in labels:
        support = sum(confusion[label].values())
        right = confusion[label][label]
        predicted_as = sum(confusion[row][label] for row in labels)
        precision = right / predicted_as if predicted_as else 0.0
        recall = right / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        mean = sum(confidences[label]) / support
        per_class[label] = (support, precision, recall, f1, mean)
    every = [c for values in confidences.values() for c in values]
    return {
        "samples": len(samples),
        "top1": top1 / len(samples),
        "top5": top5 / len(samples),
        "confusion": [[confusion[row][column] for column in [*labels, "other"]] for row in labels],
        "classes": per_class,
        "mean_confidence": sum(every) / len(every),
    }


def check(report: EvalReport, want: dict[str, Any]) -> None:
    assert report.samples == want["samples"]
    assert report.k == 5
    assert report.top1 == pytest.approx(want["top1"])
    assert report.topk == pytest.approx(want["top5"])
    assert report.confusion.tolist() == want["confusion"]
    assert report.columns == [*sorted(NAMES), "other"]
    assert report.mean_confidence == pytest.approx(want["mean_confidence"], abs=1e-4)
    classes = want["classes"]
    assert isinstance(classes, dict)
    for c in report.classes:
        support, precision, recall, f1, mean = classes[c.label]
        assert (c.name, c.support) == (NAMES[c.label], support)
        assert (c.precision, c.recall, c.f1) == pytest.approx((precision, recall, f1))
        assert c.mean_confidence == pytest.approx(mean, abs=1e-4)
    assert report.macro_f1 == pytest.approx(sum(v[3] for v in classes.values()) / len(classes))


def test_the_dataset_is_a_real_mixed_bag(classifier: Classifier, photos: Path) -> None:
    want = expected(classifier, load_dataset(photos))
    # right answers, confusions between dataset classes and answers outside them all occur
    confusion = want["confusion"]
    assert isinstance(confusion, list)
    assert want["samples"] == 15
    assert 0 < sum(confusion[i][i] for i in range(4)) < 15
    assert sum(confusion[i][j] for i in range(4) for j in range(4) if i != j) > 0, "a dataset class for another"
    assert sum(row[4] for row in confusion) > 0, "a class outside the dataset"
    assert want["top5"] > want["top1"]


def test_evaluate_matches_the_figures_counted_by_hand(classifier: Classifier, photos: Path) -> None:
    samples = load_dataset(photos)
    report = evaluate(classifier, samples, batch_size=4)
    check(report, expected(classifier, samples))
    assert report.unreadable == ()


def test_a_classifier_keeping_fewer_than_five_classes_is_refused(cache_dir: Path, photos: Path) -> None:
    options = ClassifierOptions(cache_dir=cache_dir, device="cpu", max_results=2)
    with (
        Classifier.create_from_options(options) as two,
        pytest.raises(ConfigError, match=r"gave 2 classes for an image, but top-5 .* max_results >= 5"),
    ):
        evaluate(two, load_dataset(photos))


def test_unknown_labels_fail_before_any_image_is_read(classifier: Classifier, tmp_path: Path) -> None:
    broken = tmp_path / "tabbby" / "x.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"not read")
    with pytest.raises(ConfigError, match="'tabbby': did you mean 'tabby'"):
        evaluate(classifier, load_dataset(tmp_path))


def test_no_readable_image_is_an_error(classifier: Classifier, tmp_path: Path) -> None:
    (tmp_path / "tabby").mkdir()
    (tmp_path / "tabby" / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"none of the dataset's 1 images could be read; the first: .*x.jpg"):
        evaluate(classifier, load_dataset(tmp_path))


def eval_args(*argv: str) -> argparse.Namespace:
    """Parse like ``streamer eval``: the sub-command added to a parser with a shared ``--device`` flag."""
    parser = argparse.ArgumentParser(prog="streamer")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device")
    add_parser(parser.add_subparsers(dest="command", required=True), [common])
    return parser.parse_args(["eval", *argv])


def run_eval(*argv: str) -> int:
    args = eval_args(*argv)
    overrides = {"device": args.device, "classifier.model": args.model}
    return run(args, load_config(overrides={k: v for k, v in overrides.items() if v is not None}))


def check_png(path: Path) -> None:
    picture = cv2.imread(str(path))
    assert picture is not None, f"{path} is not a PNG OpenCV can read"
    assert picture.shape[0] > 100 and picture.shape[1] > 100
    assert picture.reshape(-1, 3).std(axis=0).max() > 10, "not one flat colour"


def test_command_writes_metrics_and_picture_and_prints_a_table(
    classifier: Classifier,
    photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no config.toml; the default output folder lands here
    assert run_eval(str(photos), "--device", "cpu", "--batch", "5") == 0
    out = capsys.readouterr().out
    folder = tmp_path / "eval-photos"
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics) == {
        "samples",
        "unreadable",
        "top1_accuracy",
        "top5_accuracy",
        "k",
        "mean_confidence",
        "macro",
        "classes",
        "confusion",
    }
    want = expected(classifier, load_dataset(photos))
    assert metrics["samples"] == 15
    assert metrics["top1_accuracy"] == pytest.approx(want["top1"], abs=1e-6)
    assert metrics["top5_accuracy"] == pytest.approx(want["top5"], abs=1e-6)
    assert metrics["confusion"]["matrix"] == want["confusion"]
    assert metrics["confusion"]["columns"] == [*sorted(NAMES), "other"]
    assert [c["label"] for c in metrics["classes"]] == sorted(NAMES)
    assert metrics["classes"][0]["name"] == "espresso"
    check_png(folder / "confusion.png")
    assert sorted(p.name for p in folder.iterdir()) == ["confusion.png", "metrics.json"], "no temporary files left"
    lines = out.splitlines()
    assert lines[0] == "images            15"
    assert lines[1] == f"top-1 accuracy   {want['top1'] * 100:6.2f}%"
    assert lines[2] == f"top-5 accuracy   {want['top5'] * 100:6.2f}%"
    assert any(line.startswith("Espresso (espresso)") for line in lines)
    assert any(line.startswith("macro average") for line in lines)
    assert lines[-2:] == ["wrote eval-photos/metrics.json", "wrote eval-photos/confusion.png"]


def test_command_json_and_an_unreadable_image_exit_1(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    dataset = tmp_path / "broken"
    shutil.copytree(photos, dataset)
    junk = dataset / "missile" / "x.jpg"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    out_dir = tmp_path / "results"
    assert run_eval(str(dataset), "--json", "-o", str(out_dir), "--device", "cpu") == 1
    captured = capsys.readouterr()
    metrics = json.loads(captured.out)
    assert metrics == json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["samples"] == 15, "the other images are evaluated"
    assert metrics["unreadable"] == [
        {
            "path": str(junk),
            "reason": f"{junk} is not an image OpenCV can decode (3000 bytes); "
            "give a PNG, JPEG, BMP, TIFF or WebP file",
        }
    ]
    missile = next(c for c in metrics["classes"] if c["label"] == "missile")
    assert missile["support"] == 3
    assert f"streamer: error: {junk} is not an image OpenCV can decode" in captured.err
    assert f"wrote {out_dir / 'confusion.png'}" in captured.err
    check_png(out_dir / "confusion.png")


def test_command_reports_a_missing_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset nothing-here does not exist"):
        run_eval("nothing-here", "--device", "cpu")
    with pytest.raises(ConfigError, match="--batch 0; expected an integer >= 1"):
        run_eval(".", "--batch", "0")


def test_the_streamer_command_runs_eval(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamer.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(photos), "--device", "cpu", "--model", "efficientnet-lite0", "--batch", "8"]) == 0
    assert json.loads((tmp_path / "eval-photos" / "metrics.json").read_text(encoding="utf-8"))["samples"] == 15
    assert main(["eval", str(tmp_path / "missing"), "--device", "cpu"]) == 2
