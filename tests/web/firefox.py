"""A headless Firefox (Debian's ``firefox-esr``) driven over its built-in Marionette protocol.

Nothing is downloaded: no geckodriver, no Selenium. Firefox is started with ``--marionette`` on a throwaway
profile whose ``user.js`` switches off everything that would reach outside (updates, telemetry, safe browsing,
captive-portal and connectivity checks) and lets WebRTC use loopback candidates. Without ``firefox-esr`` or
the ``marionette-driver`` package the tests skip, or fail when ``STREAMER_REQUIRE_ALL=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.web.browser import ARTIFACTS, unavailable

FIREFOX = os.environ.get("STREAMER_FIREFOX", "firefox-esr")

# Everything that could make Firefox connect anywhere is off; WebRTC may use loopback host candidates.
PREFS: dict[str, bool | int | str] = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.manage-offline-status": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "services.settings.server": "",
    "browser.search.update": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.ping-centre.telemetry": False,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.default_address_only": False,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.navigator.permission.disabled": True,
    # Firefox offers only the default route's address as an ICE candidate to a page that may not use the
    # camera or microphone; the namespace has no default route, so without these ICE finds no candidate at all.
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _user_js(prefs: dict[str, bool | int | str]) -> str:
    def value(v: bool | int | str) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v) if isinstance(v, int) else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return "".join(f'user_pref("{name}", {value(v)});\n' for name, v in prefs.items())


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate Firefox's process group, then kill it if it has not gone within 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@contextmanager
def firefox(timeout_s: float = 60) -> Iterator[Any]:
    """A ``Marionette`` client with a session on a fresh headless Firefox, which is ended on exit."""
    try:
        with warnings.catch_warnings():  # mozinfo and mozrunner use deprecated modules
            warnings.simplefilter("ignore", DeprecationWarning)
            from marionette_driver.marionette import Marionette
    except ImportError:
        unavailable("the Firefox test needs the marionette-driver package: pip install 'marionette-driver>=3.7'")
    binary = shutil.which(FIREFOX)
    if binary is None:
        unavailable(f"the Firefox test needs {FIREFOX}: apt-get install firefox-esr")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="streamer-firefox-") as profile:
        (Path(profile) / "user.js").write_text(_user_js({**PREFS, "marionette.port": port}))
        log = (Path(profile) / "firefox.log").open("wb")
        process = subprocess.Popen(
            [binary, "--headless", "--marionette", "--no-remote", "-profile", profile],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1"},
            start_new_session=True,
        )
        client = None
        try:
            client = Marionette(host="127.0.0.1", port=port, startup_timeout=int(timeout_s))
            client.start_session()
            yield client
        except Exception:
            log.flush()
            print((Path(profile) / "firefox.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.delete_session(send_request=False)
            _stop(process)
            log.close()


def poll(client: Any, script: str, timeout_s: float = 20, interval_s: float = 0.1) -> Any:
    """``script``'s first truthy value, polled until ``timeout_s``: a function body that ``return``s, run in the
    page's own window (not Marionette's sandbox)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = client.execute_script(script, sandbox=None)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval_s)


def screenshot(client: Any, name: str) -> Path | None:
    """Save the page as ``artifacts/<name>.png`` at the repository root, when Marionette can take it."""
    try:
        data = client.screenshot(format="binary")
    except Exception as exc:  # a screenshot is a nicety; the test's checks are the rest
        print(f"no Firefox screenshot: {exc}")
        return None
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(data)
    return path
