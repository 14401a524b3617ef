"""The web page in a real headless Firefox (Debian's ``firefox-esr``, over Marionette) against a real server."""

from __future__ import annotations

import time

from streamer.server.app import StreamerServer
from tests.web.firefox import firefox, poll, screenshot
from tests.web.test_page import _EDGE_ALPHA, BOX, cam_server

__all__ = ["cam_server"]  # the fixture, shared with test_page.py

CARD = '.card[data-stream="cam"]'
# The page's own window, not Marionette's sandbox, so that ``window.streamer`` is the page's.
_STATE = f"""
const card = document.querySelector('{CARD}');
const video = card && card.querySelector('video');
return {{
  card: !!card,
  time: video ? video.currentTime : 0,
  width: video ? video.videoWidth : 0,
  height: video ? video.videoHeight : 0,
  drawn: (window.streamer && window.streamer.drawn.cam) || 0,
  badge: card ? (card.querySelector('.badge') || {{}}).textContent : null,
  results: card ? (card.querySelector('.results') || {{}}).textContent : null,
}};
"""


def test_firefox_shows_a_stream_and_draws_its_boxes(cam_server: StreamerServer) -> None:
    with firefox() as client:
        client.set_window_rect(width=1000, height=700)
        started = time.monotonic()
        client.navigate(cam_server.url)
        state: dict[str, object] = {}

        def ready() -> bool:
            nonlocal state
            state = client.execute_script(_STATE, sandbox=None)
            return bool(state["card"] and state["time"] > 0 and state["width"] == 320 and state["drawn"] > 0)

        deadline = time.monotonic() + 20
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        playing_s = time.monotonic() - started
        assert state["card"], state
        assert state["time"] > 0, state
        assert (state["width"], state["height"]) == (320, 240), state
        assert state["drawn"] > 0, state
        assert poll(client, f"return document.querySelector('{CARD} .badge').textContent === 'live'", 10), state
        assert poll(client, "return (window.streamer.drawn.cam || 0) > 10", 10), state
        edges = client.execute_script(
            f"return ({_EDGE_ALPHA})(arguments[0]);", script_args=[[*BOX, 320, 240]], sandbox=None
        )
        assert edges["left"] > 128 and edges["right"] > 128 and edges["bottom"] > 128, edges
        assert edges["inside"] == 0, edges  # a box, not a filled rectangle
        path = screenshot(client, "firefox")
        print(f"Firefox: video playing and boxes drawn after {playing_s:.2f} s; {state}; screenshot {path}")
