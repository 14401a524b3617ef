"""Writing files so that a reader never sees half of one.

::

    with atomic_path(Path("out.mp4")) as tmp:   # .out.mp4.<random>.part.mp4, beside it
        write_everything_to(tmp)
    # here out.mp4 is complete; had the block raised (or been interrupted), tmp is gone
    # and out.mp4 is as it was
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


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
        tmp.unlink(missing_ok=True)
        raise
