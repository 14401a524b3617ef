"""JSON lines: one :meth:`FrameResult.to_dict` (the wire format) per line."""

from __future__ import annotations

import json
from typing import TextIO

from streamer.results import FrameResult

__all__ = ["JsonlWriter"]


class JsonlWriter:
    """Write results to an open text handle, one JSON object per line; ``flush`` each line if asked."""

    def __init__(self, handle: TextIO, *, flush: bool = False) -> None:
        self.handle = handle
        self.flush = flush

    def write(self, result: FrameResult) -> None:
        self.handle.write(json.dumps(result.to_dict()) + "\n")
        if self.flush:
            self.handle.flush()
