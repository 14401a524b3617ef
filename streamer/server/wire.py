"""The WebSocket message codec: typed messages to and from JSON text. Pure: no I/O.

Every message is one JSON object with a ``type``. From the browser (or any
client)::

    {"type": "ping"}
    {"type": "subscribe", "streams": ["cam1", ...] | null}       null: every stream
    {"type": "classify", "id": "req-1", "top_k": 5,
     "records": [{"image": "<base64 JPEG/PNG>"}, ...]}           at most MAX_RECORDS
    {"type": "offer", "stream": "cam1" | null, "sdp": "..."}      WebRTC; null: the browser's camera

From the server::

    {"type": "hello", "version": 1, "streams": [...]}
    {"type": "result", "result": {...FrameResult.to_dict()...}}
    {"type": "event", "event": {...Event.to_dict()...}}           an object's event: new, update, end
    {"type": "streams", "streams": [...]}
    {"type": "classified", "id": "req-1", "records": [...]}
    {"type": "answer", "stream": ..., "sdp": "..."}
    {"type": "video_start", "stream": ..., "pts_ms": ...}      the first WebRTC frame's pts_ms
    {"type": "pong"}
    {"type": "error", "code": "...", "message": "...", "id": ...}

:func:`decode` turns client text into a message or raises :class:`WireError`
whose ``code`` and message say what was wrong; the server answers with an
``error`` message and keeps the connection. A classify record whose image is
not valid base64 (or too large) is kept with its own ``error``, so the other
records are still answered.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from streamer.errors import ImageError, StreamerError

__all__ = [
    "MAX_IMAGE_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_RECORDS",
    "Classify",
    "ClientMessage",
    "Offer",
    "Ping",
    "Record",
    "Subscribe",
    "WireError",
    "base64_image",
    "decode",
    "encode",
    "error",
]

VERSION = 1
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_RECORDS = 10
MAX_TOP_K = 100


class WireError(StreamerError, ValueError):
    """A client message that cannot be accepted; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class Ping:
    """Are you there? Answered with ``pong``."""


@dataclass(frozen=True)
class Subscribe:
    """Send results of these streams only; ``None``: every stream."""

    streams: tuple[str, ...] | None


@dataclass(frozen=True)
class Record:
    """One image to classify: its bytes, or why they could not be read."""

    image: bytes | None
    error: str | None = None


@dataclass(frozen=True)
class Classify:
    """Classify up to :data:`MAX_RECORDS` images; answered with ``classified`` under the same ``id``."""

    id: str
    records: tuple[Record, ...]
    top_k: int = 5


@dataclass(frozen=True)
class Offer:
    """A WebRTC offer: to watch ``stream``, or (``None``) to send the browser's camera."""

    stream: str | None
    sdp: str


ClientMessage = Ping | Subscribe | Classify | Offer


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    if name not in data:
        if required:
            raise WireError("bad_message", f"{data.get('type')!r} message needs a {name!r} field")
        return None
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise WireError("bad_message", f"field {name!r} must be {expected}, got {type(value).__name__}")
    return value


def base64_image(text: str, name: str, field: str = "the image") -> bytes:
    """The bytes of base64 ``text`` (a ``data:`` URL as browsers make them, too), at most
    :data:`MAX_IMAGE_BYTES`; else an :class:`ImageError` naming ``name`` and ``field``."""
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    if len(text) * 3 // 4 > MAX_IMAGE_BYTES:
        raise ImageError(f"{name}: the image is over {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"{name}: {field} is not valid base64") from None


def _record(raw: object, index: int) -> Record:
    if not isinstance(raw, dict) or not isinstance(raw.get("image"), str):
        return Record(None, f"record {index} needs an 'image' field holding base64 text")
    try:
        return Record(base64_image(raw["image"], f"record {index}", "'image'"))
    except ImageError as exc:
        return Record(None, str(exc))


def decode(data: str | bytes) -> ClientMessage:
    """Parse one client message; a :class:`WireError` says what is wrong with it."""
    if isinstance(data, bytes):
        raise WireError("binary", "binary messages are not accepted; send JSON text")
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError("too_large", f"message of {len(data)} characters is over {MAX_MESSAGE_BYTES}")
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, or a number over 4,300 digits
        raise WireError("bad_json", f"not JSON: {exc}"[:200]) from None
    if not isinstance(parsed, dict):
        raise WireError("bad_message", f"a message must be a JSON object, got {type(parsed).__name__}")
    kind = parsed.get("type")
    if kind == "ping":
        return Ping()
    if kind == "subscribe":
        streams = _field(parsed, "streams", (list, type(None)), required=False)
        if streams is not None and not all(isinstance(s, str) for s in streams):
            raise WireError("bad_message", "'streams' must be a list of stream ids, or null for all")
        return Subscribe(None if streams is None else tuple(streams))
    if kind == "classify":
        request_id = _field(parsed, "id", str)
        try:
            records = _field(parsed, "records", list)
            top_k = _field(parsed, "top_k", int, required=False)
        except WireError as exc:
            raise WireError(exc.code, str(exc), request_id) from None
        if not 1 <= len(records) <= MAX_RECORDS:
            raise WireError(
                "bad_message", f"'records' must hold 1 to {MAX_RECORDS} images, got {len(records)}", request_id
            )
        if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
            raise WireError("bad_message", f"'top_k' must be 1..{MAX_TOP_K}, got {top_k}", request_id)
        return Classify(request_id, tuple(_record(r, i) for i, r in enumerate(records)), top_k or 5)
    if kind == "offer":
        stream = _field(parsed, "stream", (str, type(None)), required=False)
        return Offer(stream, _field(parsed, "sdp", str))
    known = "ping, subscribe, classify, offer"
    raise WireError("unknown_type", f"unknown message type {kind!r}; expected one of: {known}")


def encode(kind: str, **fields: Any) -> str:
    """One server message as JSON text: ``encode("pong")``, ``encode("result", result=...)``."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"), allow_nan=False)


def error(exc: WireError) -> str:
    """The ``error`` message answering a rejected client message."""
    fields: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    if exc.request_id is not None:
        fields["id"] = exc.request_id
    return encode("error", **fields)
