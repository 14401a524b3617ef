"""The REST API with real HTTP clients against a real server and runtime: classify, streams, models, bad bodies."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from streamer.config import load_config
from streamer.runtime import Runtime
from streamer.server import wire
from streamer.server.app import ServerConfig, StreamerServer
from tests.media import black_png, make_clip
from tests.memory import reset_peak, rss_mib
from tests.server.conftest import SAMPLES, b64, fetch, make_runtime, port_of, post_json, receive, run, ws_url

ESPRESSO = {"espresso"}
CATS = {"tabby", "tiger cat", "Egyptian cat"}


def multipart(files: list[tuple[str, str, bytes]], fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body as ``curl -F name=@file`` sends it: ``(body, content type)``."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


async def upload(server: StreamerServer, files: list[tuple[str, str, bytes]], **fields: str) -> tuple[int, Any]:
    body, content_type = multipart(files, fields)
    status, _, answer = await fetch(
        server, "/api/classify", method="POST", headers={"Content-Type": content_type}, body=body
    )
    return status, json.loads(answer)


def field_errors(answer: Any) -> list[tuple[Any, ...]]:
    """The ``loc`` of each error of a 422."""
    return [tuple(error["loc"]) for error in answer["detail"]]


# --- classify -----------------------------------------------------------------------------------


def test_classify_json_answers_every_record_on_its_own(runtime: Runtime) -> None:
    bomb = base64.b64encode(black_png(20_000, 20_000)).decode()  # 400 megapixels, a few KB

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            records = [
                {"_base64": b64("coffee.jpg"), "_id": "cup"},
                {"_base64": "data:image/jpeg;base64," + b64("chelsea.jpg")},
                {"_base64": "not base64!!"},
                {"_base64": base64.b64encode(b"hello").decode()},
                {"_url": "https://example.com/cat.jpg"},
                {"_base64": bomb},
                {},
            ]
            status, _, answer = await post_json(server, "/api/classify", {"records": records, "top_k": 3})
            assert status == 200, answer
            cup, cat, broken, undecodable, url, bombed, empty = answer["records"]
            assert cup["_id"] == "cup" and cup["_status"] == {"code": 200, "text": "OK"}
            assert cup["best_label"]["name"] in ESPRESSO and cup["best_label"]["prob"] > 0.9
            assert set(cup["best_label"]) == {"class_id", "name", "prob"}
            assert len(cup["labels"]) == 3 and cup["labels"][0] == cup["best_label"]
            assert "objects" not in cup, "no detect asked"
            assert cat["best_label"]["name"] in CATS and "_id" not in cat
            for record, words in (
                (broken, ("record 2", "base64")),
                (undecodable, ("record 3", "decode")),
                (url, ("record 4", "does not fetch URLs")),
                (bombed, ("record 5", "20000x20000", "pixels", "limit")),
                (empty, ("record 6", "no image")),
            ):
                assert set(record) == {"_status"}, record
                assert record["_status"]["code"] == 400 and all(w in record["_status"]["text"] for w in words), record
            assert 0 < answer["statistics"]["processing_time"] < 600
            expected = [{"task": m.task, "name": m.name, "version": m.version} for m in runtime.models()]
            assert answer["models"] == expected and expected[0]["name"] == "efficientnet-lite0"

    run(main, 120)


def test_decompression_bombs_cost_no_memory(runtime: Runtime) -> None:
    """A few KB declaring 400 MP (1.2 GB decoded), as JSON and as uploads: refused from the header, no spike."""
    png = black_png(20_000, 20_000)
    records = [{"_base64": base64.b64encode(png).decode()}] * 10

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            coffee = {"records": [{"_base64": b64("coffee.jpg")}]}
            assert (await post_json(server, "/api/classify", coffee))[0] == 200  # warm: buffers, allocators
            reset_peak()
            before = rss_mib("VmHWM")
            status, _, answer = await post_json(server, "/api/classify", {"records": records})
            assert status == 200 and all("over the limit" in r["_status"]["text"] for r in answer["records"]), answer
            status, answer = await upload(server, [("image", f"{i}.png", png) for i in range(10)])
            assert status == 200 and all(r["_status"]["code"] == 400 for r in answer["records"]), answer
            peak = rss_mib("VmHWM")
            assert peak - before < 100, f"peak RSS went from {before:.0f} to {peak:.0f} MiB"
            assert (await post_json(server, "/api/classify", coffee))[0] == 200, "the server still answers"

    run(main, 120)


def test_classify_multipart_uploads_are_records(runtime: Runtime) -> None:
    coffee, chelsea = (SAMPLES / "coffee.jpg").read_bytes(), (SAMPLES / "chelsea.jpg").read_bytes()

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            status, answer = await upload(server, [("image", "cat.jpg", chelsea)])  # curl -F image=@cat.jpg
            assert status == 200, answer
            (record,) = answer["records"]
            assert record["_id"] == "cat.jpg" and record["best_label"]["name"] in CATS and len(record["labels"]) == 5

            files = [("image", "coffee.jpg", coffee), ("image", "notes.txt", b"not an image"), ("b", "c.jpg", chelsea)]
            status, answer = await upload(server, files, top_k="2")
            assert status == 200, answer
            cup, text, cat = answer["records"]
            assert cup["best_label"]["name"] in ESPRESSO and len(cup["labels"]) == 2
            assert text["_status"]["code"] == 400 and "decode" in text["_status"]["text"]
            assert cat["best_label"]["name"] in CATS

            status, answer = await upload(server, [("image", f"{i}.jpg", coffee) for i in range(11)])
            assert status == 422 and "1 to 10" in answer["detail"][0]["msg"], answer
            status, answer = await upload(server, [])
            assert status == 422 and field_errors(answer) == [("body", "image")], answer
            status, answer = await upload(server, [("image", "a.jpg", coffee)], speed="fast")
            assert status == 422 and field_errors(answer) == [("body", "speed")], answer
            status, answer = await upload(server, [("image", "a.jpg", coffee)], top_k="many")
            assert status == 422 and field_errors(answer) == [("body", "top_k")], answer

    run(main, 120)


def test_classify_bad_json_is_422_naming_the_field(runtime: Runtime) -> None:
    coffee = {"_base64": b64("coffee.jpg")}

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            cases: list[tuple[Any, tuple[Any, ...]]] = [
                ({"records": [coffee] * 11}, ("body", "records")),
                ({"records": []}, ("body", "records")),
                ({}, ("body", "records")),
                ({"records": [coffee], "top_k": 0}, ("body", "top_k")),
                ({"records": [coffee], "top_k": "five"}, ("body", "top_k")),
                ({"records": [coffee], "topk": 3}, ("body", "topk")),
                ({"records": [{"_base64": 5}]}, ("body", "records", 0, "_base64")),
                ({"records": [{"image": "x"}]}, ("body", "records", 0, "image")),
                ({"records": "all of them"}, ("body", "records")),
                ({"records": [coffee], "detect": True}, ("body", "detect")),  # this runtime runs no detector
            ]
            for payload, loc in cases:
                status, _, answer = await post_json(server, "/api/classify", payload)
                assert status == 422 and loc in field_errors(answer), (loc, answer)
            assert "no detector" in answer["detail"][0]["msg"]
            status, _, body = await fetch(
                server, "/api/classify", method="POST", headers={"Content-Type": "application/json"}, body=b'{"rec'
            )
            assert status == 422 and json.loads(body)["detail"][0]["type"] == "json_invalid"
            status, _, body = await fetch(
                server, "/api/classify", method="POST", headers={"Content-Type": "text/plain"}, body=b"hi"
            )
            assert status == 415 and b"application/json" in body
            status, _, answer = await post_json(server, "/api/classify", {"records": [coffee]})
            assert status == 200 and answer["records"][0]["best_label"]["name"] in ESPRESSO  # and all is well

    run(main, 120)


def test_classify_while_busy_is_503_with_retry_after(runtime: Runtime) -> None:
    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, max_pending_classify=2), runtime) as server:
            with server.classify_service.admit(), server.classify_service.admit():
                status, headers, answer = await post_json(
                    server, "/api/classify", {"records": [{"_base64": b64("coffee.jpg")}]}
                )
            assert status == 503 and headers["retry-after"] == "1", answer
            assert "2 classify requests are already waiting" in answer["detail"]
            status, _, answer = await post_json(server, "/api/classify", {"records": [{"_base64": b64("coffee.jpg")}]})
            assert status == 200

    run(main, 120)


def test_classify_with_detect_gives_objects(cache_dir: Path) -> None:
    detector = make_runtime(cache_dir, stages="detect")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), detector) as server:
            payload = {"records": [{"_base64": b64("coffee.jpg")}], "detect": True}
            status, _, answer = await post_json(server, "/api/classify", payload)
            assert status == 200, answer
            objects = answer["records"][0]["objects"]
            assert any(o["name"] == "cup" for o in objects), objects
            assert {m["task"] for m in answer["models"]} == {"detector"}

    detector.start()
    try:
        run(main, 120)
    finally:
        detector.stop()


def test_a_cascade_server_labels_whole_images_unless_asked_to_detect(cache_dir: Path) -> None:
    cascade = make_runtime(cache_dir, stages="cascade")

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), cascade) as server:
            records = [{"_base64": b64("coffee.jpg")}, {"_base64": b64("collage.jpg")}]
            status, _, answer = await post_json(server, "/api/classify", {"records": records})
            assert status == 200, answer
            cup, collage = answer["records"]
            assert cup["best_label"]["name"] in ESPRESSO and "objects" not in cup, "detect false: the whole image"
            assert collage["best_label"] is not None
            status, _, answer = await post_json(server, "/api/classify", {"records": records, "detect": True})
            assert status == 200, answer
            cup, collage = answer["records"]
            names = {o["name"] for o in collage["objects"]}
            assert {"cat", "cup", "person"} <= names, names
            described = [o for o in collage["objects"] if o["name"] != "person"]  # ImageNet has no person class
            assert described and all(o["classes"] for o in described), "each describable object's crop classified"
            assert any(o["name"] == "cup" for o in cup["objects"])

    cascade.start()
    try:
        run(main, 120)
    finally:
        cascade.stop()


# --- bodies over the limit ----------------------------------------------------------------------


def _raw(port: int, request: bytes, body_chunks: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    """Send ``request`` (head), then the chunks; everything the server answered until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:  # the server answered and closed before taking it all
            pass
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    return answer


