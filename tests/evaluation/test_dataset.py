"""Datasets from class folders and CSV files, and their labels matched to the real model's classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import ConfigError, InputNotFoundError
from streamer.evaluation import dataset_classes
from streamer.evaluation.dataset import Sample, load_csv, load_dataset, load_folder
from streamer.evaluation.labels import map_labels, normalize_label
from streamer.tasks import Classifier


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_class_folders_give_sorted_samples_nested_files_and_any_case_extension(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    for name in ["tabby/b.jpg", "tabby/a.PNG", "tabby/more/c.webp", "espresso/d.Jpeg", "espresso/e.tif"]:
        touch(root / name)
    touch(root / "tabby" / "notes.txt")  # not an image
    touch(root / "tabby" / ".hidden" / "f.jpg")  # hidden folder
    touch(root / "loose.jpg")  # not in a class folder
    touch(root / ".cache" / "g.jpg")  # hidden class folder
    (root / "empty").mkdir()  # skipped with a warning
    assert load_dataset(root) == [
        Sample(root / "espresso/d.Jpeg", "espresso"),
        Sample(root / "espresso/e.tif", "espresso"),
        Sample(root / "tabby/a.PNG", "tabby"),
        Sample(root / "tabby/b.jpg", "tabby"),
        Sample(root / "tabby/more/c.webp", "tabby"),
    ]
    path, label = load_dataset(root)[0]  # a plain (path, label) pair too
    assert (path.name, label) == ("d.Jpeg", "espresso")


def test_csv_columns_in_any_order_paths_relative_to_the_csv(tmp_path: Path) -> None:
    touch(tmp_path / "export" / "images" / "1.jpg")
    touch(tmp_path / "export" / "images" / "2.png")
    csv = tmp_path / "export" / "labels.csv"
    # a byte-order mark, an extra column, columns swapped, spaces around cells, a blank line
    touch(tmp_path / "export" / "images" / "3, the last.jpg")
    csv.write_text(
        "\ufefflabel, id ,Filename\n tabby ,1, images/1.jpg\n\nespresso,2,images/2.png\n"
        'cup,3,"images/3, the last.jpg"\n',
        encoding="utf-8",
    )
    assert load_dataset(csv) == [
        Sample(tmp_path / "export/images/1.jpg", "tabby"),
        Sample(tmp_path / "export/images/2.png", "espresso"),
        Sample(tmp_path / "export/images/3, the last.jpg", "cup"),
    ]


def test_missing_dataset_names_the_path_and_the_layouts(tmp_path: Path) -> None:
    with pytest.raises(
        InputNotFoundError, match=r"dataset .*nowhere does not exist; give a folder with one sub-folder"
    ):
        load_dataset(tmp_path / "nowhere")


def test_folder_without_class_folders_says_what_is_expected(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    touch(tmp_path / "labels.csv")
    with pytest.raises(ConfigError) as error:
        load_folder(tmp_path)
    message = str(error.value)
    assert f"dataset folder {tmp_path} has no class sub-folders, it holds only files (a.jpg, labels.csv)" in message
    assert "one sub-folder per class" in message
    assert f"to use the CSV, give its path: {tmp_path / 'labels.csv'}" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="it holds nothing"):
        load_dataset(empty)


def test_class_folders_without_images_are_an_empty_dataset(tmp_path: Path) -> None:
    touch(tmp_path / "tabby" / "readme.txt")
    (tmp_path / "espresso").mkdir()
    with pytest.raises(ConfigError, match=r"has class sub-folders \(espresso, tabby\) but no image files"):
        load_dataset(tmp_path)


def test_a_file_that_is_not_a_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"labels.txt is neither a folder nor a .csv file"):
        load_dataset(touch(tmp_path / "labels.txt"))


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("file,label\na.jpg,tabby\n", ConfigError, r"has no 'filename' column: its header row \(line 1\) is \['file'"),
        ("filename\na.jpg\n", ConfigError, "has no 'label' column"),
        ("filename,label,Label\n", ConfigError, "has two 'label' columns"),
        ("", ConfigError, "is empty; expected a header row 'filename,label'"),
        ("filename,label\n", ConfigError, "has a header row but no samples"),
        ("filename,label\na.jpg,tabby\nb.jpg,espresso\n", InputNotFoundError, r"1 bad row: row 3: image file .*b.jpg"),
        ("filename,label\na.jpg,\n", ConfigError, "row 2: empty label for a.jpg"),
        ("filename,label\n,tabby\n", ConfigError, "row 2: empty filename"),
        ("label,x,filename\ntabby\n", ConfigError, "row 2: 1 columns, the header has 3"),
        (
            "filename,label\nb.jpg,tabby\na.jpg,\nc.jpg,cup\n",
            ConfigError,
            r"3 bad rows: row 2: image file .*b.jpg does not exist; row 3: empty label for a.jpg; row 4: image",
        ),
    ],
)
def test_csv_errors_name_the_file_the_row_and_what_is_wrong(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    touch(tmp_path / "a.jpg")
    csv = tmp_path / "data.csv"
    csv.write_text(text, encoding="utf-8")
    with pytest.raises(error, match=message) as raised:
        load_csv(csv)
    assert f"CSV {csv}" in str(raised.value)


def test_normalize_label() -> None:
    assert normalize_label("  Tiger_Cat ") == "tiger cat"
    assert normalize_label("great-white__shark") == "great white shark"


def test_labels_match_the_real_models_names(classifier: Classifier) -> None:
    stage = classifier.classifier
    assert stage is not None
    names = stage.names
    mapping = map_labels(
        ["tabby", " Tiger_Cat ", "persian-cat", "0", "espresso", "Cardigan", "cardigan"], names, stage.display_names
    )
    assert {label: names[i] for label, i in mapping.items()} == {
        "tabby": "tabby",
        " Tiger_Cat ": "tiger cat",
        "persian-cat": "Persian cat",
        "0": "tench",  # a class id
        "espresso": "espresso",
        "Cardigan": "Cardigan",  # the dog; exact names win over loose matches
        "cardigan": "cardigan",  # the sweater
    }
    assert mapping[" Tiger_Cat "] == 282 and mapping["tabby"] == 281


def test_unknown_labels_are_listed_together_with_suggestions(classifier: Classifier) -> None:
    with pytest.raises(ConfigError) as error:
        dataset_classes(classifier, ["tabbby", "espresso", "Tabby Kat", "qqqzzzx", "tabbby"])
    message = str(error.value)
    lines = message.splitlines()
    assert lines[0].startswith("3 dataset labels the model does not know; rename each class folder (or CSV label)")
    assert "the class names in" in lines[0] and "labels.txt" in lines[0]
    assert lines[1].startswith("  'Tabby Kat': did you mean ") and "'tabby'" in lines[1]
    assert lines[2].startswith("  'qqqzzzx': no close class name")
    assert lines[3].startswith("  'tabbby': did you mean 'tabby'")
    assert len(lines) == 4


def test_labels_match_the_other_names_a_class_has(classifier: Classifier) -> None:
    """ImageNet's WordNet synonyms, written to aliases.txt beside labels.txt when the model is converted."""
    classes = dataset_classes(classifier, ["Tabby Cat", "sport_car", "Tinca tinca", "crayfish"])
    assert {c.label: (c.class_id, c.name) for c in classes} == {
        "Tabby Cat": (281, "tabby"),
        "sport_car": (817, "sports car"),
        "Tinca tinca": (0, "tench"),
        "crayfish": (124, "crayfish"),  # a class's own name wins over another's alias
    }
    with pytest.raises(ConfigError, match=r"'panther' matches classes 286 'cougar', 290 'jaguar'"):
        dataset_classes(classifier, ["panther"])


def test_ambiguous_and_duplicate_labels_are_errors(classifier: Classifier) -> None:
    stage = classifier.classifier
    assert stage is not None
    # ImageNet has two classes named "crane" (the bird, 134; the machine, 517)
    with pytest.raises(ConfigError, match=r"1 ambiguous dataset label.*\n  'crane' matches classes 134 'crane', 517"):
        map_labels(["crane"], stage.names, stage.display_names)
    with pytest.raises(ConfigError, match=r"dataset labels 'Tabby', 'tabby' all name class 281 'tabby'; merge them"):
        map_labels(["Tabby", "tabby"], stage.names, stage.display_names)


def test_dataset_classes_are_sorted_by_label(classifier: Classifier) -> None:
    classes = dataset_classes(classifier, ["tabby", "Espresso", "tabby"])
    assert [(c.label, c.class_id, c.name) for c in classes] == [("Espresso", 967, "espresso"), ("tabby", 281, "tabby")]
