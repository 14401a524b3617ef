"""Labelled image datasets: which image files there are and what each one shows.

Two layouts, picked by what ``path`` is::

    DATASET/                      DATASET/labels.csv
      tabby/                        filename,label
        001.jpg                     images/001.jpg,tabby
        more/002.png                images/002.png,espresso
      espresso/
        003.jpg

- a **folder** with one sub-folder per class: the sub-folder's name is the
  label; every image file inside it, at any depth, is one sample. Image files
  are recognised by extension (:data:`IMAGE_EXTENSIONS`, any case); other
  files, hidden files and folders, and files loose in ``DATASET`` itself are
  ignored. A class sub-folder without images is skipped with a warning.
- a **CSV file** with a header row naming a ``filename`` and a ``label``
  column (in any order; other columns are ignored), as Datature exports.
  Filenames are relative to the CSV's folder.

Call order: ``samples = load_dataset(path)``, then hand the samples to
:func:`streamer.evaluation.evaluate`. Only file names are read here, never the
images themselves.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import NamedTuple

from streamer.errors import ConfigError, InputNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "Sample", "load_csv", "load_dataset", "load_folder"]

log = logging.getLogger(__name__)

#: File extensions (lower case) taken as images in the folder layout.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

_LAYOUTS = (
    "a folder with one sub-folder per class (the sub-folder's name is the label, image files inside it), "
    "or a CSV file with a header row 'filename,label' (filenames relative to the CSV's folder)"
)
_MAX_LISTED = 10


class Sample(NamedTuple):
    """One labelled image: the file and the dataset's label for it."""

    path: Path
    label: str


def load_dataset(path: Path) -> list[Sample]:
    """The samples of the dataset at ``path``: a class-folder tree or a ``.csv`` file (see the module).

    Raises :class:`InputNotFoundError` when ``path`` or an image the CSV names
    does not exist, :class:`ConfigError` when the layout is wrong or there are
    no samples at all.
    """
    if not path.exists():
        raise InputNotFoundError(f"dataset {path} does not exist; give {_LAYOUTS}")
    if path.is_dir():
        return load_folder(path)
    if path.suffix.lower() == ".csv":
        return load_csv(path)
    raise ConfigError(f"dataset {path} is neither a folder nor a .csv file; give {_LAYOUTS}")


def _hidden(name: str) -> bool:
    return name.startswith(".")


def load_folder(root: Path) -> list[Sample]:
    """Samples of a folder with one sub-folder per class, sorted by class, then by path inside it."""
    if not root.is_dir():
        raise InputNotFoundError(f"dataset folder {root} does not exist or is not a folder; give {_LAYOUTS}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p.name))
    if not classes:
        found = sorted(p.name for p in root.iterdir() if not _hidden(p.name))
        csvs = [name for name in found if name.lower().endswith(".csv")]
        hint = f"; to use the CSV, give its path: {root / csvs[0]}" if csvs else ""
        what = f"only files ({', '.join(found[:5])}{', ...' if len(found) > 5 else ''})" if found else "nothing"
        raise ConfigError(
            f"dataset folder {root} has no class sub-folders, it holds {what}; expected one sub-folder per class "
            f"named after the label, with the images inside (e.g. {root / 'tabby' / '001.jpg'}){hint}"
        )
    samples: list[Sample] = []
    for folder in classes:
        images = sorted(
            p
            for p in folder.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS
            and p.is_file()
            and not any(_hidden(part) for part in p.relative_to(folder).parts)
        )
        if not images:
            log.warning("class folder %s has no image files (%s); skipped", folder, ", ".join(sorted(IMAGE_EXTENSIONS)))
            continue
        samples += [Sample(p, folder.name) for p in images]
    if not samples:
        raise ConfigError(
            f"dataset folder {root} has class sub-folders ({', '.join(p.name for p in classes[:5])}) but no image "
            f"files in them; put {', '.join(sorted(IMAGE_EXTENSIONS))} files inside each class folder"
        )
    return samples


def _column(header: list[str], name: str, path: Path) -> int:
    keys = [key.strip().lower() for key in header]
    if keys.count(name) > 1:
        raise ConfigError(f"CSV {path} has two '{name}' columns in its header row {header}; keep one")
    if name not in keys:
        raise ConfigError(
            f"CSV {path} has no '{name}' column: its header row (line 1) is {header}; "
            "the first row must name the columns, with 'filename' and 'label' among them"
        )
    return keys.index(name)


def load_csv(path: Path) -> list[Sample]:
    """Samples of a CSV file with ``filename`` and ``label`` columns, in file order; blank lines are skipped.

    Every bad row is listed in one error, by its line in the file (the header is line 1):
    an empty filename or label, or too few columns, is a :class:`ConfigError`;
    rows whose image files are missing, and nothing else wrong, an
    :class:`InputNotFoundError`.
    """
    if not path.is_file():
        raise InputNotFoundError(f"dataset CSV {path} does not exist or is not a file; give {_LAYOUTS}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"CSV {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8"
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = [(reader.line_num, row) for row in reader]  # line_num: the file line each row ends on
    if not rows or not any(cell.strip() for cell in rows[0][1]):
        raise ConfigError(f"CSV {path} is empty; expected a header row 'filename,label', then one row per image")
    header = rows[0][1]
    file_column, label_column = _column(header, "filename", path), _column(header, "label", path)
    folder = path.parent
    samples: list[Sample] = []
    problems: list[str] = []
    missing = 0
    for line, row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(file_column, label_column):
            problems.append(f"row {line}: {len(row)} columns, the header has {len(header)}")
            continue
        filename, label = row[file_column].strip(), row[label_column].strip()
        if not filename:
            problems.append(f"row {line}: empty filename")
        elif not label:
            problems.append(f"row {line}: empty label for {filename}")
        elif not (folder / filename).is_file():
            problems.append(f"row {line}: image file {folder / filename} does not exist")
            missing += 1
        else:
            samples.append(Sample(folder / filename, label))
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED]) + (
            f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        )
        message = (
            f"CSV {path} has {len(problems)} bad row{'s' if len(problems) > 1 else ''}: {listed}. "
            "Each row needs a filename (relative to the CSV's folder) of an existing image and a non-empty label"
        )
        raise (InputNotFoundError if missing == len(problems) else ConfigError)(message)
    if not samples:
        raise ConfigError(f"CSV {path} has a header row but no samples; add one 'filename,label' row per image")
    return samples
