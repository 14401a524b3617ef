"""A throwaway network namespace with only ``lo`` up, for tests that must not be able to reach any network.

``ip netns add`` needs root (CAP_SYS_ADMIN) and iproute2's ``ip`` (``apt-get install iproute2``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

# Set (to the namespace's name) in the environment of a process run inside one of these namespaces.
ENV = "STREAMER_NETNS"


class Unavailable(RuntimeError):
    """No network namespace can be made here (no ``ip``, or not permitted)."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def namespace(prefix: str = "streamer-test") -> Iterator[str]:
    """A fresh namespace's name, with ``lo`` up and no other interface; deleted on exit."""
    if shutil.which("ip") is None:
        raise Unavailable("no `ip` command: apt-get install iproute2")
    name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
    added = _ip("netns", "add", name)
    if added.returncode != 0:
        raise Unavailable(f"`ip netns add {name}` failed (needs root): {added.stderr.strip()}")
    try:
        up = _ip("-n", name, "link", "set", "lo", "up")
        if up.returncode != 0:
            raise Unavailable(f"`ip -n {name} link set lo up` failed: {up.stderr.strip()}")
        yield name
    finally:
        _ip("netns", "del", name)


def exec_args(name: str, argv: list[str]) -> list[str]:
    """The command line that runs ``argv`` inside namespace ``name``."""
    return ["ip", "netns", "exec", name, *argv]


def assert_isolated() -> None:
    """Fail unless this process sees ``lo`` as its only interface and cannot route anywhere off the host."""
    names = [name for _, name in socket.if_nameindex()]
    assert names == ["lo"], f"interfaces in the test's network namespace: {names}"
    for family, address in ((socket.AF_INET, ("192.0.2.1", 9)), (socket.AF_INET6, ("2001:db8::1", 9))):
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect(address)  # a UDP connect sends nothing; it only asks for a route
            except OSError:
                continue
            raise AssertionError(f"{address[0]} is routable from inside the network namespace")
