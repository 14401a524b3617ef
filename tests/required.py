"""Tests whose system part is missing skip here, and fail under CI (``STREAMER_REQUIRE_ALL=1``)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["unavailable"]


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``; fail it instead when ``STREAMER_REQUIRE_ALL=1``, so CI never skips."""
    if os.environ.get("STREAMER_REQUIRE_ALL") == "1":
        pytest.fail(f"{reason} (STREAMER_REQUIRE_ALL=1)")
    pytest.skip(reason)
