"""Class-name files: one name per line, ``labels.<locale>.txt`` beside them, and ``aliases.txt``.

``aliases.txt`` (optional) gives each class's other names, comma-separated,
a line per class in class-id order (an empty line: none); ``streamer eval``
matches dataset labels against them too (``tabby cat`` finds ``tabby``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from streamer.errors import ConfigError, InputNotFoundError, ModelError

__all__ = ["aliases_path", "load_aliases", "load_display_names", "load_labels", "locale_path"]

log = logging.getLogger(__name__)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(f"class-names file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"class-names file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def load_labels(path: Path) -> list[str]:
    """Class names, in class-id order. Empty lines inside the file are errors."""
    names = _read_lines(path)
    if not names:
        raise ModelError(f"class-names file {path} is empty; write one class name per line")
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise ModelError(f"class-names file {path} has empty lines ({', '.join(map(str, blank[:5]))})")
    return names


def locale_path(labels: Path, locale: str) -> Path:
    """Where display names for ``locale`` live: ``labels.<locale>.txt`` beside ``labels``."""
    return labels.with_name(f"labels.{locale}.txt")


def load_display_names(labels: Path | None, names: list[str], locale: str | None) -> list[str]:
    """Display names for ``locale``, one per class; a blank line falls back to the name.

    ``locale`` ``None`` gives the names themselves, and so does any locale for a
    model that ships no display names at all (no ``labels.*.txt`` beside
    ``labels``). A locale missing where others exist is a :class:`ConfigError`
    listing the ones there are.
    """
    if locale is None or labels is None:
        return list(names)
    path = locale_path(labels, locale)
    if not path.exists():
        available = sorted(p.name[len("labels.") : -len(".txt")] for p in labels.parent.glob("labels.*.txt"))
        if not available:
            log.info("no display names beside %s; locale %r shows class names", labels, locale)
            return list(names)
        raise ConfigError(
            f"display_names_locale = {locale!r}: {path} does not exist; available locales: {', '.join(available)}"
        )
    display = _read_lines(path)
    if len(display) != len(names):
        raise ModelError(f"{path} has {len(display)} lines but {labels} has {len(names)} classes; they must match")
    return [shown or name for shown, name in zip(display, names, strict=True)]


def aliases_path(labels: Path) -> Path:
    """Where other names of the classes in ``labels`` live: ``aliases.txt`` beside it."""
    return labels.with_name("aliases.txt")


def load_aliases(labels: Path | None, count: int) -> list[list[str]]:
    """Each of ``count`` classes' other names from ``aliases.txt`` beside ``labels``; none if it is absent."""
    path = None if labels is None else aliases_path(labels)
    if path is None or not path.is_file():
        return [[] for _ in range(count)]
    lines = _read_lines(path)
    if len(lines) > count:
        raise ModelError(f"{path} has {len(lines)} lines but the model has {count} classes; write one line per class")
    lines += [""] * (count - len(lines))
    return [[name.strip() for name in line.split(",") if name.strip()] for line in lines]
