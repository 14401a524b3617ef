"""The web page in a real headless Chromium against a real server: video over WebRTC, results drawn over it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.config import StreamSpec, load_config
from streamer.events import Event, EventState
from streamer.results import Category, Detection, Detections, FrameResult, Label
from streamer.runtime import Runtime
from streamer.server.app import ServerConfig, StreamerServer
from tests import netns
from tests.media import clip_frame, photo
from tests.rtsp import RtspServer, rtsp_clip
from tests.web.browser import chromium, running, screenshot, stoppable, unavailable
from tests.web.conftest import ENVIRON, INNER, staged

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
BOX = (40.0, 30.0, 200.0, 180.0)  # in the 320x240 source's pixels


def test_page_in_a_network_namespace(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The page's other tests, run by a child pytest inside a fresh network namespace with only ``lo`` up.

    Chromium, Playwright's driver and the server all run in there, so no packet can leave the host;
    the namespace is deleted afterwards. Not permitted here (not root): skips, or fails when
    ``STREAMER_REQUIRE_ALL=1``.
    """
    root = request.config.rootpath
    targets = request.config.stash.get(INNER, []) or [str(Path(__file__).parent.relative_to(root))]
    report = tmp_path / "child.xml"
    argv = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'tmp'}"]
    argv += [f"--junitxml={report}", *targets]
    started = time.monotonic()
    try:
        with netns.namespace() as name:
            child = subprocess.Popen(
                netns.exec_args(name, argv),
                cwd=root,
                env={**ENVIRON, netns.ENV: name},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                output, _ = child.communicate(timeout=540)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                output, _ = child.communicate()
                pytest.fail(f"the page's tests in network namespace {name} ran past 540 s:\n{output}")
    except netns.Unavailable as exc:
        unavailable(f"the page's tests run in a network namespace of their own: {exc}")
    elapsed = time.monotonic() - started
    if child.returncode != 0:
        pytest.fail(f"the page's tests in network namespace {name} failed ({child.returncode}):\n{output}")
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    ran, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    print(output)
    print(f"{ran} test(s) in network namespace {name}, {elapsed:.1f} s with its making and deletion")
    if ran == 0 or skipped == ran:
        reasons = sorted({s.get("message", "") for s in suite.iter("skipped")})
        pytest.skip(f"the page's tests skipped in their network namespace: {reasons}")


def _wait(page: Any, expression: str, timeout_s: float = 20) -> None:
    page.wait_for_function(expression, timeout=timeout_s * 1000, polling=100)


@pytest.fixture
def cam_server(runtime: Runtime) -> Iterator[StreamerServer]:
    """A server whose stream "cam" gets clip frames at 15 fps, each with a result holding one box."""

    def result(i: int, pts_ms: float) -> FrameResult:
        return FrameResult(
            320,
            240,
            objects=Detections.of([Detection(BOX, 41, "cup", 0.9)]),
            timings_ms={"decode": 1.0, "queue": 0.5, "preprocess": 1.0, "inference": 5.0, "age": 12.0},
            stream="cam",
            frame=i,
            pts_ms=pts_ms,
        )

    with (
        staged(runtime, "cam"),
        running(lambda: StreamerServer(ServerConfig(port=0), runtime)) as server,
        _fed(server, result),
    ):
        yield server


# The canvas pixels around the middle of the box's left and top edges, scaled to the displayed picture.
_EDGE_ALPHA = """([x1, y1, x2, y2, w, h]) => {
  const video = document.querySelector('.card[data-stream="cam"] video');
  const canvas = document.querySelector('.card[data-stream="cam"] canvas');
  const ratio = canvas.width / video.clientWidth;
  const scale = Math.min(video.clientWidth / w, video.clientHeight / h);
  const ox = (video.clientWidth - w * scale) / 2, oy = (video.clientHeight - h * scale) / 2;
  const ctx = canvas.getContext("2d");
  const around = (x, y) => {
    const px = Math.round(x * ratio) - 3, py = Math.round(y * ratio) - 3;
    const data = ctx.getImageData(px, py, 7, 7).data;
    let max = 0;
    for (let i = 3; i < data.length; i += 4) max = Math.max(max, data[i]);
    return max;
  };
  const midY = oy + ((y1 + y2) / 2) * scale, midX = ox + ((x1 + x2) / 2) * scale;
  return {
    left: around(ox + x1 * scale, midY),
    right: around(ox + x2 * scale, midY),
    bottom: around(midX, oy + y2 * scale),
    inside: around(ox + ((x1 + x2) / 2) * scale, midY),
  };
}"""


def test_the_page_shows_a_stream_and_draws_its_boxes(cam_server: StreamerServer) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        started = time.monotonic()
        page.goto(cam_server.url)
        page.wait_for_selector('.card[data-stream="cam"]', timeout=10_000)
        video = '.card[data-stream="cam"] video'
        _wait(page, f"document.querySelector('{video}').currentTime > 0")
        playing_s = time.monotonic() - started
        assert page.eval_on_selector(video, "v => v.videoWidth") == 320
        assert page.eval_on_selector(video, "v => v.videoHeight") == 240
        _wait(page, "(window.streamer.drawn.cam || 0) > 10")
        _wait(page, "document.querySelector('.card[data-stream=\"cam\"] .badge').textContent === 'live'", 10)
        edges = page.evaluate(_EDGE_ALPHA, [*BOX, 320, 240])
        assert edges["left"] > 128 and edges["right"] > 128 and edges["bottom"] > 128, edges
        assert edges["inside"] == 0, edges  # a box, not a filled rectangle
        assert page.evaluate("window.streamer.results.cam.length") > 0
        # The overlay's offset is measured from the frames' RTP timestamps and shown in the header.
        _wait(page, "window.streamer.offsets.cam !== undefined", 10)
        offset = page.evaluate("window.streamer.offsets.cam")
        assert abs(offset) < 500, offset
        stats = page.text_content('.card[data-stream="cam"] .stats') or ""
        assert "fps" in stats and "age 12 ms" in stats and "overlay" in stats, stats
        assert "cup 90%" in (page.text_content('.card[data-stream="cam"] .results') or "")
        path = screenshot(page, "page")
        print(f"video playing after {playing_s:.2f} s; overlay offset {offset:.1f} ms; screenshot {path}")
        assert not errors, errors


def _y4m(path: Path, picture: np.ndarray, frames: int = 30) -> Path:
    """A 320x240 15 fps Y4M clip panning across ``picture``, for Chromium's fake camera."""
    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            rgb = clip_frame(picture, i, frames, (320, 240))
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def test_the_browser_camera_is_classified_and_drawn(tmp_path: Path, runtime: Runtime) -> None:
    clip = _y4m(tmp_path / "coffee.y4m", photo("coffee"))

    def make() -> StreamerServer:
        return StreamerServer(ServerConfig(port=0), runtime)

    fake_camera = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
    )
    with running(make) as started, chromium(fake_camera) as browser:
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(started.url)
        page.wait_for_selector("#camera-button", timeout=10_000)
        _wait(page, "document.querySelector('#connection').textContent === 'connected'", 10)
        clicked = time.monotonic()
        page.click("#camera-button")
        _wait(page, "(window.streamer.results['browser-1'] || []).length > 0", 30)
        first_result_s = time.monotonic() - clicked
        _wait(page, "(window.streamer.drawn['browser-1'] || 0) > 0", 10)
        assert page.eval_on_selector('.card[data-stream="browser-1"] video', "v => v.videoWidth") == 320
        names = page.evaluate(
            "window.streamer.results['browser-1'].flatMap(r => r.classes.slice(0, 2).map(c => c.name))"
        )
        assert set(names) & {"espresso", "cup", "coffee mug"}, names
        badge = '.card[data-stream="browser-1"] .badge'
        _wait(page, f"document.querySelector('{badge}').textContent === 'live'", 10)
        path = screenshot(page, "camera")
        print(f"first camera result {first_result_s:.2f} s after the click; screenshot {path}")
        assert not errors, errors


