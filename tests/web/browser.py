"""Helpers for the page's tests: a headless Chromium (Debian's) through Playwright, and a server on a thread.

Playwright's browsers are never downloaded: the tests use ``/usr/bin/chromium`` (``apt-get install
chromium``). Without it, or without the ``playwright`` package, the tests skip, or fail when
``STREAMER_REQUIRE_ALL=1``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streamer.server.app import StreamerServer
from tests.required import unavailable

CHROMIUM = os.environ.get("STREAMER_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]


@contextmanager
def chromium(extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """A headless Chromium ``Browser``, closed on exit; skips (or fails) when it cannot run here."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the page tests need the playwright package: pip install 'playwright>=1.40'")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        unavailable(f"the page tests need Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def stoppable(make: Callable[[], StreamerServer]) -> Iterator[tuple[StreamerServer, Callable[[], None]]]:
    """``make()``'s server, started on an event loop of its own thread (Playwright's sync API needs this one),
    and a function that stops it before the block ends (it is stopped at the end otherwise)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="server", daemon=True)
    thread.start()

    async def start() -> StreamerServer:
        server = make()
        await server.start()
        return server

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)

    try:
        yield server, stop
    finally:
        stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def running(make: Callable[[], StreamerServer]) -> Iterator[StreamerServer]:
    """``make()``'s server, running for the block."""
    with stoppable(make) as (server, _):
        yield server


def screenshot(page: Any, name: str) -> Path:
    """Save the page as ``artifacts/<name>.png`` at the repository root."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