def test_a_body_over_the_limit_is_413_before_it_is_read(runtime: Runtime) -> None:
    limit = 256 * 1024

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0, max_body_bytes=limit), runtime) as server:
            port = port_of(server)
            head = (
                f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {10**12}\r\n\r\n"
            ).encode()
            answer = await asyncio.to_thread(_raw, port, head)  # a terabyte announced, not a byte sent
            assert answer.startswith(b"HTTP/1.1 413 ") and b"server.max_body_bytes" in answer, answer[:300]

            chunked = (
                f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * (64 * 1024))
            answer = await asyncio.to_thread(_raw, port, chunked, [chunk] * 64)  # 4 MiB, no length announced
            assert answer.startswith(b"HTTP/1.1 413 ") and b"server.max_body_bytes" in answer, answer[:300]

            files = [("image", "big.jpg", b"\xff" * (limit + 1))]
            body, content_type = multipart(files)
            status, _, reply = await fetch(
                server, "/api/classify", method="POST", headers={"Content-Type": content_type}, body=body
            )
            assert status == 413, reply
            coffee = {"records": [{"_base64": b64("coffee.jpg")}]}
            assert (await post_json(server, "/api/classify", coffee))[0] == 200, "the server still answers"

    run(main, 120)


# --- streams ------------------------------------------------------------------------------------


