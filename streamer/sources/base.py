"""What every source shares: states, counters, the decode thread, redaction.

A source decodes on its own thread and hands frames to its
:class:`~streamer.frames.FrameBuffer`; it never blocks on the
consumer unless it is lossless (a file in VIDEO mode). Call order::

    source = PyAVSource("cam1", "rtsp://user:pw@host/stream")
    source.start()             # returns at once; frames flow into source.buffer
    source.stats()             # state and counters, credentials redacted
    source.stop(); source.join()

Subclasses implement :meth:`Source._run`, which loops until ``self.stopping``
is set, calling :meth:`Source._emit` per decoded frame and
:meth:`Source._set_state` as the connection comes and goes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from streamer.frames import Frame, FrameBuffer, Picture

__all__ = ["Source", "SourceState", "SourceStats", "redact", "redact_text", "secrets_in"]

log = logging.getLogger(__name__)


class SourceState(enum.Enum):
    """Where a source is: CONNECTING -> LIVE -> (RECONNECTING -> LIVE)* -> ENDED | FAILED."""

    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True)
class SourceStats:
    """A snapshot of a source: state, counters, and the last error with credentials redacted."""  # url too

    stream_id: str
    url: str
    state: SourceState
    decoded: int
    dropped: int
    reconnects: int
    width: int
    height: int
    last_error: str | None
    skipped: int = 0  # frames an overloaded decoder left undecoded (never in decoded or dropped)

    def to_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream_id,
            "url": self.url,
            "state": self.state.value,
            "decoded": self.decoded,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "reconnects": self.reconnects,
            "width": self.width,
            "height": self.height,
            "last_error": self.last_error,
        }


#: query parameter names (lowercased, ``-`` as ``_``) whose values are secrets: they contain one of these
_SECRET_WORDS = ("pass", "pwd", "token", "auth", "key", "secret", "sig", "credential", "session", "cookie")


def _secret_value(field: str) -> str | None:
    """The value of a query field (``name=value``) whose name looks like a secret's; ``None`` for others."""
    name, sep, value = field.partition("=")
    folded = unquote(name).lower().replace("-", "_")
    return value if sep and value and any(word in folded for word in _SECRET_WORDS) else None


