"""This process's memory as Linux reports it, for tests and benchmarks that check it does not grow."""

from __future__ import annotations

from pathlib import Path

__all__ = ["reset_peak", "rss_mib"]


def rss_mib(field: str = "VmRSS") -> float:
    """Resident memory (``VmRSS``), or the peak since :func:`reset_peak` (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Start the peak (``VmHWM``) again from the current resident memory."""
    Path("/proc/self/clear_refs").write_text("5")