def test_streams_are_added_listed_and_removed(runtime: Runtime, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "door.mp4", frames=30, fps=15)

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            spec = {"id": "door", "source": str(clip), "options": {"loop": True, "inference_fps": 5}}
            status, headers, row = await post_json(server, "/api/streams", spec)
            try:
                assert status == 201 and headers["location"] == "/api/streams/door", row
                assert row["stream"] == "door" and row["url"] == str(clip)
                async with connect(ws_url(server)) as ws:
                    hello = await receive(ws)
                    assert [r["stream"] for r in hello["streams"]] == ["door"]
                    result = await receive(ws, skip=("video_start",))
                    assert result["type"] == "result" and result["result"]["stream"] == "door"
                status, _, body = await fetch(server, "/api/streams")
                assert status == 200 and [r["stream"] for r in json.loads(body)] == ["door"]
                status, _, body = await fetch(server, "/api/streams/door")
                assert status == 200 and json.loads(body)["state"] in ("connecting", "live")

                status, _, answer = await post_json(server, "/api/streams", spec)
                assert status == 409 and "already running" in answer["detail"]
                for bad, loc in (
                    ({"id": "a/b", "source": str(clip)}, ("body", "id")),
                    ({"id": "", "source": str(clip)}, ("body", "id")),
                    ({"id": "x" * 65, "source": str(clip)}, ("body", "id")),
                    ({"id": "browser-1", "source": str(clip)}, ("body", "id")),
                    ({"id": "x"}, ("body", "source")),
                    ({"id": "x", "source": str(clip), "options": {"speed": 2}}, ("body", "options", "speed")),
                    (
                        {"id": "x", "source": str(clip), "options": {"inference_fps": 0}},
                        ("body", "options", "inference_fps"),
                    ),
                ):
                    status, _, answer = await post_json(server, "/api/streams", bad)
                    assert status == 422 and loc in field_errors(answer), (bad, answer)
                missing = {"id": "x", "source": str(tmp_path / "no.mp4")}
                status, _, answer = await post_json(server, "/api/streams", missing)
                assert status == 400 and "no.mp4" in answer["detail"], answer
            finally:
                status, _, _ = await fetch(server, "/api/streams/door", method="DELETE")
            assert status == 204
            assert (await fetch(server, "/api/streams/door", method="DELETE"))[0] == 404
            assert (await fetch(server, "/api/streams/door"))[0] == 404
            assert json.loads((await fetch(server, "/api/streams"))[2]) == []

    run(main, 120)


