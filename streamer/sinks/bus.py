"""streamer's state on the MQTT bus, in topics close to Frigate's; Home Assistant discovers the streams.

::

    <prefix>/available                 online | offline (retained; the broker's last will says offline)
    <prefix>/events                    {"type": "new" | "update" | "end", "before": {...}, "after": {...}}
    <prefix>/<stream>/<label>          tracked objects of that label in the stream now (retained)
    <prefix>/<zone>/<label>            ... in that zone (retained)
    <prefix>/<stream>/<label>/snapshot the JPEG of the newest event of that label (retained)
    <prefix>/<stream>/state            the source's state: live, reconnecting, ended, failed (retained)
    <prefix>/<stream>/fps              frames inferred a second, every ``interval_s``
    <prefix>/<stream>/detect/set       ON | OFF: resume or pause inference on the stream (a command)
    <prefix>/<stream>/detect/state     its state, echoed (retained)

Call order (the runtime does it)::

    bus = Bus(publisher, stats=runtime.stats, set_detect=runtime.set_detect, snapshot=store.snapshot)
    bus.start()                                  # commands subscribed, a thread for states and fps
    bus.stream_added("door", labels, zones)      # Home Assistant discovery (retained), detect state
    bus.on_result(result, frame)                 # dispatcher thread: counts, when they change
    bus.on_event(event)                          # recorder thread: the event, a new snapshot
    bus.stream_removed("door")                   # its entities removed, its counts cleared
    bus.close()

Nothing here blocks: the publisher queues (a slow or dead broker costs
``update`` events and fps first, counted in its ``dropped``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from streamer.events.machine import Event
from streamer.frames import Frame
from streamer.results import FrameResult
from streamer.sinks.homeassistant import discovery, removal
from streamer.sinks.mqtt import MqttPublisher, topic_part

__all__ = ["Bus"]

log = logging.getLogger(__name__)


class Bus:
    """See the module. ``labels`` of a stream are the detector classes it gets Home Assistant entities for."""

    def __init__(
        self,
        publisher: MqttPublisher,
        *,
        stats: Callable[[], list[dict[str, Any]]],
        set_detect: Callable[[str, bool], bool],
        snapshot: Callable[[str], bytes | None] | None = None,
        discovery_prefix: str | None = "homeassistant",
        interval_s: float = 5.0,
    ) -> None:
        self.publisher = publisher
        self.prefix = publisher.config.topic_prefix
        self._stats = stats
        self._set_detect = set_detect
        self._snapshot = snapshot
        self._discovery_prefix = discovery_prefix
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}  # topic head (stream or zone) -> label -> count sent
        self._zones: dict[str, set[str]] = {}  # stream -> its zones (their counts are cleared with it)
        self._entities: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # stream -> labels, zones
        self._states: dict[str, str] = {}
        self._inferred: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqtt-states", daemon=True)

    def _topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *(topic_part(p) for p in parts)))

    # --- lifecycle ---

    def start(self) -> None:
        self.publisher.subscribe(f"{self.prefix}/+/detect/set")
        self.publisher.start()
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.publisher.close(timeout)

    def counters(self) -> dict[str, float]:
        """For ``/metrics``: connected (1 or 0), messages sent and dropped."""
        p = self.publisher
        return {"connected": 1.0 if p.connected else 0.0, "sent": float(p.sent), "dropped": float(p.dropped)}

    # --- streams ---

    def stream_added(self, stream: str, labels: Sequence[str], zones: Sequence[str]) -> None:
        """Announce ``stream`` to Home Assistant (one device, its entities) and say its detect state."""
        with self._lock:
            self._entities[stream] = (tuple(labels), tuple(zones))
            self._zones[stream] = set(zones)
        if self._discovery_prefix is not None:
            for topic, payload in discovery(
                self.prefix, stream, labels, zones, discovery_prefix=self._discovery_prefix
            ):
                self.publisher.publish(topic, payload, retain=True)
        self.publisher.publish(self._topic(stream, "detect", "state"), "ON", retain=True)

    def stream_removed(self, stream: str) -> None:
        """Its entities removed (empty retained discovery), its retained counts and states cleared."""
        with self._lock:
            labels, zones = self._entities.pop(stream, ((), ()))
            heads = [stream, *self._zones.pop(stream, set())]
            cleared = [(head, label) for head in heads for label in self._counts.pop(head, {})]
            self._states.pop(stream, None)
            self._inferred.pop(stream, None)
        if self._discovery_prefix is not None:
            for topic, payload in removal(self.prefix, stream, labels, zones, discovery_prefix=self._discovery_prefix):
                self.publisher.publish(topic, payload, retain=True)
        for head, label in cleared:
            self.publisher.publish(self._topic(head, label), "", retain=True)
        for tail in (("state",), ("detect", "state")):
            self.publisher.publish(self._topic(stream, *tail), "", retain=True)

    # --- what happens ---

    def on_result(self, result: FrameResult, frame: Frame) -> None:
        """The stream's (and its zones') counts of tracked objects by label, published when they change."""
        objects = result.objects
        if objects.track_ids is None:
            return
        names = objects.names or tuple(str(c) for c in objects.class_ids.tolist())
        counts: dict[str, int] = {}
        for name, track in zip(names, objects.track_ids.tolist(), strict=True):
            if track >= 0:
                counts[name] = counts.get(name, 0) + 1
        changes = self._changed(result.stream, counts)
        for zone, by_class in (result.counts.get("zones") or {}).items():
            with self._lock:
                self._zones.setdefault(result.stream, set()).add(zone)
            changes += self._changed(zone, {str(k): int(v) for k, v in by_class.items()})
        for head, label, count in changes:
            self.publisher.publish(self._topic(head, label), str(count), retain=True)

    def _changed(self, head: str, counts: dict[str, int]) -> list[tuple[str, str, int]]:
        """(head, label, count) for each count that differs from the last one sent (gone labels: 0)."""
        with self._lock:
            sent = self._counts.setdefault(head, {})
            changed = [(head, label, n) for label, n in counts.items() if sent.get(label) != n]
            changed += [(head, label, 0) for label, n in sent.items() if label not in counts and n != 0]
            for _, label, n in changed:
                sent[label] = n
        return changed

    def on_event(self, event: Event) -> None:
        """``<prefix>/events``, and the event's snapshot on its label's topic when it has a new one."""
        payload = {"type": event.kind, "before": _state(event, before=True), "after": _state(event, before=False)}
        self.publisher.publish(
            f"{self.prefix}/events", json.dumps(payload, separators=(",", ":")), droppable=event.kind == "update"
        )
        if event.snapshot and self._snapshot is not None:
            jpeg = self._snapshot(event.id)
            if jpeg is not None:
                after = event.after
                self.publisher.publish(self._topic(after.stream, after.label, "snapshot"), jpeg, retain=True)

    def on_command(self, topic: str, payload: str) -> None:
        """``<prefix>/<stream>/detect/set`` ON or OFF: inference on that stream resumed or paused, echoed."""
        head, _, rest = topic.partition("/")
        stream_part, _, command = rest.partition("/")
        if head != self.prefix or command != "detect/set":
            return
        word = payload.strip().upper()
        if word not in ("ON", "OFF"):
            log.warning("mqtt: %s: %r is not ON or OFF; ignored", topic, payload[:20])
            return
        with self._lock:
            streams = [s for s in self._entities if topic_part(s) == stream_part]
        for stream in streams:
            if self._set_detect(stream, word == "ON"):
                self.publisher.publish(self._topic(stream, "detect", "state"), word, retain=True)

    # --- states and fps, every interval ---

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("mqtt: publishing stream states failed; going on")

    def tick(self) -> None:
        """Publish each stream's state when it changed, and its fps since the last tick."""
        for row in self._stats():
            stream = str(row.get("stream", ""))
            state, inferred = str(row.get("state", "")), int(row.get("inferred") or 0)
            with self._lock:
                if stream not in self._entities:
                    continue
                changed = self._states.get(stream) != state
                self._states[stream] = state
                before = self._inferred.get(stream)
                self._inferred[stream] = inferred
            if changed:
                self.publisher.publish(self._topic(stream, "state"), state, retain=True)
            if before is not None:
                fps = max(0, inferred - before) / self._interval_s
                self.publisher.publish(self._topic(stream, "fps"), f"{fps:.1f}", droppable=True)


def _state(event: Event, *, before: bool) -> dict[str, Any] | None:
    state = event.before if before else event.after
    if state is None:
        return None
    out = state.to_dict()
    out["id"] = event.id
    if not before and event.kind == "end":
        out["end_time"] = state.last_seen
    return out