def test_the_page_passes_its_token_on(runtime: Runtime) -> None:
    """With ``?token=`` in the page's address the WebSocket and /api/streams are authorised."""
    config = ServerConfig(port=0, token="s3cret")
    with (
        staged(runtime, "cam"),
        running(lambda: StreamerServer(config, runtime)) as server,
        chromium() as browser,
    ):
        page = browser.new_page()
        page.goto(server.url + "?token=s3cret")
        page.wait_for_selector('.card[data-stream="cam"]', timeout=10_000)
        _wait(page, "document.querySelector('.card[data-stream=\"cam\"] .badge').textContent === 'live'", 10)
        assert page.text_content("#connection") == "connected"


def test_the_badge_follows_the_stream_state(runtime: Runtime) -> None:
    """When a source dies its stream goes "reconnecting", then "live" again: the card's badge follows (2 s polls)."""
    badge = '.card[data-stream="cam"] .badge'

    with (
        staged(runtime, "cam") as cam,
        running(lambda: StreamerServer(ServerConfig(port=0), runtime)) as server,
        chromium() as browser,
    ):
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        page.wait_for_selector(badge, timeout=10_000)
        seen: list[str] = []
        for wanted in ("live", "reconnecting", "live"):
            cam.set_state(wanted)
            changed = time.monotonic()
            _wait(page, f"document.querySelector('{badge}').textContent === '{wanted}'", 8)
            assert page.eval_on_selector(badge, "b => b.dataset.state") == wanted
            seen.append(f"{wanted} after {time.monotonic() - changed:.2f} s")
        print("badge: " + ", ".join(seen))
        assert not errors, errors


