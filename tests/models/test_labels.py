"""Class-name files and display-name locales."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import ConfigError, InputNotFoundError, ModelError
from streamer.models.labels import load_aliases, load_display_names, load_labels


def test_names_and_locale_with_fallback_for_blank_lines(tmp_path: Path) -> None:
    labels = tmp_path / "classes.txt"
    labels.write_text("cat\ndog\nbird\n\n")
    (tmp_path / "labels.de.txt").write_text("Katze\n\nVogel\n")
    names = load_labels(labels)
    assert names == ["cat", "dog", "bird"]
    assert load_display_names(labels, names, "de") == ["Katze", "dog", "Vogel"]
    assert load_display_names(labels, names, None) == names


def test_unknown_locale_lists_the_available_ones(tmp_path: Path) -> None:
    labels = tmp_path / "classes.txt"
    labels.write_text("cat\ndog\n")
    (tmp_path / "labels.de.txt").write_text("Katze\nHund\n")
    (tmp_path / "labels.fr.txt").write_text("chat\nchien\n")
    with pytest.raises(ConfigError, match=r"'es'.*labels\.es\.txt does not exist; available locales: de, fr"):
        load_display_names(labels, ["cat", "dog"], "es")


def test_model_without_display_names_shows_names(tmp_path: Path) -> None:
    labels = tmp_path / "classes.txt"
    labels.write_text("cat\ndog\n")
    assert load_display_names(labels, ["cat", "dog"], "de") == ["cat", "dog"]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"missing\.txt does not exist"):
        load_labels(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ModelError, match=r"empty\.txt is empty"):
        load_labels(empty)
    holes = tmp_path / "holes.txt"
    holes.write_text("a\n\nb\n")
    with pytest.raises(ModelError, match=r"holes.txt has empty lines \(2\)"):
        load_labels(holes)
    labels = tmp_path / "classes.txt"
    labels.write_text("cat\ndog\n")
    (tmp_path / "labels.de.txt").write_text("Katze\n")
    with pytest.raises(ModelError, match=r"labels.de.txt has 1 lines but .*classes.txt has 2 classes"):
        load_display_names(labels, ["cat", "dog"], "de")


def test_aliases_beside_the_labels(tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nfish\n")
    assert load_aliases(labels, 3) == [[], [], []], "no aliases.txt: no other names"
    (tmp_path / "aliases.txt").write_text("kitty, puss\n\n")
    assert load_aliases(labels, 3) == [["kitty", "puss"], [], []], "short files and blank lines: none"
    (tmp_path / "aliases.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(ModelError, match=r"aliases.txt has 4 lines but the model has 3 classes"):
        load_aliases(labels, 3)
