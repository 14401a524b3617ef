"""The front of a Ray cluster: the runtime ``streamer serve --ray ADDRESS`` serves, with the streams on camera groups.

Call order (the same as :class:`~streamer.runtime.Runtime`'s)::

    front = ClusterRuntime(config, ClusterConfig(address="auto"), streams=[...])
    front.subscribe(on_result); front.subscribe_frames(on_frame, wanted=...); front.subscribe_events(on_event)
    front.start()          # connects, re-attaches to the groups already running, places the other streams
    front.add_stream(spec) / front.remove_stream("cam1")
    front.stop()           # the groups keep running (detached): the next front re-attaches to them

One thread per camera group long-polls it (``take``) and delivers what came:
results to the subscribers, events to the front's event store (with their
snapshots) and to MQTT, the newest frame of each watched stream to the
frame subscribers. A group that fails a call, or does not answer within
``lost_after_s`` past its poll, is lost: it is killed (so no stream ever runs
twice), the open events of its streams end, and its streams move to the
other groups (or a new one), their reconnects counted and their track ids
starting above any the front has seen. Only this module imports Ray.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.cluster.group import CameraGroup, group_config
from streamer.cluster.options import ClusterConfig, redact_address
from streamer.cluster.outbox import Batch
from streamer.cluster.placement import group_name, is_group_name, place
from streamer.config import Config, StreamSpec
from streamer.errors import ClusterError, StreamerError, StreamExistsError
from streamer.events import Event, EventRecorder, EventStore
from streamer.events.machine import end_of
from streamer.frames import Frame, Picture
from streamer.inference.backend import ModelInfo
from streamer.results import FrameResult
from streamer.sinks.bus import Bus
from streamer.sinks.mqtt import MqttConfig
from streamer.sources import Source, SourceState
from streamer.subscribers import Subscribers
from streamer.tracking.zones import geometry

__all__ = ["ClusterRuntime", "connect"]

log = logging.getLogger(__name__)

#: seconds a group's ``take`` waits for something to come (the long poll).
POLL_S = 0.5
#: seconds a new group may take to start and load its models.
START_S = 180.0
#: seconds a call to a group may take (add, remove, stats, ...).
CALL_S = 60.0
#: seconds between two tries to place a stream that lost its group.
RETRY_S = 2.0


def connect(cluster: ClusterConfig) -> tuple[Any, bool]:
    """Connect this process to ``cluster`` (``local``: start one here); the ``ray`` module and whether
    this call connected (``False``: the process already was, and stays so). A :class:`ClusterError`
    naming the address (credentials redacted) when it cannot be reached."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray never phones home from here
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")  # nor replaces this process's builtins.print
    import ray

    address = redact_address(cluster.address)
    if ray.is_initialized():
        return ray, False
    _probe(cluster.address)
    try:
        if cluster.address == "local":
            # One machine: Ray's addresses stay on loopback (Ray's switch for single-machine platforms).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            ray.init(namespace=cluster.namespace, include_dashboard=False)
        else:
            ray.init(address=cluster.address, namespace=cluster.namespace)
    except Exception as exc:  # ConnectionError, ValueError, grpc errors: all mean "not reachable"
        detail = str(exc).replace(cluster.address, address).splitlines()
        raise ClusterError(
            f"cannot reach the Ray cluster at {address}: {detail[0] if detail else type(exc).__name__}; "
            "start it (ray start --head) or fix --ray / [cluster] ray"
        ) from None
    return ray, True


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast (instead of Ray's two-minute retries) when nothing listens at ``address``'s host and port."""
    if address in ("auto", "local"):
        return
    hostport = address.removeprefix("ray://").rpartition("@")[2]
    host, _, port = hostport.rpartition(":")
    if not host:  # ray://host: Ray Client's default port
        host, port = hostport, "10001"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Ray cluster at {redact_address(address)}: "
            f"{exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}; "
            "start it (ray start --head) or fix --ray / [cluster] ray"
        ) from None


@dataclass(eq=False)
class _Group:
    name: str
    actor: Any
    streams: set[str] = field(default_factory=set)
    after: int = 0
    alive: bool = True
    thread: threading.Thread | None = None
    where: dict[str, Any] = field(default_factory=dict)  # host and pid of the actor


def _no_image() -> np.ndarray:
    raise StreamerError("a result's frame stays on its camera group; the front gets frames of watched streams only")


class ClusterRuntime(Subscribers):
    """The front's runtime; see the module. ``stages``, ``streams``, ``events``, ``mqtt`` and ``reread``
    as for :class:`~streamer.runtime.Runtime`. Event clips are not made on a cluster (the frames stay on
    the groups); snapshots are."""

    def __init__(
        self,
        config: Config,
        cluster: ClusterConfig,
        *,
        stages: str | None = None,
        streams: Sequence[StreamSpec] = (),
        events: bool | None = None,
        mqtt: MqttConfig | None = None,
        reread: Callable[[], Config] | None = None,
    ) -> None:
        from streamer.runtime import mqtt_bus

        self.config = config
        self.cluster = cluster
        self._stages = stages or config["stages"]
        self._reread = reread
        super().__init__()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._ray: Any = None
        self._connected = False  # whether start() connected this process (then stop() disconnects)
        self._groups: dict[str, _Group] = {}
        self._names: set[str] = set()  # every group name this front has used or seen
        self._specs: dict[str, StreamSpec] = {}
        self._where: dict[str, str] = {}  # stream -> group
        self._rows: dict[str, dict[str, Any]] = {}
        self._moves: dict[str, int] = {}  # stream -> times moved to another group
        self._tracks: dict[str, int] = {}  # stream -> highest track id known
        self._open: dict[str, dict[str, Event]] = {}  # stream -> its open events, as last known
        self._homeless: list[str] = []  # streams whose group was lost, to place again
        self._wake = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._counts: dict[str, Any] = {}
        self._pending = [*config["streams"], *streams]
        self._provider = ""
        self._models: list[ModelInfo] = []
        self.lost = 0  # groups lost so far
        tracks = self._stages != "classify" and bool(config["tracking.enabled"])
        self._events_on = tracks and bool(config["storage.events"] if events is None else events)
        self.events: EventStore | None = config.event_store() if self._events_on else None
        self._recorder = EventRecorder(self.events, publish=self._event) if self.events is not None else None
        self.bus: Bus | None = None
        if mqtt is not None:
            self.bus = mqtt_bus(config, mqtt, self.stats, self.set_detect, self.events)
            self._on_result.append(self.bus.on_result)
            self._on_event.append(self.bus.on_event)

    # lifecycle

    def start(self) -> None:
        """Connect, re-attach to the groups already running in the namespace, start the missing ones and
        place the streams not running yet."""
        ray, self._connected = connect(self.cluster)
        self._ray = ray
        names = sorted(name for name in ray.util.list_named_actors() if is_group_name(name))
        self._names.update(names)
        for name in names:
            self._attach(name)
        if self._recorder is not None:
            self._recorder.start(keep_open=list(self._where))
        if self.bus is not None:
            self.bus.start()
        while len(self._groups) < self.cluster.actors:
            self._new_group()
        for spec in self._pending:
            if spec.id not in self._specs:
                self.add_stream(spec)
        self._pending = []
        self._supervisor = threading.Thread(target=self._supervise, name="cluster-supervisor", daemon=True)
        self._supervisor.start()

    def _attach(self, name: str) -> None:
        ray = self._ray
        try:
            actor = ray.get_actor(name)
            specs: list[StreamSpec] = ray.get(actor.specs.remote(), timeout=CALL_S)
            where = ray.get(actor.ready.remote(), timeout=CALL_S)
            open_events: list[Event] = ray.get(actor.open_events.remote(), timeout=CALL_S)
        except Exception as exc:
            log.warning("camera group %s does not answer (%s); its streams are placed anew", name, exc)
            self._kill(name)
            return
        self._provider = where["provider"]
        if not self._models:
            self._models = ray.get(actor.models.remote(), timeout=CALL_S)
        group = _Group(name, actor, where=where)
        with self._lock:
            self._groups[name] = group
            for spec in specs:
                self._specs[spec.id] = spec
                self._where[spec.id] = name
                group.streams.add(spec.id)
            for event in open_events:  # to end them if this group is lost
                self._open.setdefault(event.after.stream, {})[event.id] = event
        log.info("re-attached to camera group %s: %s", name, ", ".join(sorted(group.streams)) or "no streams")
        self._start_polling(group)

    def stop(self, timeout: float = 10.0, *, keep_groups: bool = True) -> None:
        """Stop taking results, record the events already taken, disconnect. The groups keep running for
        the next front, unless ``keep_groups`` is false (then they are stopped and their streams end)."""
        self._stopping.set()
        with self._lock:
            groups = list(self._groups.values())
        if not keep_groups:
            for group in groups:
                self._kill(group.name, close=True)
        self._wake.set()
        for thread in [group.thread for group in groups] + [self._supervisor]:
            if thread is not None:
                thread.join(timeout)
        if self._recorder is not None:
            self._recorder.close(timeout)
        if self.bus is not None:
            self.bus.close(timeout)
        if self.events is not None:
            self.events.close()
        if self._ray is not None and self._connected:
            self._ray.shutdown()

    def stop_groups(self) -> list[str]:
        """Connect, stop every camera group of the namespace (their streams end) and disconnect; their names."""
        ray, connected = connect(self.cluster)
        self._ray = ray
        try:
            names = sorted(name for name in ray.util.list_named_actors() if is_group_name(name))
            for name in names:
                self._kill(name, close=True)
            return names
        finally:
            if connected:
                ray.shutdown()

    def wait(self, timeout: float | None = None) -> bool:
        """Until every stream has ended or failed (``True``), or ``timeout`` seconds pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rows = self.stats()
            if rows and all(row["state"] in (SourceState.ENDED.value, SourceState.FAILED.value) for row in rows):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if self._stopping.wait(0.2):
                return False

    def run_until(self, stop: threading.Event, duration: float | None = None) -> None:
        deadline = None if duration is None else time.monotonic() + duration
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            if self.wait(0.2):
                return

    # groups

    def _new_group(self) -> _Group:
        """Start a camera group (its models loaded) and poll it; a :class:`ClusterError` when it cannot."""
        ray = self._ray
        with self._lock:
            self._names.update(name for name in ray.util.list_named_actors() if is_group_name(name))
            name = group_name(self._names)
            self._names.add(name)
        gpus = self.cluster.actor_gpus
        if gpus is None:
            gpus = 0.25 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        remote = ray.remote(CameraGroup).options(
            name=name,
            lifetime="detached",
            max_restarts=0,
            max_concurrency=16,
            num_cpus=self.cluster.actor_cpus,
            num_gpus=gpus,
            scheduling_strategy="SPREAD",
        )
        config = group_config(self.config)  # no secret leaves the front
        actor = remote.remote(config, stages=self._stages, events=self._events_on, outbox=self.cluster.outbox)
        try:
            where = ray.get(actor.ready.remote(), timeout=START_S)
            if not self._models:
                self._models = ray.get(actor.models.remote(), timeout=CALL_S)
        except Exception as exc:
            self._kill(name)
            raise ClusterError(f"camera group {name} could not start on the Ray cluster: {exc}") from None
        self._provider = where["provider"]
        group = _Group(name, actor, where=where)
        with self._lock:
            self._groups[name] = group
        log.info("camera group %s started on %s, pid %s (%s)", name, where["host"], where["pid"], where["provider"])
        self._start_polling(group)
        return group

    def _kill(self, name: str, *, close: bool = False) -> None:
        """Stop the actor ``name`` (``close``: let it stop its streams first), whatever state it is in."""
        ray = self._ray
        try:
            actor = ray.get_actor(name)
            if close:
                ray.get(actor.close.remote(), timeout=CALL_S)
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # already dead, or its node is gone
            log.debug("camera group %s: %s", name, exc)

    def _start_polling(self, group: _Group) -> None:
        group.thread = threading.Thread(target=self._poll, args=(group,), name=f"cluster-{group.name}", daemon=True)
        group.thread.start()

    def _poll(self, group: _Group) -> None:
        ray = self._ray
        last_ok = time.monotonic()
        while group.alive and not self._stopping.is_set():
            watched = [stream for stream in list(group.streams) if self._every_frame_wanted(stream)]
            try:
                batch: Batch = ray.get(
                    group.actor.take.remote(group.after, watched, POLL_S), timeout=POLL_S + self.cluster.lost_after_s
                )
            except Exception as exc:
                if self._stopping.is_set():
                    return
                if time.monotonic() - last_ok < self.cluster.lost_after_s and not _is_dead(exc):
                    time.sleep(0.2)
                    continue
                self._lose(group, exc)
                return
            last_ok = time.monotonic()
            group.after = batch.last
            self._take_in(group, batch)

    def _take_in(self, group: _Group, batch: Batch) -> None:
        with self._lock:
            for row in batch.info.get("stats", []):
                stream = row["stream"]
                if self._where.get(stream) == group.name:
                    self._rows[stream] = self._row(row, group)
            for stream, top in batch.info.get("tracks", {}).items():
                self._tracks[stream] = max(self._tracks.get(stream, 0), top)
        for _, item in batch.items:
            kind = item[0]
            if kind == "result":
                self._deliver(item[1])
            elif kind == "event":
                self._record(item[1], item[2])
        for stream, (index, pts_ms, image) in batch.frames.items():
            frame = Frame(stream, index, pts_ms, image, decoded_at=time.monotonic())
            for callback in self._on_frame:
                callback(frame)

    def _row(self, row: dict[str, Any], group: _Group) -> dict[str, Any]:
        """A group's stats row as the front shows it: its moves counted as reconnects, where it runs."""
        stream = row["stream"]
        row["reconnects"] = row.get("reconnects", 0) + self._moves.get(stream, 0)
        where = group.where
        row.update(group=group.name, node=where.get("host"), node_id=where.get("node_id"), pid=where.get("pid"))
        return row

    def _deliver(self, result: FrameResult) -> None:
        if self._where.get(result.stream) is None:
            return  # removed meanwhile
        if result.counts:
            self._counts[result.stream] = result.counts
        frame = Frame(
            result.stream,
            result.frame,
            result.pts_ms,
            Picture(result.width, result.height, _no_image),
            time.monotonic(),
        )
        for callback in self._on_result:
            callback(result, frame)

    def _record(self, event: Event, snapshot: bytes | None) -> None:
        stream = event.after.stream
        with self._lock:
            open_events = self._open.setdefault(stream, {})
            if event.kind == "end":
                open_events.pop(event.id, None)
            else:
                open_events[event.id] = event
        if self._recorder is not None:
            self._recorder.put(event, snapshot)

    def _lose(self, group: _Group, why: BaseException) -> None:
        """``group`` is gone: kill it, end its streams' open events, move its streams."""
        with self._lock:
            if not group.alive:
                return
            group.alive = False
            self._groups.pop(group.name, None)
            orphans = [self._specs[s] for s in sorted(group.streams) if self._where.get(s) == group.name]
            for spec in orphans:
                del self._where[spec.id]
                self._moves[spec.id] = self._moves.get(spec.id, 0) + 1
                if spec.id in self._rows:
                    self._rows[spec.id]["state"] = SourceState.RECONNECTING.value
            self.lost += 1
        log.warning(
            "camera group %s lost (%s); moving %d streams: %s",
            group.name,
            str(why).splitlines()[0] if str(why) else type(why).__name__,
            len(orphans),
            ", ".join(spec.id for spec in orphans) or "none",
        )
        self._kill(group.name)
        for spec in orphans:
            with self._lock:
                ended = list(self._open.pop(spec.id, {}).values())
            for event in ended:
                self._record(end_of(event, "stream"), None)
        with self._lock:
            self._homeless.extend(spec.id for spec in orphans)
        self._wake.set()

    def _supervise(self) -> None:
        """Place the streams that lost their group, as soon as one is lost and then every few seconds
        until they run again (the cluster may need time to free room for them)."""
        failures: dict[str, str] = {}
        while not self._stopping.is_set():
            self._wake.wait(RETRY_S)
            self._wake.clear()
            with self._lock:
                homeless, self._homeless = self._homeless, []
            for stream in homeless:
                with self._lock:
                    spec = self._specs.get(stream)
                if spec is None or stream in self._where or self._stopping.is_set():
                    continue  # removed meanwhile, or placed
                try:
                    self._place(spec)
                    failures.pop(stream, None)
                except Exception as exc:
                    if failures.get(stream) != str(exc):  # once per new reason, not every retry
                        log.error("stream %r could not move to another camera group (retrying): %s", stream, exc)
                    failures[stream] = str(exc)
                    with self._lock:
                        self._homeless.append(stream)

    # streams

    def _place(self, spec: StreamSpec) -> str:
        """Run ``spec`` on the group with room and the fewest streams (a new group when all are full)."""
        with self._lock:
            loads = {name: len(group.streams) for name, group in self._groups.items()}
            name = place(loads, self.cluster.streams_per_actor)
            group = self._groups[name] if name is not None else None
            first = self._tracks.get(spec.id, 0) + 1
        if group is None:
            if len(loads) >= self.cluster.max_actors:
                raise ClusterError(
                    f"stream {spec.id!r}: all {len(loads)} camera groups run {self.cluster.streams_per_actor} streams "
                    "each; raise [cluster] max_actors or streams_per_actor, or remove a stream"
                )
            group = self._new_group()
        with self._lock:
            group.streams.add(spec.id)
            self._specs[spec.id] = spec
            self._where[spec.id] = group.name
        try:
            self._ray.get(group.actor.add.remote(spec, first_track_id=first), timeout=CALL_S)
            rows = self._ray.get(group.actor.stats.remote(), timeout=CALL_S)
        except Exception as exc:
            with self._lock:
                group.streams.discard(spec.id)
                self._specs.pop(spec.id, None)
                self._where.pop(spec.id, None)
            cause = getattr(exc, "cause", None)  # a RayTaskError carries the group's own exception
            if isinstance(cause, StreamerError):
                raise cause from None
            first_line = (str(cause or exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterError(f"stream {spec.id!r}: camera group {group.name} did not take it: {first_line}") from None
        with self._lock:
            for row in rows:
                if row["stream"] == spec.id:
                    self._rows[spec.id] = self._row(row, group)
        log.info("stream %r runs on camera group %s", spec.id, group.name)
        return group.name

    def add_stream(self, spec: StreamSpec) -> None:
        """Place ``spec`` on a camera group; a :class:`StreamExistsError` if the id is taken."""
        with self._lock:
            if spec.id in self._specs:
                raise StreamExistsError(f"stream id {spec.id!r} is already running; pick another id or remove it first")
        if self._ray is None:
            self._pending.append(spec)
            return
        self._place(spec)
        if self.bus is not None:
            self.bus.stream_added(spec.id, self.config["mqtt.labels"], [zone.name for zone in spec.zones])

    def add_source(self, source: Source, *, inference_fps: float | None = None) -> None:
        raise StreamerError(
            f"source {source.stream_id!r}: with --ray every stream runs on the cluster; add it as a [[streams]] "
            "table or with POST /api/streams (browser cameras need a front without --ray)"
        )

    def remove_stream(self, stream_id: str) -> bool:
        """Stop a stream on its group (its open events end); ``False`` if there is none of that id."""
        with self._lock:
            if self._specs.pop(stream_id, None) is None:
                return False
            name = self._where.pop(stream_id, None)  # None: its group was lost and it waits for another
            self._rows.pop(stream_id, None)
            self._counts.pop(stream_id, None)
            self._moves.pop(stream_id, None)
            group = self._groups.get(name) if name is not None else None
            if group is not None:
                group.streams.discard(stream_id)
        if group is not None:
            try:
                self._ray.get(group.actor.remove.remote(stream_id), timeout=CALL_S)
            except Exception as exc:
                log.warning("camera group %s did not remove %r (%s)", name, stream_id, exc)
        with self._lock:
            ended = list(self._open.pop(stream_id, {}).values())
        for event in ended:  # those the group's own ends (still in flight) did not reach
            self._record(end_of(event, "stream"), None)
        if self.bus is not None:
            self.bus.stream_removed(stream_id)
        return True

    def set_detect(self, stream_id: str, on: bool) -> bool:
        with self._lock:
            group = self._groups.get(self._where.get(stream_id, ""))
        if group is None:
            return False
        return bool(self._ray.get(group.actor.set_detect.remote(stream_id, on), timeout=CALL_S))

    @property
    def stream_ids(self) -> list[str]:
        with self._lock:
            return list(self._specs)

    def stats(self) -> list[dict[str, Any]]:
        """Per stream, as its group last said (``group`` names it; ``reconnects`` counts its moves too)."""
        with self._lock:
            rows = []
            for stream, spec in self._specs.items():
                row = dict(self._rows.get(stream) or {"stream": stream, "state": SourceState.CONNECTING.value})
                if spec.zones or spec.lines:
                    row.update(geometry(spec.zones, spec.lines))
                    row["counts"] = self._counts.get(stream, {})
                rows.append(row)
            return rows

    @property
    def failed(self) -> list[str]:
        return [
            f"{row['stream']}: {row.get('last_error')}"
            for row in self.stats()
            if row["state"] == SourceState.FAILED.value
        ]

    # models

    def _any_group(self) -> _Group:
        with self._lock:
            groups = sorted(self._groups.values(), key=lambda group: len(group.streams))
        if not groups:
            raise ClusterError("no camera group is running on the Ray cluster; add a stream or restart the front")
        return groups[0]

    def classify(
        self, images: Sequence[np.ndarray], *, detect: bool = True
    ) -> concurrent.futures.Future[list[FrameResult]]:
        """One-off images, on the least loaded group."""
        future: concurrent.futures.Future[list[FrameResult]] = (
            self._any_group().actor.classify.remote(list(images), detect).future()
        )
        return future

    def models(self) -> list[ModelInfo]:
        return list(self._models)

    @property
    def provider(self) -> str:
        return self._provider or "unknown (no camera group yet)"

    @property
    def detects(self) -> bool:
        return self._stages != "classify"

    def reload(self) -> list[ModelInfo]:
        """Re-read the config and reload the models on every group (see :meth:`Runtime.reload`)."""
        config = self._reread() if self._reread is not None else self.config
        with self._lock:
            groups = list(self._groups.values())
        models = self._models
        for group in groups:
            models = self._ray.get(group.actor.reload.remote(group_config(config)), timeout=START_S)
        self.config, self._models = config, list(models)
        return self._models


def _is_dead(exc: BaseException) -> bool:
    """Whether ``exc`` says the actor is gone for good (not a slow or briefly unavailable answer)."""
    from ray.exceptions import ActorUnavailableError, RayActorError

    return isinstance(exc, RayActorError) and not isinstance(exc, ActorUnavailableError)
