"""Stopping ``streamer serve`` by signal, as a service manager (SIGTERM) or a terminal (SIGINT) does."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.abuse.conftest import CLIP_STREAM, recv_json
from tests.process import child_env, spawn_streamer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_closes_clients_with_1001_and_exits_0(
    clip: Path, cache_dir: Path, workdir: Path, signum: signal.Signals
) -> None:
    command = ("serve", str(clip), "--loop", "--port", "0", "--device", "cpu")
    with spawn_streamer(*command, env=child_env(cache_dir), cwd=workdir) as child:
        port = child.url.rsplit(":", 1)[1].rstrip("/")

        async def main() -> int | None:
            async with asyncio.timeout(90), connect(f"ws://127.0.0.1:{port}/ws", close_timeout=5) as ws:
                assert (await recv_json(ws, skip=()))["type"] == "hello"
                result = await recv_json(ws, timeout=60, skip=("video_start",))  # results flow: the pipeline runs
                assert result["type"] == "result" and result["result"]["stream"] == CLIP_STREAM, result
                child.send_signal(signum)
                try:
                    while True:
                        json.loads(await ws.recv())
                except ConnectionClosed:
                    pass
                return ws.close_code

        code = asyncio.run(main())
        exit_code = child.wait(60)
    stderr = child.stderr()
    assert code == 1001, f"the client was closed with {code}, not 1001 (going away)\n{stderr[-3000:]}"
    assert exit_code == 0, f"exit code {exit_code}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr and "Task exception was never retrieved" not in stderr, stderr[-3000:]