def secrets_in(url: str) -> list[str]:
    """The secret parts of ``url``: its password and the values of query parameters named like secrets."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
    except ValueError:
        return []
    for field in parts.query.split("&"):
        if (value := _secret_value(field)) is not None:
            found += [value, unquote(value)]
    return sorted({f for f in found if f}, key=lambda text: (-len(text), text))  # longest first: no partial


def _without_secrets(url: str) -> str:
    """What is left of a URL too malformed to parse once user-info and query are dropped."""
    scheme, sep, rest = url.partition("://")
    tail = (rest if sep else scheme).split("@", 1)[-1].split("?", 1)[0]
    return f"{scheme}{sep}{tail}?***" if sep else f"{tail}?***"


def redact(url: str) -> str:
    """``url`` with its password and secret-looking query values as ``***``.

    ``rtsp://user:pw@host/cam?channel=1&token=abc`` -> ``rtsp://user:***@host/cam?channel=1&token=***``.
    """
    try:
        parts = urlsplit(url)
        password, host, port = parts.password, parts.hostname or "", parts.port
    except ValueError:  # a malformed port or address: show nothing that could hold a secret
        return url if "@" not in url and "?" not in url else _without_secrets(url)
    if password is not None:
        host = f"[{host}]" if ":" in host else host
        host = f"{host}:{port}" if port is not None else host
        parts = parts._replace(netloc=f"{parts.username}:***@{host}")
    if parts.query:
        fields = [f"{f.partition('=')[0]}=***" if _secret_value(f) else f for f in parts.query.split("&")]
        parts = parts._replace(query="&".join(fields))
    return urlunsplit(parts)


def redact_text(text: str, url: str) -> str:
    """``text`` (an error message, a log line) with every secret of ``url`` replaced by ``***``."""
    text = text.replace(url, redact(url))
    for secret in secrets_in(url):
        text = text.replace(secret, "***")
    return text


class Source(ABC):
    """A stream of frames decoded on a worker thread into :attr:`buffer`."""

    def __init__(self, stream_id: str, url: str, *, live: bool, buffer_size: int = 2) -> None:
        self.stream_id = stream_id
        self.url = url
        self.live = live
        self.buffer: FrameBuffer[Frame] = FrameBuffer(buffer_size, lossless=not live)
        self.stopping = threading.Event()
        self._state = SourceState.CONNECTING
        self._decoded = 0
        self._reconnects = 0
        self._size = (0, 0)
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        #: called on the source's thread with every decoded frame, inferred or not (e.g. to stream video)
        self.on_frame: Callable[[Frame], None] | None = None
        #: whether someone needs every frame now (a viewer of the video): then an overloaded decoder skips none
        self.every_frame_wanted: Callable[[], bool] | None = None

    @property
    def state(self) -> SourceState:
        return self._state

    def stats(self) -> SourceStats:
        """State and counters now; ``dropped`` counts frames the consumer never used."""
        return SourceStats(
            stream_id=self.stream_id,
            url=redact(self.url),
            state=self._state,
            decoded=self._decoded,
            dropped=self.buffer.dropped,
            reconnects=self._reconnects,
            width=self._size[0],
            height=self._size[1],
            last_error=self._last_error,
        )

    def attach(self, buffer: FrameBuffer[Frame]) -> None:
        """Deliver into ``buffer`` instead (before :meth:`start`): the pipeline gives every source one."""
        self.buffer = buffer

    def start(self) -> None:
        """Start decoding on a daemon thread; returns at once."""
        if self._thread is not None:
            raise RuntimeError(f"source {self.stream_id} already started")
        self._thread = threading.Thread(target=self._main, name=f"source-{self.stream_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to finish; it closes the buffer on its way out."""
        self.stopping.set()
        self.buffer.close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; ``True`` if it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a source must never take the process down
            self._fail(f"{type(exc).__name__}: {exc}")
            log.exception("source %s crashed", self.stream_id)
        finally:
            if self._state not in (SourceState.FAILED, SourceState.ENDED):
                self._set_state(SourceState.ENDED)
            self.buffer.close()

    @abstractmethod
    def _run(self) -> None:
        """Decode until ``self.stopping`` is set or the stream ends for good."""

    def _set_state(self, state: SourceState) -> None:
        if state is not self._state:
            log.info("source %s: %s", self.stream_id, state.value)
            self._state = state

    def _error(self, message: str) -> None:
        """Remember ``message`` (credentials redacted) as the last error and log it."""
        self._last_error = self._redacted(message)
        log.warning("source %s: %s", self.stream_id, self._last_error)

    def _fail(self, message: str) -> None:
        self._error(message)
        self._set_state(SourceState.FAILED)

    def _redacted(self, text: str) -> str:
        return redact_text(text, self.url)

    def _emit(self, picture: np.ndarray | Picture, pts_ms: float, decode_ms: float) -> bool:
        """Hand one decoded frame (RGB, or a :class:`Picture` made RGB when first used) to the buffer;
        ``False`` once the consumer is gone."""
        frame = Frame(self.stream_id, self._decoded, pts_ms, picture, time.monotonic(), decode_ms)
        self._size = frame.size
        self._decoded += 1
        if self.on_frame is not None:
            try:
                self.on_frame(frame)
            except Exception:
                log.exception("source %s: the on_frame callback failed", self.stream_id)
        while not self.buffer.put(frame, timeout=0.5):  # only a lossless buffer waits
            if self.stopping.is_set() or self.buffer.closed:
                return False
        return True

    def _retry(self, reason: str, attempt: int, first: float, cap: float) -> bool:
        """Log ``reason`` with the wait, then sleep ``first * 2**(attempt - 1)`` seconds (at most ``cap``);
        ``False`` if stopped meanwhile."""
        delay = min(cap, first * 2 ** max(0, attempt - 1))
        self._last_error = self._redacted(reason)
        log.warning("source %s: %s; retrying in %.1f s (attempt %d)", self.stream_id, self._last_error, delay, attempt)
        self._reconnects += 1
        self._set_state(SourceState.RECONNECTING)
        return not self.stopping.wait(delay)
