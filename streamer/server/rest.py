"""The REST API under ``/api`` (token-guarded like everything but the page)::

    POST   /api/classify            images in Ximilar's JSON shape, or a multipart upload of image files
    GET    /api/streams             every stream's state and counters (credentials redacted)
    POST   /api/streams             add a stream: {"id", "source", "options": {"realtime", "loop", "inference_fps"}}
    GET    /api/streams/{id}        one stream
    DELETE /api/streams/{id}        stop and remove a stream
    GET    /api/models              the models running now
    POST   /api/models/reload       re-read [classifier]/[detector] and swap the models between two batches
    GET    /api/events              events, newest first: ?stream=&label=&zone=&after=&before=&limit=&offset=
    GET    /api/events/{id}         one event
    GET    /api/events/{id}/snapshot.jpg   its best snapshot (?annotated=1: box and label drawn)
    GET    /api/events/{id}/clip.mp4       its clip (HTTP Range requests, so a browser can seek)
    DELETE /api/events/{id}         delete an event, its snapshot and clip

Bad bodies get 422 naming the field (FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``);
other refusals ``{"detail": "why"}``. ``POST /api/classify`` answers every
record on its own (``_status`` 200 "OK", or 400/500 and the reason): one bad
record never fails the others. ``detect: false`` (the default) labels each
whole image, even on a server that detects; ``detect: true`` answers the
objects too, as the server's stages make them. ``detect: true`` on a server that runs no
detector is a 422 naming ``detect`` (rather than answering records without
the objects asked for). When ``max_pending_classify`` requests already run
or wait, a new one gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from streamer.config import StreamSpec
from streamer.errors import ClusterError, ConfigError, StreamerError, StreamExistsError
from streamer.events.store import EventStore
from streamer.results import FrameResult
from streamer.server import wire
from streamer.server.app import StreamerServer
from streamer.server.classify import Answer, Busy
from streamer.server.peers import CAMERA_PREFIX
from streamer.server.schemas import (
    ClassifiedRecord,
    ClassifyOptions,
    ClassifyRequest,
    ClassifyResponse,
    Label,
    ModelInfoOut,
    ModelName,
    NewStream,
    RecordStatus,
    Statistics,
    StreamStats,
)

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api")

#: Non-file fields a multipart classify request may have besides its files.
_FORM_FIELDS = ("top_k", "detect")


def get_server(request: Request) -> StreamerServer:
    """The server whose app answers ``request``."""
    server: StreamerServer = request.app.state.server
    return server


Server = Annotated[StreamerServer, Depends(get_server)]


def _invalid(field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 naming ``field`` of the body, as FastAPI words its own."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", field), "msg": message, "input": value}])


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` into its ``$defs`` replaced by the definition (the models are not recursive)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_CLASSIFY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_refs(ClassifyRequest.model_json_schema(by_alias=True))},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": f"1 to {wire.MAX_RECORDS} image files, under any field names",
                        },
                        "top_k": {"type": "integer", "default": 5},
                        "detect": {"type": "boolean", "default": False},
                    },
                }
            },
        },
    }
}


# --- classify -----------------------------------------------------------------------------------


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    response_model_exclude_none=True,
    openapi_extra=_CLASSIFY_BODY,
    responses={413: {"description": "body over server.max_body_bytes"}, 503: {"description": "busy"}},
)
async def classify(request: Request, server: Server) -> ClassifyResponse:
    """Classify 1 to 10 images, each answered on its own.

    JSON: ``{"records": [{"_base64": "..."}], "top_k": 5, "detect": false}``.
    Multipart: ``curl -F image=@cat.jpg -F image=@dog.png -F top_k=3 URL``.
    """
    start = time.perf_counter()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        options, images = await _multipart(request)
    elif content_type == "application/json" or content_type.endswith("+json"):
        options, images = await _json(request)
    else:
        raise HTTPException(
            415, "send the images as JSON (Content-Type: application/json) or a multipart/form-data upload"
        )
    runtime = server.runtime
    if options.detect and not runtime.detects:
        raise _invalid(
            "detect",
            "this server runs no detector (stages = classify); start it with --stages detect or cascade, "
            "or leave detect false",
            True,
        )
    service = server.classify_service
    try:
        admitted = service.admit()
    except Busy as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from None
    records: list[ClassifiedRecord] = []
    with admitted:
        for index, (record_id, image) in enumerate(images):
            name = f"record {index}"
            if isinstance(image, Answer):
                answer = image
            else:
                answer = await service.classify(image, name, detect=options.detect)
            records.append(_record(answer, record_id, options))
    models = [ModelName(task=str(m.task), name=str(m.name), version=str(m.version)) for m in runtime.models()]
    return ClassifyResponse(
        records=records, statistics=Statistics(processing_time=time.perf_counter() - start), models=models
    )


async def _json(request: Request) -> tuple[ClassifyOptions, list[tuple[str | None, bytes | Answer]]]:
    """The options and records of a JSON body; a record that cannot be read is an error :class:`Answer`."""
    body = await request.body()
    try:
        parsed = ClassifyRequest.model_validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None
    images: list[tuple[str | None, bytes | Answer]] = []
    for index, record in enumerate(parsed.records):
        name = f"record {index}"
        image: bytes | Answer
        if record.url is not None and record.base64 is None:
            image = Answer(None, 400, f"{name}: this server does not fetch URLs; send the image itself as _base64")
        elif record.base64 is None:
            image = Answer(None, 400, f"{name}: no image; send it as _base64")
        elif record.url is not None:
            image = Answer(None, 400, f"{name}: give _base64 or _url, not both")
        else:
            try:
                image = wire.base64_image(record.base64, name)
            except StreamerError as exc:
                image = Answer(None, 400, str(exc))
        images.append((record.id, image))
    return ClassifyOptions(top_k=parsed.top_k, detect=parsed.detect), images


async def _multipart(request: Request) -> tuple[ClassifyOptions, list[tuple[str | None, bytes | Answer]]]:
    """The options and files of a multipart upload: every file is a record, named by its file name."""
    try:
        form_parser = request.form(max_files=wire.MAX_RECORDS + 1, max_fields=len(_FORM_FIELDS) + 8)
        async with form_parser as form:
            files = [(key, value) for key, value in form.multi_items() if isinstance(value, UploadFile)]
            fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
            unknown = sorted(set(fields) - set(_FORM_FIELDS))
            if unknown:
                raise _invalid(unknown[0], f"unknown field {unknown[0]!r}; expected files and {list(_FORM_FIELDS)}")
            if not 1 <= len(files) <= wire.MAX_RECORDS:
                raise _invalid(
                    files[0][0] if files else "image",
                    f"upload 1 to {wire.MAX_RECORDS} image files, got {len(files)}",
                    len(files),
                )
            try:
                options = ClassifyOptions.model_validate(fields)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
                ) from None
            images: list[tuple[str | None, bytes | Answer]] = [
                (upload.filename, await upload.read()) for _, upload in files
            ]
    except HTTPException as exc:  # Starlette's word on a multipart body it could not parse
        if exc.status_code != 400:
            raise
        raise _invalid("records", f"bad multipart upload: {exc.detail}") from None
    return options, images


def _record(answer: Answer, record_id: str | None, options: ClassifyOptions) -> ClassifiedRecord:
    """One answered record of ``POST /api/classify``."""
    result: FrameResult | None = answer.result
    fields: dict[str, Any] = {"_id": record_id}
    if result is None:
        fields["_status"] = RecordStatus(code=answer.status, text=answer.error or "failed")
        return ClassifiedRecord.model_validate(fields)
    labels = [Label(class_id=c.class_id, name=c.name, prob=round(c.confidence, 6)) for c in result.classes]
    fields |= {
        "best_label": labels[0] if labels else None,
        "labels": labels[: options.top_k],
        "objects": result.objects.to_dicts() if options.detect else None,
        "_status": RecordStatus(code=200, text="OK"),
    }
    return ClassifiedRecord.model_validate(fields)


# --- streams ------------------------------------------------------------------------------------


@router.get("/streams", response_model=list[StreamStats])
async def list_streams(server: Server) -> list[dict[str, Any]]:
    """Every stream: state, counters, last error; credentials in URLs are redacted."""
    return server.stats()


def _stream(server: StreamerServer, stream_id: str) -> dict[str, Any]:
    for row in server.stats():
        if row.get("stream") == stream_id:
            return row
    raise HTTPException(404, f"no stream {stream_id!r}")


@router.get("/streams/{stream_id}", response_model=StreamStats, responses={404: {"description": "no such stream"}})
async def get_stream(stream_id: str, server: Server) -> dict[str, Any]:
    """One stream's state and counters."""
    return _stream(server, stream_id)