def test_the_badge_follows_a_real_camera_killed_and_restarted(
    rtsp_server: RtspServer, tmp_path: Path, runtime: Runtime
) -> None:
    """A real RTSP camera through the real runtime: killed, the card says reconnecting; restarted, live again."""
    from streamer.sources import PyAVSource

    url = rtsp_server.start(rtsp_clip(tmp_path / "cam.mp4"), loop=True)
    badge = '.card[data-stream="cam"] .badge'
    try:
        with (
            running(lambda: StreamerServer(ServerConfig(port=0), runtime)) as server,
            chromium() as browser,
        ):
            runtime.add_source(PyAVSource("cam", url, open_timeout=3.0, read_timeout=2.0, backoff=(0.2, 1.0)))
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_selector(badge, timeout=20_000)
            _wait(page, f"document.querySelector('{badge}').textContent === 'live'", 20)
            rtsp_server.kill()
            _wait(page, f"document.querySelector('{badge}').textContent === 'reconnecting'", 20)
            rtsp_server.restart()
            _wait(page, f"document.querySelector('{badge}').textContent === 'live'", 30)
            _wait(page, "(window.streamer.results.cam || []).length > 0", 20)
            screenshot(page, "camera-restarted")
    finally:
        runtime.remove_stream("cam")


# --- objects over time: tracks, settled labels, zones and lines, events ----------------------------

ZONE = [[0.7, 0.55], [0.95, 0.55], [0.95, 0.95], [0.7, 0.95]]  # right of BOX, in 0..1 of the picture
COUNTS = {"zones": {"door": {"cup": 2}}, "lines": {"gate": {"in": {"cup": 3}, "out": {}}}}
ESPRESSO = Category(967, "espresso", "Espresso", 0.4)
SETTLED = Label(967, "espresso", "Espresso", 0.91, 4, 5)


