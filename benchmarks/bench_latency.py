"""Camera-to-browser latency on loopback, and results/s the hub sustains to many WebSocket clients.

Part 1, latency. A live source in this script makes 640x480 frames at 30 fps
(a real photograph panned, ``tests.media.clip_frame``) and stamps each with its
capture time: the low 32 bits of ``time.time()`` in ms plus an 8-bit checksum,
drawn as 40 black/white blocks of 16x32 px along the top (big enough to survive
VP8). ``pts_ms`` is the capture time minus the run's start. The source is the
one stream of a real ``Runtime`` (``runtime.add_source``), built from a config
file of ``device = "cpu"``: the embedded classifier, ``stages`` classify and
``[server]``'s ``max_batch`` 4 and ``max_frame_age_ms`` 500. A real
``StreamerServer(ServerConfig(port=0), runtime)`` subscribes to the runtime's
frames (WebRTC to the page) and results (the hub) and serves the page to
headless Chromium (Debian's, ``/usr/bin/chromium``). JS injected into the page
reads back, for every displayed frame (``requestVideoFrameCallback``), the
barcode from the video drawn into an offscreen canvas:

* display latency = ``performance.timeOrigin + now`` (the callback's) minus the
  frame's capture time: camera -> pipeline's ``on_frame`` -> VP8 -> RTP -> screen;
* overlay latency = the time the page first draws a result
  (``window.streamer.drawn`` went up while it is the newest) minus the capture
  time of its frame (``pts_ms``): camera -> inference -> WebSocket -> overlay;
  the result's arrival in the page minus its capture time is printed too.

Both clocks are this machine's wall clock. Printed: p50/p95 of both over
``--duration`` seconds (after a warm-up) and the frames measured. Target: p95
< 250 ms at 30 fps. The baseline, to split the overlay's latency, is the
pipeline's own ``timings_ms["age"]`` (capture -> result on the server) and the
bare ``cascade.run([frame])`` (the runtime's models on the calling thread,
before it starts) time.

Part 2, the hub. A ``StreamerServer`` (port 0, its uvicorn on a loop thread of
its own) of a CPU ``Runtime`` whose one stream, ``cam``, is live but decodes
nothing, and ``--clients`` real WebSocket clients
(``websockets.asyncio.client``) on the main thread's loop, each reading ``/ws``
(``hello``, then the results through its own queue in the hub). A
thread publishes one pre-encoded realistic result (a FrameResult with a few
objects) with ``hub.publish`` as fast as the server's loop takes it (it waits
for the loop every 64 results, so callbacks never pile up) for
``--hub-seconds``; every client counts what it receives. Printed: results/s
published, delivered per client (min / median) and the drops
(``server.ws_dropped()``, oldest dropped from a slow client's queue of 64).
The baseline: the same clients on a bare ``websockets`` server in this process
sent the same bytes with ``websockets.asyncio.server.broadcast`` (no queues,
no drops, no backpressure) paced the same way. Both servers stay up and the
two sides run in ``--hub-rounds`` alternating rounds (ABBA: no side always
goes first), so a load spike hits one round, not one side; printed: the
ratio ours / bare of each round pair (median delivered per client) and their
median. Target: >= 0.9.

    python benchmarks/bench_latency.py [--duration 20] [--clients 50] [--hub-rounds 6] [--skip-browser]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `tests.media` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve

from streamer.config import load_config
from streamer.frames import Frame
from streamer.inference.backend import Request
from streamer.results import Category, Detection, Detections, FrameResult
from streamer.runtime import Runtime
from streamer.server import wire
from streamer.server.app import ServerConfig, StreamerServer
from streamer.sources.base import Source, SourceState
from tests.media import clip_frame, photo
from tests.web.browser import CHROMIUM, CHROMIUM_ARGS  # the same browser and flags as the page tests

FPS = 30
SIZE = (640, 480)
BITS = 40  # 32 bits of capture time (ms, mod 2**32) + an 8-bit checksum
BLOCK_W, BLOCK_H = 16, 32


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def stamp(image: np.ndarray, wall_ms: int) -> None:
    """Draw ``wall_ms`` mod 2**32 and its checksum as black (1) / white (0) blocks along the top of ``image``."""
    low = wall_ms & 0xFFFFFFFF
    check = sum(low.to_bytes(4, "big")) & 0xFF
    value = (low << 8) | check
    for i in range(BITS):
        bit = (value >> (BITS - 1 - i)) & 1
        image[:BLOCK_H, i * BLOCK_W : (i + 1) * BLOCK_W] = 0 if bit else 255


class StampedSource(Source):
    """A live 30 fps camera of panned photographs, each frame stamped with its capture time."""

    def __init__(self, stream_id: str, t0_ms: int, frames: int = 60) -> None:
        super().__init__(stream_id, "stamped://", live=True)
        self.t0_ms = t0_ms
        picture = photo()
        self._frames = [clip_frame(picture, i, frames, SIZE) for i in range(frames)]

    def _run(self) -> None:
        self._set_state(SourceState.LIVE)
        start = time.monotonic()
        i = 0
        while not self.stopping.wait(max(0.0, start + i / FPS - time.monotonic())):
            made = time.perf_counter()
            image = self._frames[i % len(self._frames)].copy()
            wall_ms = int(time.time() * 1000)
            stamp(image, wall_ms)
            if not self._emit(image, float(wall_ms - self.t0_ms), (time.perf_counter() - made) * 1000):
                return
            i += 1


class IdleSource(Source):
    """A live stream that is listed (``hello``, ``/api/streams``) but decodes nothing: the hub part's ``cam``."""

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id, f"idle://{stream_id}", live=True)

    def _run(self) -> None:
        self._set_state(SourceState.LIVE)
        self.stopping.wait()


