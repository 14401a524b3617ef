"""``/metrics`` scraped over HTTP while a real stream runs, parsed with prometheus_client's own parser."""

from __future__ import annotations

from pathlib import Path

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from streamer.config import StreamSpec
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from tests.media import make_clip
from tests.server.conftest import added_stream, fetch, receive, run, ws_url

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: StreamerServer) -> tuple[dict[str, str], Samples]:
    """Each family's type, and every sample by name and labels."""
    status, headers, body = await fetch(server, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def test_metrics_of_a_live_stream(runtime: Runtime, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "yard.mp4", frames=30, fps=15)

    async def main() -> None:
        async with StreamerServer(ServerConfig(port=0), runtime) as server:
            types, samples = await scrape(server)
            assert samples[("streamer_info", (("provider", "CPUExecutionProvider"),))] == 1
            assert samples[("streamer_ws_clients", ())] == 0 and samples[("streamer_ws_dropped_total", ())] == 0
            assert not any(labels for name, labels in samples if name.startswith("streamer_frame_age_seconds"))

            with added_stream(runtime, StreamSpec(id="yard", source=str(clip), loop=True)):
                async with connect(ws_url(server)) as ws:
                    await receive(ws)
                    for _ in range(5):
                        assert (await receive(ws, skip=("video_start",)))["type"] == "result"
                    await ws.send("{not json")
                    assert (await receive(ws, skip=("result",)))["code"] == "bad_json"
                    types, samples = await scrape(server)
                    assert samples[("streamer_ws_clients", ())] == 1
            yard = (("stream", "yard"),)
            assert types["streamer_frame_age_seconds"] == types["streamer_inference_seconds"] == "histogram"
            counters = ("streamer_frames_decoded", "streamer_frames_inferred", "streamer_ws_dropped")
            assert all(types[name] == "counter" for name in (*counters, "streamer_ws_errors")), types
            assert samples[("streamer_stream_up", yard)] == 1
            assert samples[("streamer_frames_inferred_total", yard)] >= 5
            assert samples[("streamer_frames_decoded_total", yard)] >= samples[("streamer_frames_inferred_total", yard)]
            assert samples[("streamer_reconnects_total", yard)] == 0
            assert samples[("streamer_frame_age_ms", yard)] > 0
            for histogram in ("streamer_frame_age_seconds", "streamer_inference_seconds"):
                count = samples[(f"{histogram}_count", yard)]
                assert count >= 5, histogram
                assert samples[(f"{histogram}_bucket", (("le", "+Inf"), ("stream", "yard")))] == count
                assert 0 < samples[(f"{histogram}_sum", yard)] < count * 10, histogram  # seconds, not milliseconds
            assert samples[("streamer_ws_errors_total", (("code", "bad_json"),))] == 1

            _, samples = await scrape(server)  # the stream is gone: so are its series
            assert not any(dict(labels).get("stream") == "yard" for _, labels in samples)

    run(main, 120)


def test_each_server_counts_on_a_registry_of_its_own(runtime: Runtime) -> None:
    async def main() -> None:
        async with (
            StreamerServer(ServerConfig(port=0), runtime) as first,
            StreamerServer(ServerConfig(port=0), runtime) as second,
        ):
            async with connect(ws_url(first)) as ws:
                await receive(ws)
                for _ in range(3):
                    await ws.send(b"binary")
                    assert (await receive(ws))["code"] == "binary"
            _, samples = await scrape(first)
            assert samples[("streamer_ws_errors_total", (("code", "binary"),))] == 3
            _, samples = await scrape(second)
            assert ("streamer_ws_errors_total", (("code", "binary"),)) not in samples

    run(main, 60)
    global_names = {family.name for family in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("streamer_") for name in global_names), "the process-wide registry was used"
