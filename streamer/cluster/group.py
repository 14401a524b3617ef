"""A camera group: the streams one Ray actor runs, with their models, trackers and event machine.

Plain Python (no Ray here): :mod:`streamer.cluster.front` runs it as a
detached, named actor; tests run it in-process. Call order::

    group = CameraGroup(config, stages="cascade")   # loads the models, starts the (empty) runtime
    group.add(spec, first_track_id=1)               # opens the source on this node
    batch = group.take(after=0, watched=["cam1"], timeout=0.5)
    # batch.items: ("result", FrameResult) | ("event", Event, snapshot JPEG or None) | ("ended", stream)
    # batch.frames: {stream: (index, pts_ms, RGB)} for the watched streams
    group.remove("cam1")                            # its open events end (in the outbox)
    group.close()

The group never writes the event store: its :class:`EventMachine` makes the
events and the front records them, with the snapshot sent along (as the
store's JPEG, a tenth of the frame's bytes) only for events that carry one.
Frames cross to the front only for the streams it says are watched, and
only each one's newest.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from streamer.cluster.outbox import Batch, Outbox
from streamer.config import Config, StreamSpec
from streamer.events.machine import Event, EventMachine
from streamer.events.store import snapshot_jpeg
from streamer.frames import Frame
from streamer.inference.backend import ModelInfo
from streamer.results import FrameResult
from streamer.runtime import Runtime

__all__ = ["CameraGroup", "group_config"]

log = logging.getLogger(__name__)


class CameraGroup:
    """See the module. ``config`` without ``[[streams]]`` (the front places them); ``events``: make
    events (``None``: as ``[storage] events`` says, where objects are tracked). ``clock``: unix seconds,
    the events' times. Every method is safe from any thread (Ray calls them concurrently)."""

    def __init__(
        self,
        config: Config,
        *,
        stages: str | None = None,
        events: bool | None = None,
        outbox: int = 2048,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = group_config(config)
        self.runtime = Runtime(config, stages=stages, events=False)
        self.outbox = Outbox(outbox)
        self._clock = clock
        self._lock = threading.Lock()
        self._specs: dict[str, StreamSpec] = {}
        self._watched: frozenset[str] = frozenset()
        self._tracks: dict[str, int] = {}  # per stream: the highest track id reported
        tracked = self.runtime.detects and bool(config["tracking.enabled"])
        self._machine = EventMachine() if tracked and (config["storage.events"] if events is None else events) else None
        self.runtime.subscribe(self._on_result)
        self.runtime.subscribe_frames(self._on_frame, wanted=lambda stream: stream in self._watched)
        self.runtime.subscribe_ends(self._on_end)
        self.runtime.start()

    # the runtime's threads

    def _on_result(self, result: FrameResult, frame: Frame) -> None:
        ids = result.objects.track_ids
        with self._lock:
            if ids is not None and len(ids):
                top = int(ids.max())
                if top > self._tracks.get(result.stream, 0):
                    self._tracks[result.stream] = top
            events = self._machine.update(result, self._clock()) if self._machine is not None else []
        self.outbox.put(("result", result))
        for event in events:
            self.outbox.put(("event", event, snapshot_jpeg(frame.image) if event.snapshot else None))

    def _on_frame(self, frame: Frame) -> None:
        if frame.stream_id in self._watched:
            self.outbox.frame(frame.stream_id, (frame.index, frame.pts_ms, frame.image))

    def _on_end(self, stream: str) -> None:
        self._end_events(stream)
        self.outbox.put(("ended", stream))

    def _end_events(self, stream: str) -> None:
        with self._lock:
            events = self._machine.end_stream(stream, self._clock()) if self._machine is not None else []
        for event in events:
            self.outbox.put(("event", event, None))

    # the front's calls

    def ready(self) -> dict[str, Any]:
        """Where the group runs (``host``, ``pid``, the Ray ``node_id`` when it runs as an actor) and the
        ``provider`` its models run on, once they are loaded (the front waits on this)."""
        ray = sys.modules.get("ray")  # loaded in a Ray worker; never imported here
        node_id = ray.get_runtime_context().get_node_id() if ray is not None and ray.is_initialized() else None
        return {"provider": self.runtime.provider, "host": socket.gethostname(), "pid": os.getpid(), "node_id": node_id}

    def add(self, spec: StreamSpec, *, first_track_id: int = 1) -> None:
        """Open ``spec``'s source here and run it; its track ids start at ``first_track_id``."""
        self.runtime.add_stream(spec, first_track_id=first_track_id)
        with self._lock:
            self._specs[spec.id] = spec

    def remove(self, stream: str) -> bool:
        """Stop ``stream``; its open events end. ``False``: it is not here."""
        if not self.runtime.remove_stream(stream):
            return False
        with self._lock:
            self._specs.pop(stream, None)
            self._tracks.pop(stream, None)
        self.outbox.forget(stream)
        self._end_events(stream)
        return True

    def specs(self) -> list[StreamSpec]:
        """The streams this group runs (a restarted front re-attaches with these)."""
        with self._lock:
            return list(self._specs.values())

    def open_events(self) -> list[Event]:
        """The events open now, each as its last state (see :meth:`EventMachine.open_events`)."""
        with self._lock:
            return self._machine.open_events() if self._machine is not None else []

    def set_detect(self, stream: str, on: bool) -> bool:
        return self.runtime.set_detect(stream, on)

    def take(self, after: int, watched: Sequence[str] = (), timeout: float = 0.5) -> Batch:
        """What came after item ``after`` (see :class:`Outbox`), with the streams' stats and highest track
        ids in ``info``; ``watched``: the streams whose frames the front wants from now on."""
        watched_now = frozenset(watched)
        for stream in self._watched - watched_now:
            self.outbox.forget(stream)
        self._watched = watched_now
        batch = self.outbox.take(after, timeout)
        with self._lock:
            tracks = dict(self._tracks)
        info = {"stats": self.runtime.stats(), "tracks": tracks}
        return replace(batch, info=info)

    def stats(self) -> list[dict[str, Any]]:
        return self.runtime.stats()

    def models(self) -> list[ModelInfo]:
        return self.runtime.models()

    def reload(self, config: Config) -> list[ModelInfo]:
        """Load ``config``'s models beside the running ones and switch (see :meth:`Runtime.reload`)."""
        return self.runtime.reload(group_config(config))

    def classify(self, images: Sequence[np.ndarray], detect: bool = True) -> list[FrameResult]:
        """One-off images, batched beside this group's streams."""
        return self.runtime.classify(images, detect=detect).result()

    def close(self) -> None:
        """Stop every stream (their open events end in the outbox) and release the models."""
        self.runtime.stop()


def group_config(config: Config) -> Config:
    """``config`` as a camera group gets it: without ``[[streams]]`` (the front places each stream on one
    group) and without what only the front uses and no group should hold: the server's token, ``[mqtt]``
    (its password) and the cluster's address."""
    kept = {
        key: value
        for key, value in config.values.items()
        if key not in ("streams", "token", "cluster.ray") and not key.startswith("mqtt.")
    }
    return replace(config, values=kept)
