"""Dataset labels matched to a model's class ids. Pure: lists in, a dict out.

A label matches, in this order (the first step that finds anything decides):

1. exactly a class name or display name;
2. a class id, when the label is a whole number below the number of classes;
3. a name or display name once both are normalised: surrounding whitespace
   stripped, ``_`` and ``-`` read as spaces, runs of spaces made one, case
   ignored (``Tiger_Cat`` is ``tiger cat``).

A step that finds two classes is an ambiguous match, an error. Labels that
match nothing are listed together in one :class:`ConfigError`, each with up to
three close names, so one run shows every folder or label to rename.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from streamer.errors import ConfigError

__all__ = ["map_labels", "normalize_label"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_label(label: str) -> str:
    """``label`` for loose matching: ``_``/``-``/whitespace runs become one space, stripped, case-folded."""
    return _SEPARATORS.sub(" ", label).strip().casefold()


def _matches(
    label: str, names: Sequence[str], display_names: Sequence[str], aliases: Sequence[Sequence[str]]
) -> set[int]:
    exact = {i for i, (n, d) in enumerate(zip(names, display_names, strict=True)) if label in (n, d)}
    if exact:
        return exact
    number = label.strip()
    if number.isascii() and number.isdigit() and int(number) < len(names):
        return {int(number)}
    key = normalize_label(label)
    loose = {
        i
        for i, (n, d) in enumerate(zip(names, display_names, strict=True))
        if key in (normalize_label(n), normalize_label(d))
    }
    return loose or {i for i, other in enumerate(aliases) if key in map(normalize_label, other)}


def _suggest(label: str, names: Sequence[str]) -> list[str]:
    keys: dict[str, str] = {}
    for name in names:
        keys.setdefault(normalize_label(name), name)
    return [keys[key] for key in difflib.get_close_matches(normalize_label(label), list(keys), n=3)]


def map_labels(
    labels: Sequence[str],
    names: Sequence[str],
    display_names: Sequence[str] | None = None,
    *,
    aliases: Sequence[Sequence[str]] | None = None,
    where: str = "the model's class names",
) -> dict[str, int]:
    """Each of ``labels`` mapped to the id of the class it names in ``names`` / ``display_names``.

    A label matches a name or display name exactly, then a class id, then a
    name loosely (case, ``_``, ``-`` ignored), then one of the class's
    ``aliases`` (other names, e.g. ImageNet's WordNet synonyms) loosely.
    ``display_names`` ``None`` means the names themselves. ``where`` tells the
    user, in errors, where the model's class names can be read. Raises one
    :class:`ConfigError` for every unknown label (with suggestions), ambiguous
    label (with the classes it could be), and pair of labels naming one class.
    """
    shown = list(names) if display_names is None else list(display_names)
    if len(shown) != len(names):
        raise ValueError(f"display_names has {len(shown)} entries but names has {len(names)}; they must match")
    mapping: dict[str, int] = {}
    unknown: list[str] = []
    ambiguous: list[str] = []
    for label in dict.fromkeys(labels):
        found = _matches(label, names, shown, aliases or ())
        if not found:
            close = _suggest(label, names)
            hint = f"did you mean {', '.join(map(repr, close))}?" if close else "no close class name"
            unknown.append(f"  {label!r}: {hint}")
        elif len(found) > 1:
            classes = ", ".join(f"{i} {names[i]!r}" for i in sorted(found))
            ambiguous.append(f"  {label!r} matches classes {classes}")
        else:
            mapping[label] = found.pop()
    problems: list[str] = []
    if unknown:
        problems.append(
            f"{len(unknown)} dataset label{'s' if len(unknown) > 1 else ''} the model does not know; rename each "
            f"class folder (or CSV label) to one of {where}, or to a class id:\n" + "\n".join(unknown)
        )
    if ambiguous:
        problems.append(
            f"{len(ambiguous)} ambiguous dataset label{'s' if len(ambiguous) > 1 else ''}; rename each class "
            "folder (or CSV label) to the exact class name, or to the class id:\n" + "\n".join(ambiguous)
        )
    by_class: dict[int, list[str]] = {}
    for label, class_id in mapping.items():
        by_class.setdefault(class_id, []).append(label)
    for class_id, same in sorted(by_class.items()):
        if len(same) > 1:
            problems.append(
                f"dataset labels {', '.join(map(repr, same))} all name class {class_id} {names[class_id]!r}; "
                "merge them into one class folder (or one CSV label)"
            )
    if problems:
        raise ConfigError("\n".join(problems))
    return mapping