def _tracked_result(i: int, pts_ms: float) -> FrameResult:
    """One tracked cup with a settled label, two tentative motorbikes, whole-frame classes, the counts."""
    objects = [
        Detection(BOX, 41, "cup", 0.9, (ESPRESSO,), track_id=12, label=SETTLED, zones=()),
        Detection((250.0, 10.0, 300.0, 60.0), 3, "motorbike", 0.51),
        Detection((252.0, 12.0, 302.0, 62.0), 3, "motorbike", 0.49),
    ]
    return FrameResult(
        320,
        240,
        classes=(Category(504, "coffee_mug", "coffee mug", 0.7),),
        objects=Detections.of(objects),
        timings_ms={"age": 12.0},
        stream="cam",
        frame=i,
        pts_ms=pts_ms,
        counts=COUNTS,
    )


@contextmanager
def _fed(server: StreamerServer, make: Callable[[int, float], FrameResult]) -> Iterator[None]:
    """Feed "cam" clip frames at 15 fps, each with ``make(i, pts_ms)``'s result, for the block."""
    stop = threading.Event()

    def feed() -> None:
        picture, start = photo(), time.monotonic()
        for i in range(100_000):
            if stop.wait(max(0.0, start + i / 15 - time.monotonic())):
                return
            pts_ms = i * 1000 / 15
            server.publish_frame("cam", clip_frame(picture, i % 60, 60, (320, 240)), pts_ms)
            server.publish_result(make(i, pts_ms))

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        feeder.join(5)


