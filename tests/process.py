"""Child processes for tests: the real ``streamer`` command, always killed, its output kept in files.

Call order::

    with spawn_streamer("serve", str(clip), "--loop", "--port", "0", env=child_env(cache_dir)) as child:
        child.url                       # "http://127.0.0.1:PORT/", read from the first stdout line
        child.send_signal(signal.SIGTERM)
        code = child.wait(30)
    child.stderr()                      # still readable after the block

The child's stdout and stderr go to files, never pipes, so a chatty child
never blocks on a full pipe; :meth:`Child.wait_for_stdout` polls the file
with a deadline. The child starts with SIGINT at its default action even
when the test run itself ignores it (``nohup ... &`` makes background jobs
ignore SIGINT, and ignored signals are inherited), so ``send_signal(SIGINT)``
acts like Ctrl-C. Whatever happens in the block, the child is killed and
waited for on the way out: a failing test never leaves a process behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from streamer.config import DEFAULTS

__all__ = ["REPO", "Child", "child_env", "spawn", "spawn_streamer"]

REPO = Path(__file__).resolve().parents[1]

SERVING = re.compile(r"^streamer: serving on (http://\S+/)$", re.MULTILINE)


def child_env(cache_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without ``STREAMER_*`` settings, plus ``STREAMER_CACHE_DIR`` and ``extra``;
    events go to the test session's storage folder, never the developer's ``~/.local/share/streamer``.

    The tests' autouse fixture cleans ``os.environ`` per test; module- and
    session-scoped fixtures run outside it and build the child's environment here.
    ``STREAMER_REQUIRE_ALL`` (a test-run switch, not a setting) is kept.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_") or k == "STREAMER_REQUIRE_ALL"}
    if cache_dir is not None:
        env["STREAMER_CACHE_DIR"] = str(cache_dir)
    env["PYTHONUNBUFFERED"] = "1"  # stdout lines reach the file as they are printed
    env["STREAMER_STORAGE_DIR"] = str(DEFAULTS["storage.dir"])  # tests/conftest.py points it at a temporary folder
    env.update(extra)
    return env


def _default_sigint() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """A running child process whose stdout and stderr are files; made by :func:`spawn`."""

    def __init__(self, popen: subprocess.Popen[bytes], args: Sequence[str], stdout: Path, stderr: Path) -> None:
        self.popen = popen
        self.args = list(args)
        self._stdout_path, self._stderr_path = stdout, stderr
        self._final: tuple[str, str] | None = None  # (stdout, stderr) once the files are gone
        self.url = ""  # for ``serve``: the URL it printed (set by spawn_streamer)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        """Everything written to stdout so far."""
        return self._final[0] if self._final is not None else _read(self._stdout_path)

    def stderr(self) -> str:
        """Everything written to stderr so far."""
        return self._final[1] if self._final is not None else _read(self._stderr_path)

    def stderr_size(self) -> int:
        """Bytes written to stderr so far (cheap: no read)."""
        if self._final is not None:
            return len(self._final[1].encode())
        try:
            return self._stderr_path.stat().st_size
        except OSError:
            return 0

    def stderr_since(self, offset: int) -> str:
        """What was written to stderr after its first ``offset`` bytes."""
        if self._final is not None:
            return self._final[1].encode()[offset:].decode(errors="replace")
        try:
            with self._stderr_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_for_stdout(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        """Poll stdout until ``pattern`` matches; fail (with stderr) if the child exits or the time runs out."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.stdout())
            if match is not None:
                return match
            if not self.alive():
                raise AssertionError(
                    f"{self.describe()} exited with {self.returncode} before printing {regex.pattern!r}\n"
                    f"stdout: {self.stdout()[-2000:]}\nstderr: {self.stderr()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.describe()} printed no {regex.pattern!r} within {timeout} s\n"
                    f"stdout: {self.stdout()[-2000:]}\nstderr: {self.stderr()[-4000:]}"
                )
            time.sleep(0.05)

    def wait_for_stderr(self, pattern: str | re.Pattern[str], *, count: int = 1, timeout: float = 60.0) -> str:
        """Poll stderr until ``pattern`` has matched ``count`` times; returns stderr then."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr()
            if len(regex.findall(text)) >= count:
                return text
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.describe()}: {regex.pattern!r} not seen {count} times in stderr "
                    f"(exit code {self.returncode})\nstderr: {text[-4000:]}"
                )
            time.sleep(0.05)

    def send_signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the child to exit; its exit code (``-N`` if killed by signal ``N``)."""
        return self.popen.wait(timeout)

    def describe(self) -> str:
        return "`" + " ".join(self.args[2:] if self.args[1:2] == ["-m"] else self.args) + "`"

    def _finish(self) -> None:
        """Kill the child if it still runs, wait for it, and keep its output in memory."""
        try:
            if self.popen.poll() is None:
                self.popen.kill()
        finally:
            try:
                self.popen.wait(30)
            finally:
                self._final = (_read(self._stdout_path), _read(self._stderr_path))


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


@contextmanager
def spawn(args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | str = REPO) -> Iterator[Child]:
    """Start ``args`` (stdin closed, stdout/stderr to temporary files); kill and wait for it on the way out."""
    folder = Path(tempfile.mkdtemp(prefix="child-"))
    out, err = folder / "stdout", folder / "stderr"
    try:
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                preexec_fn=_default_sigint,  # only signal.signal: safe between fork and exec
            )
        child = Child(popen, args, out, err)
        try:
            yield child
        finally:
            child._finish()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def spawn_streamer(
    *args: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str = REPO,
    serving_timeout: float = 120.0,
) -> Iterator[Child]:
    """Run ``python -m streamer ARGS``; for ``serve``, wait until it prints its URL and set ``child.url``.

    A ``serve`` that exits or stays silent for ``serving_timeout`` seconds
    fails the test with its stderr (e.g. a configuration error, exit code 2).
    """
    with spawn([sys.executable, "-m", "streamer", *args], env=env, cwd=cwd) as child:
        if args and args[0] == "serve":
            child.url = child.wait_for_stdout(SERVING, serving_timeout).group(1)
        yield child
