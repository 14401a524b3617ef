"""Where frames come from: image files, video files and network streams (PyAV), webcams (OpenCV).

:func:`open_source` picks the reader for a user's source string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from streamer.sources.base import Source, SourceState, SourceStats, redact
from streamer.sources.opencv import OpenCVSource
from streamer.sources.pyav import PyAVSource, is_live_url

__all__ = [
    "OpenCVSource",
    "PyAVSource",
    "Source",
    "SourceState",
    "SourceStats",
    "default_stream_id",
    "open_source",
    "open_sources",
    "redact",
]

_CAMERA = re.compile(r"^(\d+|/dev/video\d+)$")


def default_stream_id(spec: str) -> str:
    """A readable id without credentials: a file's name, a URL's host and path, ``camera0``."""
    if _CAMERA.match(spec):
        return "camera" + spec.removeprefix("/dev/video")
    if is_live_url(spec):
        parts = urlsplit(spec)
        return f"{parts.hostname or ''}{parts.path}".rstrip("/") or parts.scheme
    return Path(spec).name


def open_source(
    spec: str,
    *,
    stream_id: str | None = None,
    realtime: bool = False,
    loop: bool = False,
    decoder: str = "auto",
    **options: object,
) -> Source:
    """The source for ``spec``: a camera index or ``/dev/videoN`` (OpenCV), else a file or URL (PyAV).

    ``realtime`` plays a file at its native speed, ``loop`` repeats it; both
    make a file act as a live camera. ``decoder`` (``auto``, ``nvdec``,
    ``software``) is PyAV's; ``options`` go to the reader.
    """
    stream_id = stream_id or default_stream_id(spec)
    if _CAMERA.match(spec):
        device: int | str = int(spec) if spec.isdigit() else spec
        return OpenCVSource(stream_id, device, **options)  # type: ignore[arg-type]
    return PyAVSource(stream_id, spec, realtime=realtime, loop=loop, decoder=decoder, **options)  # type: ignore[arg-type]


def open_sources(specs: Sequence[str], *, realtime: bool = False, loop: bool = False) -> list[Source]:
    """A source for each of ``specs``, with unique stream ids: a repeated id gets ``#2``, ``#3``..."""
    sources: list[Source] = []
    taken: set[str] = set()
    for spec in specs:
        stream_id = base = default_stream_id(spec)
        count = 1
        while stream_id in taken:
            count += 1
            stream_id = f"{base}#{count}"
        taken.add(stream_id)
        sources.append(open_source(spec, stream_id=stream_id, realtime=realtime, loop=loop))
    return sources
