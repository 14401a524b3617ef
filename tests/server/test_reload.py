"""Model hot swap through the server: REST reload and SIGHUP, while streams run and a client watches.

The new model is the embedded classifier saved again with another doc
string: the same weights, so the same answers, under another version.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import onnx
from websockets.asyncio.client import connect

from streamer.config import load_config
from streamer.models import zoo
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from tests.media import make_clip
from tests.process import child_env, spawn_streamer
from tests.server.conftest import fetch, post_json, receive, run, ws_url

DECLARED = (
    'resize = "crop"\nresize_shorter = 256\nmean = [127.0, 127.0, 127.0]\nstd = [128.0, 128.0, 128.0]\n'
    'head = "softmax"\n'
)


def resaved_classifier(cache_dir: Path, folder: Path) -> tuple[Path, Path]:
    """The embedded classifier under another version: ``(model, labels)``."""
    built = zoo.build("efficientnet-lite0", cache_dir)
    model = onnx.load(str(built.onnx_path))
    model.doc_string = "resaved"
    path = folder / "v2.onnx"
    onnx.save(model, str(path))
    assert built.labels_path is not None
    return path, built.labels_path


def test_reload_over_rest_keeps_streams_and_clients(cache_dir: Path, tmp_path: Path) -> None:
    model, labels = resaved_classifier(cache_dir, tmp_path)
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15)
    path = tmp_path / "config.toml"
    head = f'device = "cpu"\ncache_dir = "{cache_dir}"\n'
    path.write_text(head + f'[[streams]]\nid = "cam"\nsource = "{clip}"\nloop = true\n')
    runtime = Runtime(load_config(path, env={}), reread=lambda: load_config(path, env={}))

    async def results_of(ws: Any, stream: str, count: int) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        while len(seen) < count:
            message = await receive(ws)
            if message.get("type") == "result" and message["result"]["stream"] == stream:
                seen.append(message["result"])
        return seen

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server, connect(ws_url(server)) as ws:
            [old] = json.loads((await fetch(server, "/api/models"))[2])
            before = await results_of(ws, "cam", 3)
            assert {r["models"]["classifier"] for r in before} == {f"efficientnet-lite0@{old['version']}"}

            spec = {"id": "yard", "source": str(clip), "options": {"loop": True}}
            assert (await post_json(server, "/api/streams", spec))[0] == 201, "a stream added while cam runs"
            await results_of(ws, "yard", 2)

            path.write_text(head + f'[classifier]\nmodel = "{model}"\nlabels = "{labels}"\n' + DECLARED)
            status, _, [new] = await post_json(server, "/api/models/reload", None)
            assert status == 200 and new["name"] == "v2.onnx" and new["version"] != old["version"]
            tag = f"v2.onnx@{new['version']}"
            after: list[dict[str, Any]] = []
            while not after or after[-1]["models"]["classifier"] != tag:  # the swap comes between two batches
                after += await results_of(ws, "cam", 1)
            assert {r["models"]["classifier"] for r in after[:-1]} <= {f"efficientnet-lite0@{old['version']}"}
            assert (await fetch(server, "/api/streams/yard", method="DELETE"))[0] == 204
            more = await results_of(ws, "cam", 3)
            assert {r["models"]["classifier"] for r in more} == {tag}, "the watching client was never dropped"
            rows = json.loads((await fetch(server, "/api/streams"))[2])
            assert [(r["stream"], r["state"]) for r in rows] == [("cam", "live")], "the config's stream ran on"

    runtime.start()
    try:
        run(main, 180)
    finally:
        runtime.stop()


def _models(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "api/models", timeout=30) as response:
        models: list[dict[str, Any]] = json.load(response)
    return models


def test_sighup_reloads_the_models_of_a_running_server(cache_dir: Path, tmp_path: Path) -> None:
    model, labels = resaved_classifier(cache_dir, tmp_path)
    path = tmp_path / "config.toml"
    path.write_text('device = "cpu"\n')
    env = child_env(cache_dir, STREAMER_CONFIG=str(path))
    with spawn_streamer("serve", "--port", "0", env=env) as child:
        [old] = _models(child.url)
        path.write_text(f'device = "cpu"\n[classifier]\nmodel = "{tmp_path / "absent.onnx"}"\n')
        child.send_signal(signal.SIGHUP)
        child.wait_for_stderr(r"reload \(SIGHUP\) failed; the running models stay: .*absent\.onnx does not exist")
        assert _models(child.url) == [old]
        path.write_text(f'device = "cpu"\n[classifier]\nmodel = "{model}"\nlabels = "{labels}"\n' + DECLARED)
        child.send_signal(signal.SIGHUP)
        child.wait_for_stderr(r"reloaded \(SIGHUP\): classifier v2\.onnx@")
        deadline = time.monotonic() + 30
        while _models(child.url)[0]["version"] == old["version"] and time.monotonic() < deadline:
            time.sleep(0.1)
        [new] = _models(child.url)
        assert new["name"] == "v2.onnx" and new["version"] != old["version"]
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0