@pytest.fixture
def zoned_runtime(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """The runtime, its stream "cam" listed with a zone "door" and a line "gate" (as a spec's would be)."""
    stats = runtime.stats

    def with_zones() -> list[dict[str, Any]]:
        rows = stats()
        for row in rows:
            if row["stream"] == "cam":
                row["zones"] = [{"name": "door", "polygon": ZONE, "classes": []}]
                row["lines"] = [{"name": "gate", "start": [0.05, 0.9], "end": [0.6, 0.9], "classes": []}]
                row["counts"] = COUNTS
        return rows

    monkeypatch.setattr(runtime, "stats", with_zones)
    return runtime


# The canvas's largest alpha (and its colour) around a point given in 0..1 of the picture.
_TINT_AT = """([fx, fy]) => {
  const video = document.querySelector('.card[data-stream="cam"] video');
  const canvas = document.querySelector('.card[data-stream="cam"] canvas');
  const ratio = canvas.width / video.clientWidth;
  const scale = Math.min(video.clientWidth / video.videoWidth, video.clientHeight / video.videoHeight);
  const w = video.videoWidth * scale, h = video.videoHeight * scale;
  const x = (video.clientWidth - w) / 2 + fx * w, y = (video.clientHeight - h) / 2 + fy * h;
  const data = canvas.getContext("2d").getImageData(Math.round(x * ratio) - 2, Math.round(y * ratio) - 2, 5, 5).data;
  let best = [0, 0, 0, 0];
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > best[3]) best = Array.from(data.slice(i, i + 4));
  return best;
}"""


def test_tracked_objects_zones_and_lines_are_drawn(zoned_runtime: Runtime) -> None:
    with (
        staged(zoned_runtime, "cam"),
        running(lambda: StreamerServer(ServerConfig(port=0), zoned_runtime)) as server,
        _fed(server, _tracked_result),
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        page.wait_for_selector('.card[data-stream="cam"]', timeout=10_000)
        _wait(page, "(window.streamer.drawn.cam || 0) > 5")
        labels = page.evaluate("window.streamer.labels.cam")
        assert "#12 cup · Espresso 91%" in labels, labels  # the settled label, not this frame's 40%
        assert "motorbike 51%" in labels and "motorbike 49%" in labels, labels
        # Each tracked object once, the untracked grouped with a count.
        _wait(page, "document.querySelector('.card[data-stream=\"cam\"] .results li') !== null", 10)
        line = page.text_content('.card[data-stream="cam"] .results li .what') or ""
        assert "#12 cup · Espresso 91%" in line and "motorbike \u00d72 51%" in line, line
        # The zone is a translucent fill: tinted inside, not opaque; its count is written under the video.
        _wait(page, "window.streamer.zones.cam === 2", 10)
        r, g, b, alpha = page.evaluate(_TINT_AT, [0.85, 0.8])
        assert 20 < alpha < 128 and r > b, (r, g, b, alpha)
        assert page.evaluate(_TINT_AT, [0.3, 0.6])[3] == 0, "outside the zone and the boxes: clear"
        counts = page.text_content('.card[data-stream="cam"] .counts') or ""
        assert "door: 2 (cup 2)" in counts and "gate: in 3 · out 0" in counts, counts
        # The whole-frame classes toggle shows the classes; the boxes stay.
        before = page.evaluate("window.streamer.drawn.cam")
        page.check("#show-classes")
        _wait(page, f"window.streamer.drawn.cam > {before + 5}", 10)
        assert "#12 cup · Espresso 91%" in page.evaluate("window.streamer.labels.cam")
        edges = page.evaluate(_EDGE_ALPHA, [*BOX, 320, 240])
        assert edges["left"] > 128 and edges["right"] > 128 and edges["bottom"] > 128, edges
        _wait(
            page,
            "document.querySelector('.card[data-stream=\"cam\"] .results li .what').textContent"
            ".includes('coffee mug 70%')",
            10,
        )
        screenshot(page, "page-tracked")
        assert not errors, errors


def test_a_single_stream_uses_the_width_and_a_card_enlarges(cam_server: StreamerServer) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(cam_server.url)
        video = '.card[data-stream="cam"] video'
        page.wait_for_selector(video, timeout=10_000)
        _wait(page, f"document.querySelector('{video}').videoWidth > 0")
        width = page.eval_on_selector(video, "v => v.getBoundingClientRect().width")
        assert width > 800, width
        # The picture keeps its shape: the element's aspect is the video's (4:3), up to the screen's height.
        height = page.eval_on_selector(video, "v => v.getBoundingClientRect().height")
        assert height <= 800, height
        page.click('.card[data-stream="cam"] .enlarge')
        assert page.eval_on_selector('.card[data-stream="cam"]', "c => c.classList.contains('enlarged')")
        page.click('.card[data-stream="cam"] .screen')
        assert not page.eval_on_selector('.card[data-stream="cam"]', "c => c.classList.contains('enlarged')")


def _event(kind: str, *, end: bool = False) -> Event:
    state = EventState(
        stream="cam",
        track_id=12,
        label="cup",
        sub_label=SETTLED,
        score=0.9,
        top_score=0.93,
        zones=("door",),
        entered_zones=("door",),
        first_seen=1_700_000_000.0,
        last_seen=1_700_000_042.0,
        box=BOX,
        frame_size=(320, 240),
        snapshot_score=0.9,
    )
    return Event(EVENT_ID, kind, ("zone",) if end else (), None if kind == "new" else state, state, True)


EVENT_ID = "0123456789abcdef0123456789abcdef"


def test_events_are_listed_updated_and_their_clip_asked_for(runtime: Runtime) -> None:
    item = f'#event-list li[data-id="{EVENT_ID}"]'
    with (
        staged(runtime, "cam"),
        running(lambda: StreamerServer(ServerConfig(port=0), runtime)) as server,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server.url)
        _wait(page, "document.querySelector('#connection').textContent === 'connected'", 10)
        # This runtime records no events: the list says so rather than failing.
        _wait(page, "document.querySelector('#events-empty').textContent.includes('no events')", 10)
        server.publish_event(_event("new"))
        page.wait_for_selector(item, timeout=10_000)
        src = page.eval_on_selector(f"{item} img.thumb", "img => img.getAttribute('src')")
        assert src.startswith(f"/api/events/{EVENT_ID}/snapshot.jpg"), src
        text = page.text_content(item) or ""
        assert "cup · Espresso 91%" in text and "cam #12" in text and "door" in text and "ongoing" in text, text
        server.publish_event(_event("end", end=True))
        _wait(page, f"document.querySelector('{item}').dataset.state === 'ended'", 10)
        assert page.locator("#event-list li").count() == 1, "updated in place"
        assert "42 s" in (page.text_content(item) or "")
        page.click(item)
        _wait(page, "document.querySelector('#player').open", 10)
        _wait(page, "document.querySelector('#player-note').textContent.includes('clip')", 10)
        assert page.eval_on_selector("#player-video", "v => getComputedStyle(v).display") == "none", "no player"
        screenshot(page, "page-events")
        assert not errors, errors


def test_a_recorded_event_plays_its_clip(tmp_path: Path, cache_dir: Path) -> None:
    """A real file through the detector and tracker; the page lists its recorded events and plays a clip."""
    overrides = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "detect", "storage.dir": str(tmp_path)}
    runtime = Runtime(load_config(env={}, overrides=overrides))
    runtime.start()
    try:
        runtime.add_stream(StreamSpec(id="street", source=str(SAMPLES / "street.mp4"), realtime=False))
        assert runtime.wait(60), "the file ends"
        store = runtime.events
        assert store is not None
        for _ in range(300):  # the clip writer works on its own thread: bounded, 30 s
            recorded = store.query(stream="street")
            if recorded and all(e["has_clip"] for e in recorded):
                break
            time.sleep(0.1)
        clipped = [e for e in recorded if e["has_clip"]]
        assert clipped, recorded
        item = f'#event-list li[data-id="{clipped[0]["id"]}"]'
        with running(lambda: StreamerServer(ServerConfig(port=0), runtime)) as server, chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url)
            page.wait_for_selector(item, timeout=10_000)
            _wait(page, f"document.querySelector('{item} img.thumb').naturalWidth === 640", 10)
            page.click(item)
            _wait(page, "document.querySelector('#player').open", 10)
            _wait(page, "document.querySelector('#player-video').readyState >= 2", 20)
            assert page.eval_on_selector("#player-video", "v => v.videoWidth") == 640
            page.eval_on_selector("#player-video", "v => { v.muted = true; return v.play(); }")
            _wait(page, "document.querySelector('#player-video').currentTime > 0.2", 20)
            screenshot(page, "page-clip")
            assert not errors, errors
    finally:
        runtime.stop()