@router.post(
    "/streams",
    status_code=201,
    response_model=StreamStats,
    responses={400: {"description": "the source cannot be opened"}, 409: {"description": "the id is taken"}},
)
async def add_stream(spec: NewStream, response: Response, server: Server) -> dict[str, Any]:
    """Open a source and run it beside the others; its stats as ``GET /api/streams/{id}`` gives them."""
    if spec.id.startswith(CAMERA_PREFIX):
        raise _invalid("id", f"ids starting with {CAMERA_PREFIX!r} are the browsers' cameras'; pick another", spec.id)
    options = spec.options
    try:
        stream = StreamSpec(
            id=spec.id,
            source=spec.source,
            realtime=options.realtime,
            loop=options.loop,
            inference_fps=options.inference_fps,
        )
    except ConfigError as exc:  # what the schema lets by and StreamSpec does not (an unprintable id)
        error = {"type": "value_error", "loc": ("body",), "msg": str(exc), "input": None}
        raise RequestValidationError([error]) from None
    try:
        await asyncio.to_thread(server.runtime.add_stream, stream)
    except StreamExistsError as exc:
        raise HTTPException(409, str(exc)) from None
    except ClusterError as exc:  # a Ray cluster without room or a group that does not answer: try later
        raise HTTPException(503, str(exc)) from None
    except StreamerError as exc:  # a ConfigError (a source it cannot open), a missing file
        raise HTTPException(400, str(exc)) from None
    response.headers["Location"] = f"/api/streams/{spec.id}"
    return _stream(server, spec.id)