@contextmanager
def served(source: Source) -> Iterator[tuple[Runtime, StreamerServer, asyncio.AbstractEventLoop]]:
    """A :class:`Runtime` (the embedded classifier on the CPU; ``[server]``'s ``max_batch`` 4 and
    ``max_frame_age_ms`` 500) with ``source`` as its one stream, and a real :class:`StreamerServer` of it on a
    free loopback port, serving on an event loop thread of its own.

    Yields the runtime not yet started (subscribe, then ``runtime.start()``), the server started and its loop;
    on exit the server stops, then the runtime (the order of :mod:`streamer.server.app`'s call order).
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text('device = "cpu"\nstages = "classify"\n')
        runtime = Runtime(load_config(path, env={}))
    try:
        runtime.add_source(source)
        server = StreamerServer(ServerConfig(port=0), runtime)  # subscribes to the runtime
        with loop_thread() as loop:
            on(loop, server.start())
            try:
                yield runtime, server, loop
            finally:
                on(loop, server.stop())
    finally:
        runtime.stop()


@contextmanager
def loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running on a thread of its own, stopped and closed on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()


def on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


# --- part 1: latency ------------------------------------------------------------------------------

# Installed once the video plays: measures every displayed frame and every first draw of a result.
_MEASURE = """([bits, blockW, blockH, t0]) => {
  const video = document.querySelector('.card[data-stream="cam"] video');
  const m = (window.__latency = { display: [], overlay: [], arrival: [], bad: 0, frames: 0 });
  const wall = () => performance.timeOrigin + performance.now();
  const canvas = document.createElement("canvas");
  canvas.width = 640;
  canvas.height = blockH;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const TWO32 = 2 ** 32;
  const capture = (nowMs) => {  // the displayed frame's capture time (ms, wall clock), or null
    const vw = video.videoWidth, vh = video.videoHeight;
    if (!vw || !vh) return null;
    ctx.drawImage(video, 0, 0, vw, (vh * blockH) / 480, 0, 0, 640, blockH);
    const data = ctx.getImageData(0, 0, 640, blockH).data;
    const bitsOut = [];
    for (let i = 0; i < bits; i++) {
      let sum = 0, n = 0;
      for (let y = blockH / 4; y < (3 * blockH) / 4; y += 2) {
        for (let x = i * blockW + 4; x < (i + 1) * blockW - 4; x += 2) {
          const o = (y * 640 + x) * 4;
          sum += data[o] + data[o + 1] + data[o + 2];
          n += 3;
        }
      }
      bitsOut.push(sum / n < 128 ? 1 : 0);
    }
    let low = 0, check = 0;
    for (let i = 0; i < 32; i++) low = low * 2 + bitsOut[i];
    for (let i = 32; i < 40; i++) check = check * 2 + bitsOut[i];
    const bytes = [(low / 2 ** 24) & 255, (low / 2 ** 16) & 255, (low / 2 ** 8) & 255, low & 255];
    if (((bytes[0] + bytes[1] + bytes[2] + bytes[3]) & 255) !== check) return null;
    const behind = ((((nowMs - low + TWO32 / 2) % TWO32) + TWO32) % TWO32) - TWO32 / 2;  // nowMs - capture
    return nowMs - behind;
  };
  const results = window.streamer.results.cam;
  const arrived = new Map();
  results.push = function (...items) {
    const t = wall();
    for (const r of items) arrived.set(r.frame, t);
    return Array.prototype.push.apply(this, items);
  };
  let drawn = window.streamer.drawn.cam || 0;
  const seen = new Set();
  const checkOverlay = () => {  // after the page's own callbacks: a result drawn for the first time
    const count = window.streamer.drawn.cam || 0;
    if (count === drawn) return;
    drawn = count;
    const newest = results.at(-1);
    if (!newest || seen.has(newest.frame) || !arrived.has(newest.frame)) return;
    seen.add(newest.frame);
    const captured = t0 + newest.pts_ms;
    m.overlay.push(wall() - captured);
    m.arrival.push(arrived.get(newest.frame) - captured);
  };
  const onFrame = (now, metadata) => {
    const nowMs = performance.timeOrigin + now;
    const captured = capture(nowMs);
    m.frames += 1;
    if (captured === null || Math.abs(nowMs - captured) > 60000) m.bad += 1;
    else m.display.push(nowMs - captured);
    checkOverlay();
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  const tick = () => {
    checkOverlay();
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  return performance.timeOrigin + performance.now() - Date.now();
}"""

_RESET = (
    "(() => { const m = window.__latency; m.display = []; m.overlay = []; m.arrival = []; m.bad = 0; m.frames = 0; })()"
)


def latency(duration: float, warmup: float) -> None:
    from playwright.sync_api import sync_playwright

    t0_ms = int(time.time() * 1000)
    source = StampedSource("cam", t0_ms)
    image = source._frames[0]
    ages: list[float] = []
    measuring = threading.Event()

    def on_result(result: FrameResult, frame: Frame) -> None:
        if measuring.is_set():
            ages.append(result.timings_ms["age"])

    with served(source) as (runtime, server, _):
        cascade = runtime.backend.cascade
        for _ in range(3):
            cascade.run([Request("", image)])
        calls = []
        for _ in range(15):
            start = time.perf_counter()
            cascade.run([Request("", image)])
            calls.append((time.perf_counter() - start) * 1000.0)
        bare_ms = statistics.median(calls)
        print(
            f"latency: stages classify on {runtime.provider}, {SIZE[0]}x{SIZE[1]} @ {FPS} fps stamped source -> "
            f"Runtime -> StreamerServer -> headless Chromium over loopback WebRTC"
        )
        print(f"    bare cascade.run([frame]): {bare_ms:.1f} ms (median of 15)")
        runtime.subscribe(on_result)  # beside the server's own subscription, which publishes the results
        runtime.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1000, "height": 800})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(server.url)
                page.wait_for_selector('.card[data-stream="cam"]', timeout=15_000)
                page.wait_for_function(
                    "document.querySelector('.card[data-stream=\"cam\"] video').currentTime > 0 && "
                    "(window.streamer.results.cam || []).length > 0",
                    timeout=30_000,
                    polling=100,
                )
                skew = page.evaluate(_MEASURE, [BITS, BLOCK_W, BLOCK_H, t0_ms])
                time.sleep(warmup)
                page.evaluate(_RESET)
                measuring.set()
                time.sleep(duration)
                measuring.clear()
                got = page.evaluate("window.__latency")
                size = page.evaluate(
                    "[document.querySelector('.card[data-stream=\"cam\"] video').videoWidth, "
                    "document.querySelector('.card[data-stream=\"cam\"] video').videoHeight]"
                )
            finally:
                browser.close()
    display, overlay, arrival = got["display"], got["overlay"], got["arrival"]
    print(
        f"    {duration:.0f} s measured: {got['frames']} frames displayed ({got['frames'] / duration:.1f} fps, "
        f"video {size[0]}x{size[1]}), {len(display)} read back, {got['bad']} unreadable; "
        f"{len(overlay)} results drawn; page clock - Date.now() {skew:+.1f} ms"
    )
    print(
        f"    display latency (capture -> frame on screen): p50 {pct(display, 50):6.1f}  "
        f"p95 {pct(display, 95):6.1f} ms  (target p95 < 250 ms)"
    )
    print(
        f"    overlay latency (capture -> its result drawn): p50 {pct(overlay, 50):6.1f}  "
        f"p95 {pct(overlay, 95):6.1f} ms  (target p95 < 250 ms)"
    )
    print(
        f"    split: pipeline age (capture -> result on server) p50 {pct(ages, 50):6.1f}  p95 {pct(ages, 95):6.1f} ms; "
        f"result in page p50 {pct(arrival, 50):6.1f}  p95 {pct(arrival, 95):6.1f} ms; "
        f"result -> screen p50 {pct(overlay, 50) - pct(arrival, 50):6.1f} ms"
    )
    if errors:
        print(f"    page errors: {errors[:3]}")


# --- part 2: the hub ------------------------------------------------------------------------------


def sample_result() -> str:
    """One realistic result message: a detection frame with a few objects, encoded once."""
    objects = Detections.of(
        [
            Detection(
                (10.0 + 40 * i, 20.0 + 30 * i, 120.0 + 40 * i, 200.0 + 30 * i),
                i,
                name,
                0.9 - 0.1 * i,
                classes=(Category(i, name, name.title(), 0.9 - 0.1 * i),),
            )
            for i, name in enumerate(("person", "cup", "laptop", "chair"))
        ]
    )
    result = FrameResult(
        640,
        480,
        objects=objects,
        timings_ms={"decode": 1.2, "queue": 0.4, "preprocess": 2.1, "inference": 31.5, "age": 48.0},
        stream="cam",
        frame=12345,
        pts_ms=411500.0,
    )
    return wire.encode("result", result=result.to_dict())


def publisher(
    loop: asyncio.AbstractEventLoop, send: Callable[[], None], seconds: float, sent: list[float]
) -> threading.Thread:
    """A thread that schedules ``send`` on ``loop`` as fast as the loop runs them for ``seconds``."""

    def run() -> None:
        start = time.monotonic()
        count = 0
        while time.monotonic() - start < seconds:
            done = threading.Event()
            for _ in range(64):
                loop.call_soon_threadsafe(send)
            loop.call_soon_threadsafe(done.set)
            count += 64
            if not done.wait(10):
                break
        sent.extend((count, time.monotonic() - start))

    thread = threading.Thread(target=run, name="publisher", daemon=True)
    return thread


async def clients_receive(
    url: str, clients: int, skip: int, go: threading.Event, until: float
) -> tuple[list[float], list[float]]:
    """Connect ``clients`` clients; once ``go`` is set, each counts messages (after ``skip``) until quiet.

    Returns the messages each received and its rate (from ``go`` to its last message).
    """
    counts = [0] * clients
    last = [0.0] * clients
    sockets = [await connect(url, compression=None, max_size=None) for _ in range(clients)]
    try:
        for ws in sockets:
            for _ in range(skip):
                await asyncio.wait_for(ws.recv(), 10)
        go.set()
        start = time.monotonic()

        async def count(i: int) -> None:
            ws = sockets[i]
            while True:
                try:
                    await asyncio.wait_for(ws.recv(), 1.0)  # quiet for 1 s: the publisher is done
                except TimeoutError:
                    if time.monotonic() > start + until:
                        return
                    continue
                counts[i] += 1
                last[i] = time.monotonic()

        await asyncio.wait_for(asyncio.gather(*(count(i) for i in range(clients))), until + 30)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return [float(c) for c in counts], [
        c / max(1e-9, t - start) if c else 0.0 for c, t in zip(counts, last, strict=True)
    ]


def hub_run(
    make_url: Callable[[], str],
    loop: asyncio.AbstractEventLoop,
    send: Callable[[], None],
    clients: int,
    skip: int,
    seconds: float,
) -> tuple[float, float, list[float], list[float]]:
    go = threading.Event()
    sent: list[float] = []
    thread = publisher(loop, send, seconds, sent)

    def start_when_ready() -> None:
        if go.wait(60):
            thread.start()

    starter = threading.Thread(target=start_when_ready, daemon=True)
    starter.start()
    counts, rates = asyncio.run(clients_receive(make_url(), clients, skip, go, seconds))
    starter.join(70)
    thread.join(seconds + 20)
    count, took = sent
    return count / took, count, counts, rates


def hub(clients: int, seconds: float, rounds: int) -> None:
    text = sample_result()
    data = text.encode()
    runs: dict[str, list[tuple[float, float, list[float], list[float]]]] = {"streamer": [], "bare": []}
    with served(IdleSource("cam")) as (runtime, server, ours_loop), loop_thread() as bare_loop:
        runtime.start()
        hub_ = server.hub
        connections: set[ServerConnection] = set()

        async def handler(ws: ServerConnection) -> None:
            connections.add(ws)
            try:
                await ws.wait_closed()
            finally:
                connections.discard(ws)

        async def start_bare() -> Any:
            return await serve(handler, "127.0.0.1", 0, compression=None)

        bare_server = on(bare_loop, start_bare())
        port = bare_server.sockets[0].getsockname()[1]
        sides = {
            "streamer": lambda: hub_run(
                lambda: server.url.replace("http://", "ws://") + "ws",
                ours_loop,
                lambda: hub_.publish(text, "cam"),
                clients,
                1,
                seconds,
            ),
            "bare": lambda: hub_run(
                lambda: f"ws://127.0.0.1:{port}/",
                bare_loop,
                lambda: broadcast(connections, data, text=True),
                clients,
                0,
                seconds,
            ),
        }
        try:
            for round_ in range(rounds):
                order = ["streamer", "bare"] if round_ % 2 == 0 else ["bare", "streamer"]  # ABBA
                for side in order:
                    runs[side].append(sides[side]())
        finally:
            bare_server.close()
            on(bare_loop, bare_server.wait_closed())
        dropped = server.ws_dropped()

    def line(label: str, side: str) -> str:
        published = statistics.median(r[0] for r in runs[side])
        delivered = [statistics.median(r[3]) for r in runs[side]]
        worst = min(min(r[2]) / r[1] for r in runs[side])
        return (
            f"    {label}: published {published:8.0f} results/s (median of rounds), delivered per client "
            f"(median) {statistics.median(delivered):8.0f} results/s; worst client received {worst:.1%}"
        )

    total = sum(r[1] for r in runs["streamer"])
    ratios = [
        statistics.median(ours[3]) / statistics.median(bare[3])
        for ours, bare in zip(runs["streamer"], runs["bare"], strict=True)
    ]
    print(f"hub: {clients} WebSocket clients, {len(text)}-byte result, {rounds} rounds x {seconds:.0f} s a side, ABBA,")
    print("    all in this process (GIL)")
    share = 100.0 * dropped / max(1, total * clients)
    print(line("streamer hub  ", "streamer") + f"; dropped {dropped} ({share:.1f}%)")
    print(line("bare broadcast", "bare"))
    print(f"    ratio ours / bare per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"    ratio ours / bare (median of rounds): {statistics.median(ratios):.2f}  (target >= 0.9)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of latency measured")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of video before measuring")
    parser.add_argument("--clients", type=int, default=50, help="WebSocket clients of the hub")
    parser.add_argument("--hub-seconds", type=float, default=4.0, help="seconds results are published per round")
    parser.add_argument("--hub-rounds", type=int, default=6, help="rounds of each side, alternating (ABBA)")
    parser.add_argument("--skip-browser", action="store_true", help="only the hub (no Chromium here)")
    args = parser.parse_args()

    if args.skip_browser:
        print("latency: skipped (--skip-browser)")
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            print("latency: skipped (no playwright package)")
        else:
            if Path(CHROMIUM).is_file() or shutil.which(CHROMIUM):
                latency(args.duration, args.warmup)
            else:
                print(f"latency: skipped (no Chromium at {CHROMIUM})")
    hub(args.clients, args.hub_seconds, args.hub_rounds)


if __name__ == "__main__":
    main()
