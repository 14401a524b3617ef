"""A built wheel carries the page: installed into a fresh virtualenv, ``streamer serve`` serves it from there."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from tests.process import REPO, child_env, spawn

PAGE = ("index.html", "app.js", "style.css")


def _get(url: str, path: str) -> tuple[int, str, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def test_the_wheel_installs_and_serves_the_page(tmp_path: Path, cache_dir: Path) -> None:
    # The build writes build/ and *.egg-info next to its sources: build a copy, never the working tree.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("streamer", "web"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(dist), str(source)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("streamer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"streamer/web/{name}" for name in PAGE} <= names, sorted(n for n in names if "web" in n)
    assert "streamer/server/static.py" in names and not any(n.startswith("web/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # --ignore-installed: into the venv, whatever the system holds; the system's packages give the dependencies.
    install = ["install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)]
    subprocess.run([*pip, "--python", str(python), *install], check=True, timeout=300)

    where = subprocess.run(
        [str(python), "-c", "import streamer.server.static as s; print(s.__file__); print(s.page_root())"],
        cwd=tmp_path,  # not the checkout, whose streamer/ would be imported instead
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    site = venv / "lib"
    assert Path(where[0]).is_relative_to(site) and Path(where[1]).is_relative_to(site), where
    assert Path(where[1]).name == "web" and Path(where[1]).parent.name == "streamer", where

    command = [str(python), "-m", "streamer", "serve", "--port", "0", "--device", "cpu"]
    with spawn(command, env=child_env(cache_dir), cwd=tmp_path) as child:
        url = child.wait_for_stdout(r"serving on (http://\S+/)", timeout=120)[1]
        for name in PAGE:
            status, content_type, body = _get(url, f"/{name}")
            assert status == 200 and body == (REPO / "web" / name).read_bytes(), name
        status, content_type, body = _get(url, "/")
        assert (status, content_type) == (200, "text/html; charset=utf-8") and b"<title>streamer</title>" in body
