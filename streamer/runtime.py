"""The Runtime: sources, the inference core, delivery and sinks, built from config and run as one.

Call order::

    runtime = Runtime(config, streams=[StreamSpec(id="cam1", source="rtsp://...")])
    runtime.subscribe(on_result)          # before start: (result, frame) on a dispatcher thread
    runtime.start()
    runtime.add_stream(StreamSpec(id="door", source="door.mp4", loop=True))   # while running
    runtime.classify([image]).result()    # one-off images, scheduled beside the streams
    runtime.reload()                      # new [classifier]/[detector] models, swapped between batches
    runtime.remove_stream("cam1")
    runtime.stop()

With ``stages`` ``detect`` or ``cascade`` every stream's objects are
tracked (``[tracking]``; each stream's hook is a
:class:`~streamer.tracking.ObjectTracker` with its zones and lines), and
``events`` (default ``[storage] events``) records them in the event store
(``runtime.events``); :meth:`subscribe_events` sees each recorded event.

The CLI's ``run`` and ``serve`` and the server's REST API use only this
class; none of them wires sources, loop and callbacks by hand.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from streamer.config import Config, StreamSpec
from streamer.errors import StreamExistsError
from streamer.events import Event, EventRecorder, EventStore
from streamer.events.clips import Clips, follow_event
from streamer.events.encoder import FrameClipEncoder
from streamer.frames import Frame
from streamer.inference.backend import LocalBackend, ModelInfo, Request
from streamer.pipeline.pipeline import Pipeline
from streamer.results import FrameResult
from streamer.sinks.bus import Bus
from streamer.sinks.mqtt import MqttConfig, MqttPublisher
from streamer.sources import Source, SourceState, open_source
from streamer.sources.pyav import PyAVSource
from streamer.subscribers import Subscribers
from streamer.tracking.objects import ObjectTracker
from streamer.tracking.zones import geometry

__all__ = ["Runtime", "mqtt_bus"]


class Runtime(Subscribers):
    """Owns the backend (models), the pipeline (sources, inference loop, dispatcher) and the subscribers.

    ``stages`` overrides the config's; ``streams`` add to its ``[[streams]]``
    (:meth:`add_source` adds ready-made readers). ``lossless``: deliver
    every result of a file in order (``run`` on files). ``max_batch`` and
    ``max_frame_age_ms`` default to ``[server]``'s. ``reread`` gives the config
    :meth:`reload` reads (``None``: the one given here). ``events`` records
    events (``None``: as ``[storage] events`` says; only where objects are tracked).
    ``mqtt`` publishes events, counts and states to that broker (``runtime.bus``).
    """

    def __init__(
        self,
        config: Config,
        *,
        stages: str | None = None,
        streams: Sequence[StreamSpec] = (),
        lossless: bool = False,
        max_batch: int | None = None,
        max_frame_age_ms: float | None = None,
        reread: Callable[[], Config] | None = None,
        events: bool | None = None,
        mqtt: MqttConfig | None = None,
    ) -> None:
        self.config = config
        self._stages = stages or config["stages"]
        self._reread = reread
        super().__init__()
        self._on_end: list[Callable[[str], None]] = []
        self._specs: dict[str, StreamSpec] = {}
        self._track_ids: dict[str, Iterator[int]] = {}  # per stream id, for the run: ids are never reused
        self._counts: dict[str, Any] = {}
        self._tracking = config.tracking_config()
        tracks = self._stages != "classify" and bool(config["tracking.enabled"])
        self.backend = LocalBackend(config.cascade_config(stages=self._stages), hooks=self._hook if tracks else None)
        self.events: EventStore | None = None
        self._recorder: EventRecorder | None = None
        self._clips: Clips | None = None  # clips of the streams with packets: remuxed
        self._frame_clips: FrameClipEncoder | None = None  # of the others (cameras): encoded
        self._packets: set[str] = set()  # the streams whose packets reach self._clips
        if tracks and (config["storage.events"] if events is None else events):
            self.events = store = config.event_store()
            if config["storage.clips"]:
                clip = config.clip_config()
                self._clips = Clips(store.clips_dir, clip, on_done=store.attach_clip)
                self._frame_clips = FrameClipEncoder(store.clips_dir, clip, on_done=store.attach_clip)
            self._recorder = EventRecorder(
                store, publish=self._event, on_event=self._clip if self._clips is not None else None
            )
            self._on_result.append(self._recorder.on_result)
        self.bus: Bus | None = None
        if mqtt is not None:
            self.bus = bus = mqtt_bus(config, mqtt, self.stats, self.set_detect, self.events)
            self._on_result.append(bus.on_result)
            self._on_event.append(bus.on_event)
        self.pipeline = Pipeline(
            self.backend,
            on_result=self._deliver,
            on_frame=self._frame,
            on_end=self._ended,
            every_frame_wanted=self._every_frame_wanted,
            max_batch=max_batch or config["server.max_batch"],
            max_frame_age_ms=config["server.max_frame_age_ms"] if max_frame_age_ms is None else max_frame_age_ms,
            lossless=lossless,
        )
        for spec in [*config["streams"], *streams]:
            self.add_stream(spec)

    def _clip(self, event: Event, frame: Frame) -> None:
        """An event began or ended (on the recorder's thread): its clip starts or stops."""
        clips = self._clips if event.after.stream in self._packets else self._frame_clips
        if clips is not None:
            follow_event(clips, event, frame.pts_ms)

    def _hook(self, stream_id: str) -> ObjectTracker:
        """A stream's tracker, with the zones and lines of its spec (none for sources added by hand)."""
        spec = self._specs.get(stream_id)
        ids = self._track_ids.setdefault(stream_id, itertools.count(1))
        return ObjectTracker(
            self._tracking, zones=spec.zones if spec else (), lines=spec.lines if spec else (), ids=ids
        )

    def _deliver(self, result: FrameResult, frame: Frame) -> None:
        if result.counts:
            self._counts[result.stream] = result.counts
        for callback in self._on_result:
            callback(result, frame)

    def subscribe_ends(self, on_end: Callable[[str], None]) -> None:
        """Call ``on_end(stream_id)`` when a stream's source ended and its last result was delivered."""
        self._on_end.append(on_end)

    def _ended(self, stream_id: str) -> None:
        """A stream's source ended and its last result was delivered: its open events end."""
        if self._recorder is not None:
            self._recorder.end_stream(stream_id)
        for callback in self._on_end:
            callback(stream_id)

    def _frame(self, frame: Frame) -> None:
        if self._frame_clips is not None and frame.stream_id not in self._packets:
            self._frame_clips.frame(frame.stream_id, frame.image, frame.pts_ms)
        for callback in self._on_frame:
            callback(frame)

    # streams

    def add_stream(self, spec: StreamSpec, *, first_track_id: int | None = None) -> None:
        """Open ``spec``'s source and add it; a :class:`StreamExistsError` if the id is taken.

        ``first_track_id``: its tracks' ids start there (a stream moved from a lost Ray camera group
        gets ids its old tracks never had); ``None``: they go on from this runtime's last one (1 at first).
        """
        if spec.id in self.pipeline.stream_ids:
            raise StreamExistsError(f"stream id {spec.id!r} is already running; pick another id or remove it first")
        if first_track_id is not None:
            self._track_ids[spec.id] = itertools.count(first_track_id)
        source = open_source(
            spec.source, stream_id=spec.id, realtime=spec.realtime, loop=spec.loop, decoder=spec.decoder
        )
        self._specs[spec.id] = spec
        try:
            self.add_source(source, inference_fps=spec.inference_fps)
        except StreamExistsError:
            self._specs.pop(spec.id, None)
            raise

    def add_source(self, source: Source, *, inference_fps: float | None = None) -> None:
        """Add a ready-made source (a browser's camera, the CLI's readers)."""
        clips, remuxed = self._clips, False
        if clips is not None and isinstance(source, PyAVSource):  # its packets make its clips, not re-encoded
            stream = source.stream_id
            source.on_packet = lambda packet, offset_ms: clips.packet(stream, packet, offset_ms)
            remuxed = True
        try:
            self.pipeline.add(source, inference_fps=inference_fps)
        except ValueError as exc:
            raise StreamExistsError(str(exc)) from None
        if remuxed:
            self._packets.add(source.stream_id)
        if self.bus is not None:
            spec = self._specs.get(source.stream_id)
            zones = [zone.name for zone in spec.zones] if spec is not None else []
            self.bus.stream_added(source.stream_id, self.config["mqtt.labels"], zones)

    def remove_stream(self, stream_id: str) -> bool:
        """Stop and forget a stream; ``False`` if there is none of that id."""
        if stream_id not in self.pipeline.stream_ids:
            return False
        self.pipeline.remove(stream_id)
        self._specs.pop(stream_id, None)
        self._counts.pop(stream_id, None)
        self._packets.discard(stream_id)
        if self._recorder is not None:
            self._recorder.end_stream(stream_id)
        if self.bus is not None:
            self.bus.stream_removed(stream_id)
        return True

    def set_detect(self, stream_id: str, on: bool) -> bool:
        """Resume (``on``) or pause inference on a stream; its video keeps playing. ``False``: no such stream."""
        return self.pipeline.pause(stream_id, not on)

    @property
    def stream_ids(self) -> list[str]:
        return self.pipeline.stream_ids

    def stats(self) -> list[dict[str, Any]]:
        """Per stream: state, counters, inferred frames, last frame age (credentials redacted); with zones
        or lines, their geometry (0..1) and counts."""
        rows = self.pipeline.stats()
        for row in rows:
            spec = self._specs.get(row["stream"])
            if spec is not None and (spec.zones or spec.lines):
                row.update(geometry(spec.zones, spec.lines))
                row["counts"] = self._counts.get(row["stream"], {})
        return rows

    @property
    def failed(self) -> list[str]:
        """Streams whose source failed, each as ``id: reason``."""
        return [
            f"{row['stream']}: {row['last_error']}" for row in self.stats() if row["state"] == SourceState.FAILED.value
        ]

    # models

    def classify(
        self, images: Sequence[np.ndarray], *, detect: bool = True
    ) -> concurrent.futures.Future[list[FrameResult]]:
        """Classify one-off RGB images beside the streams (the loop batches them); one result per image.

        ``detect`` False skips the detector: the classifier labels each whole image, whatever the stages.
        """
        return self.pipeline.classify([Request("", image, whole=not detect) for image in images])

    def models(self) -> list[ModelInfo]:
        """The models running now: name, version, provider, input size, class count."""
        return self.backend.models()

    @property
    def provider(self) -> str:
        return self.backend.provider

    @property
    def detects(self) -> bool:
        """Whether results carry objects (``detect`` or ``cascade``)."""
        return self._stages != "classify"

    def reload(self, config: Config | None = None) -> list[ModelInfo]:
        """Re-read ``[classifier]`` and ``[detector]`` (from ``config``; ``None``: re-read as told on
        creation), load the new models beside the old ones and switch between two batches. On any error
        the old models keep running and the error says why."""
        if config is None:
            config = self._reread() if self._reread is not None else self.config
        models = self.backend.reload(config.cascade_config(stages=self._stages))
        self.config = config
        return models

    # lifecycle

    def start(self) -> None:
        if self._recorder is not None:
            self._recorder.start()
        if self.bus is not None:
            self.bus.start()
        self.pipeline.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every finite stream is done (``True``), or ``timeout`` seconds pass."""
        return self.pipeline.wait(timeout)

    def run_until(self, stop: threading.Event, duration: float | None = None) -> None:
        """Until every stream is done, ``duration`` seconds pass, or ``stop`` is set."""
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set():
            step = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if step <= 0 or self.wait(step):
                return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sources and loop, deliver the results already made, release the models."""
        self.pipeline.stop(timeout)
        self.backend.close()
        if self._recorder is not None:
            self._recorder.close(timeout)
        for clips in (self._clips, self._frame_clips):
            if clips is not None:
                clips.close(timeout)
        if self.bus is not None:
            self.bus.close(timeout)
        if self.events is not None:
            self.events.close()


def mqtt_bus(
    config: Config,
    mqtt: MqttConfig,
    stats: Callable[[], list[dict[str, Any]]],
    set_detect: Callable[[str, bool], bool],
    events: EventStore | None,
) -> Bus:
    """The MQTT bus of a runtime (or a cluster's front): its commands reach ``set_detect``, its snapshot
    requests ``events``. Subscribe it to the results and events; start and close it with them."""
    bus: Bus | None = None

    def command(topic: str, payload: str) -> None:
        if bus is not None:
            bus.on_command(topic, payload)

    bus = Bus(
        MqttPublisher(mqtt, on_command=command),
        stats=stats,
        set_detect=set_detect,
        snapshot=events.snapshot if events is not None else None,
        discovery_prefix=config["mqtt.discovery_prefix"] if config["mqtt.discovery"] else None,
    )
    return bus