_OVERLAY_ALPHA = """() => {
  const canvas = document.querySelector('.card[data-stream="cam"] canvas');
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let max = 0;
  for (let i = 3; i < data.length; i += 4) max = Math.max(max, data[i]);
  return max;
}"""


def test_the_cards_go_offline_when_the_server_stops_and_back_when_it_returns(runtime: Runtime) -> None:
    badge = '.card[data-stream="cam"] .badge'
    with staged(runtime, "cam"), stoppable(lambda: StreamerServer(ServerConfig(port=0), runtime)) as (server, stop):
        port = int(server.url.rstrip("/").rsplit(":", 1)[1])
        with _fed(server, lambda i, pts_ms: _tracked_result(i, pts_ms)), chromium() as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(server.url)
            _wait(page, f"document.querySelector('{badge}')?.textContent === 'live'", 10)
            _wait(page, "(window.streamer.drawn.cam || 0) > 3")
            assert page.evaluate(_OVERLAY_ALPHA) > 0
            stop()
            _wait(page, f"document.querySelector('{badge}').textContent === 'offline'", 10)
            assert page.eval_on_selector('.card[data-stream="cam"]', "c => c.classList.contains('offline')")
            assert page.evaluate(_OVERLAY_ALPHA) == 0, "the boxes are gone with the results"
            # A server on the same address again: the page reconnects and the card is live.
            with (
                running(lambda: StreamerServer(ServerConfig(port=port), runtime)) as again,
                _fed(again, _tracked_result),
            ):
                _wait(page, f"document.querySelector('{badge}')?.textContent === 'live'", 20)
                _wait(page, "!document.querySelector('.card[data-stream=\"cam\"]').classList.contains('offline')", 10)
                _wait(page, "(window.streamer.results.cam || []).length > 0", 10)
            assert not errors, errors
