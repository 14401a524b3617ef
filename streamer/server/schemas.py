"""The REST API's request and response bodies (pydantic), as ``/openapi.json`` shows them.

Field names starting with ``_`` (``_base64``, ``_url``, ``_id``, ``_status``)
follow Ximilar's classification API, so its clients work unchanged; they
are aliases of plain attribute names here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamer.config import MAX_STREAM_ID
from streamer.server import wire

__all__ = [
    "ClassifiedRecord",
    "ClassifyOptions",
    "ClassifyRecord",
    "ClassifyRequest",
    "ClassifyResponse",
    "Label",
    "ModelInfoOut",
    "ModelName",
    "NewStream",
    "RecordStatus",
    "Statistics",
    "StreamOptions",
    "StreamStats",
]

#: A stream id: no control characters, no ``/`` (it is a path segment of ``/api/streams/{id}``), no space at
#: either end (:class:`~streamer.config.StreamSpec` checks the rest).
STREAM_ID_PATTERN = r"^[^\s/\x00-\x1f\x7f](?:[^/\x00-\x1f\x7f]*[^\s/\x00-\x1f\x7f])?$"


class _Strict(BaseModel):
    """Unknown fields are an error naming them, not silently ignored (a typo in ``top_k`` is caught)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- classify -----------------------------------------------------------------------------------


class ClassifyRecord(_Strict):
    """One image: ``_base64`` (JPEG, PNG, ...; a ``data:`` URL is fine). ``_url`` is refused per record:
    this server fetches nothing. ``_id`` is echoed in the answer."""

    base64: str | None = Field(default=None, alias="_base64", description="the image file, base64-encoded")
    url: str | None = Field(default=None, alias="_url", description="not supported: the server fetches no URL")
    id: str | None = Field(default=None, alias="_id", max_length=256, description="echoed in the answer's record")


class ClassifyOptions(_Strict):
    """What to answer for every record."""

    top_k: int = Field(default=5, ge=1, le=wire.MAX_TOP_K, description="labels per record, best first")
    detect: bool = Field(default=False, description="also answer the objects found (a server started with a detector)")


class ClassifyRequest(ClassifyOptions):
    """``{"records": [{"_base64": "..."}, ...], "top_k": 5, "detect": false}``."""

    records: list[ClassifyRecord] = Field(min_length=1, max_length=wire.MAX_RECORDS)


class Label(BaseModel):
    """One class with its probability."""

    class_id: int
    name: str
    prob: float


class RecordStatus(BaseModel):
    """A record's own outcome: 200 ``OK``, or 4xx/5xx and the reason."""

    code: int
    text: str


class ClassifiedRecord(BaseModel):
    """The answer for one record, in the request's order."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str | None = Field(default=None, alias="_id")
    best_label: Label | None = None
    labels: list[Label] | None = None
    objects: list[dict[str, Any]] | None = Field(default=None, description="with detect: boxes, classes, confidences")
    status: RecordStatus = Field(alias="_status")


class Statistics(BaseModel):
    processing_time: float = Field(description="seconds, from the request read to the answer")


class ModelName(BaseModel):
    """Which model answered: its task (``classifier``, ``detector``), name and version."""

    task: str
    name: str
    version: str


class ClassifyResponse(BaseModel):
    records: list[ClassifiedRecord]
    statistics: Statistics
    models: list[ModelName]


# --- streams and models -------------------------------------------------------------------------


class StreamOptions(_Strict):
    realtime: bool = Field(default=True, description="a file plays at its own pace (false: as fast as decoded)")
    loop: bool = Field(default=False, description="a file starts over when it ends")
    inference_fps: float | None = Field(
        default=None, gt=0, le=1000, description="at most this many frames inferred a second (null: every one it can)"
    )


class NewStream(_Strict):
    """``{"id": "door", "source": "rtsp://...", "options": {...}}``."""

    id: str = Field(min_length=1, max_length=MAX_STREAM_ID, pattern=STREAM_ID_PATTERN)
    source: str = Field(min_length=1, max_length=4096, description="a URL, a file, a folder of images, a webcam")
    options: StreamOptions = Field(default_factory=lambda: StreamOptions())


class StreamStats(BaseModel):
    """One stream's state and counters; its URL's credentials are redacted."""

    model_config = ConfigDict(extra="allow")

    stream: str
    url: str | None = None
    state: str | None = None
    decoded: int | None = None
    dropped: int | None = None
    reconnects: int | None = None
    inferred: int | None = None
    last_error: str | None = None


class ModelInfoOut(BaseModel):
    """A model running now."""

    model_config = ConfigDict(extra="allow")

    task: str
    name: str
    version: str
    provider: str | None = None
    input_size: tuple[int, int] | None = None
    classes: int | None = None