def test_credentials_in_a_source_never_reach_an_answer(runtime: Runtime) -> None:
    secrets = ("hunter2pw", "tok3nvalue", "keyval7")
    camera = f"rtsp://alice:{secrets[0]}@127.0.0.1:9/cam?token={secrets[1]}&key={secrets[2]}"

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            status, _, row = await post_json(server, "/api/streams", {"id": 'lobby "east"\\door', "source": camera})
            try:
                assert status == 201, row
                seen = {
                    "POST": json.dumps(row),
                    "GET": (await fetch(server, "/api/streams"))[2].decode(),
                    "metrics": (await fetch(server, "/metrics"))[2].decode(),
                }
                async with connect(ws_url(server)) as ws:
                    seen["hello"] = json.dumps(await receive(ws))
            finally:
                await fetch(server, "/api/streams/lobby%20%22east%22%5Cdoor", method="DELETE")
            leaks = [f"{where} shows {s}" for where, text in seen.items() for s in secrets if s in text]
            assert not leaks, leaks
            assert 'streamer_stream_up{stream="lobby \\"east\\"\\\\door"}' in seen["metrics"]
            assert json.loads((await fetch(server, "/api/streams"))[2]) == []

    run(main, 60)


# --- models -------------------------------------------------------------------------------------


def test_models_are_listed_and_reloaded(cache_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    overrides: dict[str, Any] = {"device": "cpu", "cache_dir": str(cache_dir)}
    next_config = [load_config(env={}, overrides=overrides)]
    reloading = Runtime(next_config[0], reread=lambda: next_config[0])

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), reloading) as server:
            status, _, body = await fetch(server, "/api/models")
            models = json.loads(body)
            assert status == 200 and models == [m.to_dict() for m in reloading.models()]
            (model,) = models
            assert model["name"] == "efficientnet-lite0" and model["classes"] == 1000
            assert model["input_size"] == [224, 224] and model["provider"] == "CPUExecutionProvider"

            status, _, answer = await post_json(server, "/api/models/reload", None)
            assert status == 200 and answer == models

            next_config[0] = load_config(env={}, overrides={**overrides, "classifier.model": str(broken)})
            status, _, answer = await post_json(server, "/api/models/reload", None)
            assert status == 422 and "broken.onnx" in answer["detail"] and "old ones keep running" in answer["detail"]
            assert json.loads((await fetch(server, "/api/models"))[2]) == models
            status, _, answer = await post_json(server, "/api/classify", {"records": [{"_base64": b64("coffee.jpg")}]})
            assert status == 200 and answer["records"][0]["best_label"]["name"] in ESPRESSO

    reloading.start()
    try:
        run(main, 120)
    finally:
        reloading.stop()


def test_ws_classify_and_rest_classify_agree(runtime: Runtime) -> None:
    """The two front doors answer the same image with the same labels."""

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            status, _, rest = await post_json(server, "/api/classify", {"records": [{"_base64": b64("chelsea.jpg")}]})
            async with connect(ws_url(server)) as ws:
                await receive(ws)
                await ws.send(wire.encode("classify", id="x", records=[{"image": b64("chelsea.jpg")}]))
                over_ws = (await receive(ws))["records"][0]
            assert status == 200
            assert [label["name"] for label in rest["records"][0]["labels"]] == [c["name"] for c in over_ws["labels"]]

    run(main, 60)
