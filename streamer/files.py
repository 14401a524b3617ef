"""Writing files so that a reader never sees half of one, and never over an input.

::

    check_outputs([out], inputs=[clip], force=args.force)   # before any work: clear errors
    with atomic_path(Path("out.mp4")) as tmp:   # .out.mp4.<random>.part.mp4, beside it
        write_everything_to(tmp)
    # here out.mp4 is complete; had the block raised (or been interrupted), tmp is gone
    # and out.mp4 is as it was
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streamer.errors import ConfigError

__all__ = ["atomic_path", "check_outputs", "describe"]


def describe(path: Path) -> str:
    """What ``path`` is, for messages: ``a directory``, ``a character device``, ``a regular file``..."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return "missing"
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((text for test, text in kinds if test(mode)), "a regular file")


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_outputs(
    outputs: Iterable[Path],
    inputs: Iterable[Path] = (),
    *,
    force: bool = False,
    append: bool = False,
    make_folders: bool = False,
) -> None:
    """Raise :class:`ConfigError` unless every path of ``outputs`` can be written.

    An output may not be an input (nothing a command writes ever replaces
    what it reads), a directory, or exist already (unless ``force`` replaces
    or ``append`` extends it); its folder must exist (or, with
    ``make_folders``, be creatable) and take new files (a file is made there
    and removed, so read-only file systems are caught too). Call it before
    any slow work, so a typo costs nothing.
    """
    outputs, inputs = list(outputs), list(inputs)
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise ConfigError("two outputs have the same name; give each output its own path")
    for path in outputs:
        if any(_same(path, source) for source in inputs):
            raise ConfigError(f"{path} is an input; pick another output name (an output never replaces an input)")
        if path.is_dir():
            raise ConfigError(f"{path} is a directory; give a file name for the output")
        if path.exists() and not (force or append):
            raise ConfigError(f"{path} already exists; use --force to replace it, or pick another name")
        if path.exists() and append and not os.access(path, os.W_OK):
            raise ConfigError(f"cannot append to {path}: it is not writable")
        folder = path.parent
        while make_folders and not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            what = describe(folder)
            raise ConfigError(
                f"cannot write {path}: folder {folder} does not exist; create it first"
                if what == "missing"
                else f"cannot write {path}: {folder} is {what}, not a folder"
            )
        probe = folder / f".{path.name}.{secrets.token_hex(4)}.probe"
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc} (folder {folder})") from None
        with contextlib.suppress(OSError):
            probe.unlink()


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary path keeps ``path``'s suffix (so tools that guess a format
    from the name still do), starts with a dot and does not exist yet: the
    block creates it, with the permissions any new file gets. It is flushed to
    disk before the rename. If the block raises, ``KeyboardInterrupt``
    included, it is removed and ``path`` is untouched. The folder is created
    if needed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # never hide the real error behind a failed cleanup
            tmp.unlink(missing_ok=True)
        raise