@router.delete("/streams/{stream_id}", status_code=204, responses={404: {"description": "no such stream"}})
async def remove_stream(stream_id: str, server: Server) -> None:
    """Stop a stream and forget it; a browser's camera ends with its page, not here."""
    _stream(server, stream_id)  # 404 for unknown ids and for other clients' cameras
    if stream_id.startswith(CAMERA_PREFIX):
        raise HTTPException(409, f"{stream_id!r} is a browser's camera; it ends when its page stops sharing it")
    if not await asyncio.to_thread(server.runtime.remove_stream, stream_id):
        raise HTTPException(404, f"no stream {stream_id!r}")


# --- models -------------------------------------------------------------------------------------


@router.get("/models", response_model=list[ModelInfoOut])
async def list_models(server: Server) -> list[dict[str, Any]]:
    """The models running now: task, name, version, provider, input size, number of classes."""
    return [model.to_dict() for model in server.runtime.models()]


@router.post(
    "/models/reload",
    response_model=list[ModelInfoOut],
    responses={409: {"description": "a reload is running"}, 422: {"description": "the new models cannot load"}},
)
async def reload_models(server: Server) -> list[dict[str, Any]]:
    """Re-read ``[classifier]`` and ``[detector]`` and swap the models between two batches.

    On any error the models in use keep running and the answer (422) says why.
    """
    lock = server.reload_lock
    if lock.locked():
        raise HTTPException(409, "a reload is already running; wait for its answer")
    async with lock:
        try:
            models = await asyncio.to_thread(server.runtime.reload)
        except StreamerError as exc:
            log.warning("reloading the models failed; the old ones keep running: %s", exc)
            raise HTTPException(422, f"the models were not reloaded (the old ones keep running): {exc}") from None
    return [model.to_dict() for model in models]


# --- events -------------------------------------------------------------------------------------


def _events(server: StreamerServer) -> EventStore:
    store = server.runtime.events
    if store is None:
        raise HTTPException(404, "this server records no events (it runs no detector, or [storage] events = false)")
    return store


@router.get("/events", response_model=list[dict[str, Any]])
async def list_events(
    server: Server,
    stream: str | None = None,
    label: str | None = None,
    zone: str | None = None,
    after: Annotated[float | None, Query(description="unix seconds: events that started after")] = None,
    before: Annotated[float | None, Query(description="unix seconds: events that started before")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Recorded events, newest first, paged by ``limit`` and ``offset``."""
    store = _events(server)
    return await asyncio.to_thread(
        store.query, stream=stream, label=label, zone=zone, after=after, before=before, limit=limit, offset=offset
    )


@router.get("/events/{event_id}", response_model=dict[str, Any], responses={404: {"description": "no such event"}})
async def get_event(event_id: str, server: Server) -> dict[str, Any]:
    """One event, with its state before and after its last change."""
    event = await asyncio.to_thread(_events(server).get, event_id)
    if event is None:
        raise HTTPException(404, f"no event {event_id!r:.80}")
    return event


@router.get(
    "/events/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such event or no snapshot"}},
)
async def event_snapshot(event_id: str, server: Server, annotated: bool = False) -> Response:
    """The event's best frame as a JPEG: clean, or with the object's box and label drawn."""
    jpeg = await asyncio.to_thread(_events(server).snapshot, event_id, annotated=annotated)
    if jpeg is None:
        raise HTTPException(404, f"no snapshot for event {event_id!r:.80}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})


@router.get(
    "/events/{event_id}/clip.mp4",
    response_class=Response,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "a range"}, 404: {"description": "no clip"}},
)
async def event_clip(event_id: str, server: Server) -> Response:
    """The event's clip as MP4; ``Range`` requests get 206 and the bytes asked for."""
    path = await asyncio.to_thread(_events(server).clip_path, event_id)
    if path is None or not path.is_file():
        raise HTTPException(404, f"no clip for event {event_id!r:.80} (yet)")
    return FileResponse(path, media_type="video/mp4")


@router.delete("/events/{event_id}", status_code=204, responses={404: {"description": "no such event"}})
async def delete_event(event_id: str, server: Server) -> None:
    """Delete an event, its snapshot and its clip."""
    if not await asyncio.to_thread(_events(server).delete, event_id):
        raise HTTPException(404, f"no event {event_id!r:.80}")
