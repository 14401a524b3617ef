"""POST /api/classify against an in-process classify() of the same image, in one process.

One 640x480 JPEG (a real photograph). The baseline is what a Python user
would do in-process: decode the JPEG bytes and call ``Classifier.classify``
(IMAGE mode) on it. Ours is the same bytes sent to a real uvicorn server on
loopback as a multipart upload (``curl -F image=@photo.jpg``), the server
decoding it, the runtime's inference loop scheduling it beside the (here
absent) streams, and the JSON answer read back, over one kept-alive HTTP
connection. Both run interleaved in rounds (ABBA), so machine noise hits
both alike; the script prints each side's median ms and the ratio in-process
/ REST (1.0: HTTP costs nothing).

Then throughput: 8 client threads, each with its own connection, posting the
same JPEG for ``--seconds``: requests/s and latency p50/p95, beside the
in-process classify rate from one thread (the models are the bottleneck
either way; the loop batches concurrent requests together).

    python benchmarks/bench_rest.py [--rounds 10] [--requests 20] [--clients 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamer.config import load_config
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from streamer.sources.images import decode_image
from streamer.tasks import Classifier, ClassifierOptions
from tests.media import photo

SIZE = (640, 480)


def jpeg() -> bytes:
    """A real photograph at 640x480, JPEG quality 90."""
    image = cv2.resize(photo("collage"), SIZE, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def multipart(data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field ``image``, as ``curl -F image=@photo.jpg`` sends."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Client:
    """One kept-alive HTTP connection posting the same upload."""

    def __init__(self, port: int, body: bytes, content_type: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.body, self.content_type = body, content_type

    def post(self) -> dict[str, object]:
        self.connection.request("POST", "/api/classify", self.body, {"Content-Type": self.content_type})
        response = self.connection.getresponse()
        answer = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"POST /api/classify answered {response.status}: {answer}")
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        self.connection.close()


@contextmanager
def serving(runtime: Runtime, clients: int) -> Iterator[int]:
    """A real server on a loopback port of its own, on an event loop thread; yields the port."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="server-loop", daemon=True)
    thread.start()
    server = StreamerServer(ServerConfig(port=0, max_pending_classify=clients), runtime)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
        yield int(server.url.rstrip("/").rsplit(":", 1)[1])
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def mean_ms(fn: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) * 1000.0 / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20, help="requests per round and side")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the throughput run")
    args = parser.parse_args()

    data = jpeg()
    body, content_type = multipart(data)
    classifier = Classifier.create_from_options(ClassifierOptions(device="cpu"))
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "config.toml"
        config_path.write_text('device = "cpu"\n')
        runtime = Runtime(load_config(config_path, env={}))
    runtime.start()
    try:
        with serving(runtime, args.clients) as port:
            client = Client(port, body, content_type)

            def in_process() -> int:
                return classifier.classify(decode_image(data, "photo.jpg")).classes[0].class_id

            def rest() -> int:
                record = client.post()["records"][0]  # type: ignore[index]
                return int(record["best_label"]["class_id"])  # type: ignore[index]

            assert in_process() == rest(), "both sides must give the same best class"
            for _ in range(5):  # warm-up
                in_process(), rest()
            times: dict[str, list[float]] = {"in-process": [], "rest": []}
            sides = [("in-process", in_process), ("rest", rest)]
            for round_ in range(args.rounds):
                for label, fn in sides if round_ % 2 == 0 else sides[::-1]:  # ABBA
                    times[label].append(mean_ms(fn, args.requests))
            local, remote = (statistics.median(times[k]) for k in ("in-process", "rest"))
            print(f"one {SIZE[0]}x{SIZE[1]} JPEG ({len(data)} bytes), {args.rounds} rounds x {args.requests}:")
            print(f"  in-process decode + classify(): {local:6.2f} ms")
            print(f"  POST /api/classify (multipart): {remote:6.2f} ms  (+{remote - local:.2f} ms)")
            print(f"  ratio in-process / REST: {local / remote:.3f}")
            client.close()

            latencies: list[float] = []
            lock = threading.Lock()
            deadline = time.monotonic() + args.seconds

            def hammer() -> None:
                own = Client(port, body, content_type)
                mine: list[float] = []
                while time.monotonic() < deadline:
                    start = time.perf_counter()
                    own.post()
                    mine.append((time.perf_counter() - start) * 1000.0)
                own.close()
                with lock:
                    latencies.extend(mine)

            threads = [threading.Thread(target=hammer) for _ in range(args.clients)]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(args.seconds + 120)
            elapsed = time.monotonic() - began
            single = 1000.0 / local
            p50, p95 = np.percentile(latencies, [50, 95])
            rate = len(latencies) / elapsed
            print(
                f"{args.clients} concurrent clients for {args.seconds:.0f} s: {rate:.1f} requests/s "
                f"(latency p50 {p50:.1f} ms, p95 {p95:.1f} ms); in-process classify from one thread: {single:.1f}/s"
            )
    finally:
        runtime.stop()
        classifier.close()


if __name__ == "__main__":
    main()
