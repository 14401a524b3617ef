"""Dispatcher: callbacks off the producer's thread; exceptions never stop delivery."""

from __future__ import annotations

import threading

import pytest

from streamer.pipeline.dispatch import Dispatcher


def test_callbacks_run_in_order_on_another_thread() -> None:
    seen: list[tuple[int, str]] = []
    dispatcher: Dispatcher[int] = Dispatcher(lambda i: seen.append((i, threading.current_thread().name)), lossless=True)
    for i in range(50):
        dispatcher.put(i)
    dispatcher.close()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"dispatch"}


def test_a_raising_callback_is_logged_and_delivery_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def callback(i: int) -> None:
        if i == 2:
            raise RuntimeError("boom")
        seen.append(i)

    dispatcher: Dispatcher[int] = Dispatcher(callback, lossless=True)
    for i in range(5):
        dispatcher.put(i)
    dispatcher.close()
    assert seen == [0, 1, 3, 4] and dispatcher.errors == 1
    assert "a result callback raised" in caplog.text


def test_live_dispatcher_drops_old_items_for_a_slow_callback() -> None:
    """A callback stuck on its first item: the producer still puts all 40 (it never waits), the oldest dropped."""
    release = threading.Event()
    dispatcher: Dispatcher[int] = Dispatcher(lambda i: release.wait(30), capacity=2)
    producer = threading.Thread(target=lambda: [dispatcher.put(i) for i in range(40)])
    producer.start()
    producer.join(30)
    stuck = producer.is_alive()
    release.set()
    dispatcher.close()
    assert not stuck, "the producer never waits"
    assert dispatcher.dropped >= 36
