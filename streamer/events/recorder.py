"""The event recorder: the thin thread between the runtime's results and the event store.

Call order::

    recorder = EventRecorder(store, publish=..., on_event=...)
    recorder.start()                      # ends events a previous run left open, starts the thread
    recorder.on_result(result, frame)     # on the dispatcher thread, per result; never blocks, never raises
    recorder.put(event, frame)            # or: events made elsewhere (a Ray camera group)
    recorder.end_stream(stream)           # when a stream stops
    recorder.close()                      # ends the open events, drains the queue, stops the thread
    store.close()                         # the store's owner closes it, not the recorder

``on_result`` runs the pure :class:`EventMachine` at once (cheap, and its
state then sees every result) and queues only the events, each with its
frame when the event needs it (a snapshot, or ``on_event``). The thread
records each event (``store.record``), then calls ``publish(event)`` (the row
is committed by then) and ``on_event(event, frame)``. A failing write (disk
full, ...) is logged and counted in ``failed``; the recorder goes on.
When the queue is full the oldest event is dropped and counted in
``dropped``; ends (``end_stream``, ``close``) are never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection

from streamer.events.machine import Event, EventMachine
from streamer.events.store import EventStore
from streamer.frames import Frame
from streamer.results import FrameResult

__all__ = ["EventRecorder"]

log = logging.getLogger(__name__)


class EventRecorder:
    """Subscribed to the runtime's results: ``on_result(result, frame)`` is called on the dispatcher thread
    and must never block it. See the module for the call order.

    ``publish``: called with each event after its row is committed (the server sends it on ``/ws``);
    ``on_event``: called with each event and its frame (the clip writer). ``None``: not called.
    ``clock``: unix seconds, the events' times. ``prune_every`` events or ``prune_interval_s`` seconds
    of ``clock``, whichever comes first, the thread applies the store's retention.
    Counters: ``recorded``, ``dropped`` (queue full), ``failed`` (a write or a callback raised).
    """

    def __init__(
        self,
        store: EventStore,
        *,
        machine: EventMachine | None = None,
        publish: Callable[[Event], None] | None = None,
        on_event: Callable[[Event, Frame], None] | None = None,
        queue_size: int = 256,
        clock: Callable[[], float] = time.time,
        prune_every: int = 1000,
        prune_interval_s: float = 3600.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"EventRecorder queue_size must be >= 1, got {queue_size}")
        self._store = store
        self._machine = EventMachine() if machine is None else machine
        self._publish = publish
        self._on_event = on_event
        self._size = queue_size
        self._clock = clock
        self._prune_every = max(1, prune_every)
        self._prune_interval_s = prune_interval_s
        self._queue: deque[tuple[Event, Frame | bytes | None]] = deque()
        self._cond = threading.Condition()
        self._last: dict[str, Frame] = {}  # each stream's latest frame, for ends without one (on_event only)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._next_prune = float("-inf")
        self._since_prune = 0
        self.dropped = 0
        self.recorded = 0
        self.failed = 0

    def pending(self) -> int:
        """Events queued and not yet recorded."""
        with self._cond:
            return len(self._queue)

    def on_result(self, result: FrameResult, frame: Frame) -> None:
        """Turn ``result`` into events and queue them. Never blocks on I/O and never raises."""
        try:
            with self._cond:
                if self._closed:
                    return
                events = self._machine.update(result, self._clock())
                if self._on_event is not None:
                    self._last[result.stream] = frame
                for event in events:
                    self._put(event, frame if event.snapshot or self._on_event is not None else None)
        except Exception:
            log.exception("event recorder: could not process a result of stream %r", result.stream)
            self.failed += 1

    def put(self, event: Event, snapshot: bytes | None = None) -> None:
        """Queue an event made elsewhere (a Ray camera group's machine) with its snapshot (a JPEG from
        :func:`~streamer.events.store.snapshot_jpeg`, when ``event.snapshot``); dropped like the others when
        the queue is full, but ends never are. ``on_event`` is not called for these (it needs the frame)."""
        with self._cond:
            if not self._closed:
                self._put(event, snapshot, keep=event.kind == "end")

    def end_stream(self, stream: str) -> None:
        """End ``stream``'s open events (queued like the others, never dropped)."""
        try:
            with self._cond:
                if self._closed:
                    return
                last = self._last.pop(stream, None)
                for event in self._machine.end_stream(stream, self._clock()):
                    self._put(event, last, keep=True)
        except Exception:
            log.exception("event recorder: could not end stream %r", stream)
            self.failed += 1

    def _put(self, event: Event, frame: Frame | bytes | None, *, keep: bool = False) -> None:
        """Queue one event (the lock is held). Full: drop the oldest, unless ``keep`` (ends)."""
        if not keep and len(self._queue) >= self._size:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((event, frame))
        self._cond.notify()

    def start(self, *, keep_open: Collection[str] = ()) -> None:
        """End the events a previous run left open, but those of the streams in ``keep_open`` (still
        running on a Ray camera group), then start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError("EventRecorder.start() was already called")
        try:
            closed = self._store.end_open(keep=keep_open)
            if closed:
                log.info("event recorder: ended %d events left open by a previous run", closed)
        except Exception:
            log.exception("event recorder: could not end the events left open by a previous run")
            self.failed += 1
        self._thread = threading.Thread(target=self._run, name="event-recorder", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """End every open event, record everything queued and stop the thread (waiting up to ``timeout``
        seconds; without :meth:`start`, records on the caller's thread). Results after this are ignored.
        Does not close the store: its owner does, after this."""
        with self._cond:
            if self._closed:
                return
            try:
                for event in self._machine.end_all(self._clock()):
                    self._put(event, self._last.get(event.after.stream), keep=True)
            except Exception:
                log.exception("event recorder: could not end the open events")
                self.failed += 1
            self._closed = True
            self._last.clear()
            self._cond.notify_all()
        if self._thread is None:
            self._run()
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("event recorder: %d events still queued after %.1f s", self.pending(), timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return
                event, frame = self._queue.popleft()
            self._handle(event, frame)
            self._maybe_prune()

    def _handle(self, event: Event, frame: Frame | bytes | None) -> None:
        snapshot = None
        if event.snapshot and frame is not None:
            snapshot = frame if isinstance(frame, bytes) else frame.image
        try:
            self._store.record(event, snapshot)
        except Exception as error:  # disk full, database locked, ...: count it and go on
            log.error("event recorder: could not record event %s of stream %r: %s", event.id, event.after.stream, error)
            self.failed += 1
            return
        self.recorded += 1
        self._since_prune += 1
        if self._publish is not None:
            self._call("publish", event, self._publish, event)
        if self._on_event is not None and isinstance(frame, Frame):
            self._call("on_event", event, self._on_event, event, frame)

    def _call(self, name: str, event: Event, function: Callable[..., None], *args: object) -> None:
        try:
            function(*args)
        except Exception:
            log.exception("event recorder: %s failed for event %s", name, event.id)
            self.failed += 1

    def _maybe_prune(self) -> None:
        now = self._clock()
        if self._since_prune < self._prune_every and now < self._next_prune:
            return
        self._since_prune = 0
        self._next_prune = now + self._prune_interval_s
        try:
            removed = self._store.prune(now)
            if removed:
                log.info("event recorder: retention removed %d events", removed)
        except Exception as error:
            log.error("event recorder: retention failed: %s", error)
            self.failed += 1
