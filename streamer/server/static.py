"""The web page's files: where they are, and serving them safely.

The page (``web/`` at the top of the source tree) is package data
``streamer.web``: a wheel or ``pip install .`` installs it inside the
package, and :func:`page_root` finds it there with :mod:`importlib.resources`.
Run from a source checkout (an editable install among them), it is the
checkout's own ``web/``.

:class:`StaticFiles` serves the files under one folder and nothing else:
``/`` is ``index.html``; no directory listing; no ``..``, empty, hidden
(``.name``) or encoded-slash segments; no symbolic link out of the folder;
only the file types of :data:`CONTENT_TYPES` (so no ``.py`` or cache file
is ever served), each with its content type.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from starlette.responses import Response

import streamer
from streamer.errors import ConfigError

__all__ = ["CONTENT_TYPES", "MAX_STATIC_BYTES", "StaticFiles", "page_root"]

log = logging.getLogger(__name__)

PAGE_PACKAGE = "streamer.web"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
}
#: Largest static file served; the web page is a handful of small files.
MAX_STATIC_BYTES = 16 * 1024 * 1024


def page_root() -> Path:
    """The folder holding the page's ``index.html``: the checkout's ``web/``, else the installed package data.

    A :class:`ConfigError` says so if neither has it (a broken install).
    """
    checkout = Path(streamer.__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "web" / "index.html").is_file():
        return checkout / "web"
    try:
        index = importlib.resources.files(PAGE_PACKAGE).joinpath("index.html")
    except ModuleNotFoundError:
        index = None
    if isinstance(index, Path) and index.is_file():
        return index.parent
    raise ConfigError(
        f"the web page's files are missing: neither {checkout / 'web'} nor the package data {PAGE_PACKAGE} "
        "holds index.html; reinstall streamer (pip install .)"
    )


def _not_found() -> Response:
    return Response(b'{"detail":"Not Found"}', 404, media_type="application/json")


class StaticFiles:
    """The files under ``root`` (``None``: :func:`page_root`), answered by :meth:`response`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root if root is not None else page_root()).resolve()

    def response(self, path: str) -> Response:
        """The response to ``GET path`` (percent-decoded, starting with ``/``): the file, or 404.

        Blocking (it reads the file): call it on a worker thread.
        """
        if not path.startswith("/") or path.startswith("//") or "\x00" in path or "\\" in path:
            return _not_found()
        relative = path.lstrip("/") or "index.html"
        parts = relative.split("/")
        if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return _not_found()  # no traversal, no empty segments, no hidden files
        content_type = CONTENT_TYPES.get(Path(parts[-1]).suffix.lower())
        if content_type is None:
            return _not_found()
        try:
            target = (self.root / relative).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            return _not_found()
        if not target.is_relative_to(self.root) or not target.is_file():
            return _not_found()
        try:
            size = target.stat().st_size
            if size > MAX_STATIC_BYTES:
                log.warning("static file %s is over %d bytes; not served", target, MAX_STATIC_BYTES)
                return _not_found()
            body = target.read_bytes()
        except OSError as exc:
            log.warning("static file %s cannot be read: %s", target, exc)
            return _not_found()
        return Response(body, 200, headers={"Content-Type": content_type})
