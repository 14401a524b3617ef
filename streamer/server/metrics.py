"""``/metrics``: the Prometheus exposition of the runtime's streams and the server's counters.

One :class:`ServerMetrics` per server, on a :class:`prometheus_client.CollectorRegistry`
of its own (never the global default one, so two servers in a process, or
a test run, never mix their numbers)::

    metrics = ServerMetrics(runtime.stats, lambda: runtime.provider, clients=..., ws_dropped=...)
    metrics.observe(result)          # every result (any thread): frame age and inference time
    metrics.ws_error("bad_json")     # every error message answered on /ws
    body = metrics.render()          # the text exposition, format 0.0.4

Families, all but the last three read from ``stats()`` at scrape time::

    streamer_info{provider}                 gauge      1, naming the execution provider
    streamer_stream_up{stream}              gauge      1 if live, else 0
    streamer_frames_decoded_total{stream}   counter    frames decoded
    streamer_frames_dropped_total{stream}   counter    frames dropped before inference
    streamer_frames_inferred_total{stream}  counter    frames the models ran on
    streamer_reconnects_total{stream}       counter    reconnections
    streamer_frame_age_ms{stream}           gauge      age of the last inferred frame when its result was ready
    streamer_zone_objects{stream,zone,class}             gauge    objects in a zone now
    streamer_line_crossings_total{stream,line,direction,class} counter  crossings of a line, "in" or "out"
    streamer_mqtt_connected                 gauge      1 while connected to the MQTT broker (with one)
    streamer_mqtt_sent_total                counter    messages handed to the broker
    streamer_mqtt_dropped_total             counter    messages dropped while the broker was away
    streamer_ws_clients                     gauge      connected WebSocket clients
    streamer_ws_dropped_total               counter    results dropped for clients that read too slowly
    streamer_ws_errors_total{code}          counter    error messages answered on /ws, by code
    streamer_frame_age_seconds{stream}      histogram  a result's frame age (``timings_ms["age"]``)
    streamer_inference_seconds{stream}      histogram  a result's inference time (``timings_ms["inference"]``)

A stream's histograms are forgotten once it leaves ``stats()``. Stream
labels come from ``stats()``, whose source URLs are already redacted; no
URL is ever a label.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streamer.results import FrameResult

__all__ = ["CONTENT_TYPE", "ServerMetrics"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: Bucket bounds in seconds: frame ages run from milliseconds (a local file) to seconds (an overloaded CPU).
AGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_STREAM_COUNTERS = (
    # family name (without _total), help, stats key
    ("streamer_frames_decoded", "Frames decoded from the stream.", "decoded"),
    ("streamer_frames_dropped", "Frames dropped before inference.", "dropped"),
    ("streamer_frames_skipped", "Frames an overloaded decoder left undecoded.", "skipped"),
    ("streamer_frames_inferred", "Frames the models ran on.", "inferred"),
    ("streamer_reconnects", "Reconnections to the stream.", "reconnects"),
)


def _number(value: object) -> float | None:
    """``value`` as a sample value, or ``None`` for anything that is not a finite number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _zone_counts(rows: list[dict[str, Any]]) -> Iterable[Metric]:
    """The zone and line counts of the streams that have them (``counts`` in their stats row)."""
    zones = GaugeMetricFamily(
        "streamer_zone_objects", "Objects in a zone now, by class.", labels=["stream", "zone", "class"]
    )
    lines = CounterMetricFamily(
        "streamer_line_crossings",
        "Crossings of a line, by direction and class.",
        labels=["stream", "line", "direction", "class"],
    )
    for row in rows:
        stream, counts = str(row.get("stream", "")), row.get("counts") or {}
        for zone, by_class in (counts.get("zones") or {}).items():
            for name, value in by_class.items():
                zones.add_metric([stream, str(zone), str(name)], float(value))
        for line, directions in (counts.get("lines") or {}).items():
            for direction, by_class in directions.items():
                for name, value in by_class.items():
                    lines.add_metric([stream, str(line), str(direction), str(name)], float(value))
    yield zones
    yield lines


class _StreamsCollector(Collector):
    """The runtime's per-stream stats and the server's WebSocket counters, read at each scrape."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        metrics = self._metrics
        rows = metrics.stats()
        info = GaugeMetricFamily("streamer_info", "The execution provider the models run on.", labels=["provider"])
        info.add_metric([metrics.provider()], 1.0)
        yield info
        up = GaugeMetricFamily("streamer_stream_up", "1 if the stream is live, else 0.", labels=["stream"])
        for row in rows:
            up.add_metric([str(row.get("stream", ""))], 1.0 if row.get("state") == "live" else 0.0)
        yield up
        for name, text, key in _STREAM_COUNTERS:
            counter = CounterMetricFamily(name, text, labels=["stream"])
            for row in rows:
                value = _number(row.get(key))
                if value is not None:
                    counter.add_metric([str(row.get("stream", ""))], value)
            yield counter
        age = GaugeMetricFamily(
            "streamer_frame_age_ms", "Age of the last inferred frame when its result was ready.", labels=["stream"]
        )
        for row in rows:
            value = _number(row.get("last_age_ms"))
            if value is not None:
                age.add_metric([str(row.get("stream", ""))], value)
        yield age
        yield from _zone_counts(rows)
        mqtt = metrics.mqtt()
        if mqtt is not None:
            yield GaugeMetricFamily(
                "streamer_mqtt_connected", "1 while connected to the MQTT broker.", value=mqtt["connected"]
            )
            yield CounterMetricFamily("streamer_mqtt_sent", "Messages handed to the MQTT broker.", value=mqtt["sent"])
            yield CounterMetricFamily(
                "streamer_mqtt_dropped",
                "MQTT messages dropped while the broker was away (updates first).",
                value=mqtt["dropped"],
            )
        yield GaugeMetricFamily("streamer_ws_clients", "Connected WebSocket clients.", value=metrics.clients())
        yield CounterMetricFamily(
            "streamer_ws_dropped",
            "Results dropped for WebSocket clients that read too slowly.",
            value=metrics.ws_dropped(),
        )


class ServerMetrics:
    """The server's metrics on a registry of its own.

    ``stats`` gives the streams to show (``Runtime.stats``, less the private
    cameras); ``provider`` the execution provider; ``clients`` and
    ``ws_dropped`` the WebSocket clients connected and the results they lost;
    ``mqtt`` the MQTT publisher's ``connected``, ``sent`` and ``dropped`` (``None``: no broker).
    """

    def __init__(
        self,
        stats: Callable[[], list[dict[str, Any]]],
        provider: Callable[[], str],
        *,
        clients: Callable[[], int],
        ws_dropped: Callable[[], int],
        mqtt: Callable[[], dict[str, float] | None] = lambda: None,
    ) -> None:
        self.stats = stats
        self.provider = provider
        self.clients = clients
        self.ws_dropped = ws_dropped
        self.mqtt = mqtt
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        self._observed: set[str] = set()  # streams with histogram samples
        self._errors = Counter(
            "streamer_ws_errors",
            "Error messages answered to WebSocket clients, by code.",
            ["code"],
            registry=self.registry,
        )
        self._age = Histogram(
            "streamer_frame_age_seconds",
            "Age of a frame when its result was ready, from decoding to delivery.",
            ["stream"],
            buckets=AGE_BUCKETS,
            registry=self.registry,
        )
        self._inference = Histogram(
            "streamer_inference_seconds",
            "Time the models took on a frame's batch.",
            ["stream"],
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StreamsCollector(self))

    def observe(self, result: FrameResult) -> None:
        """Count ``result``'s frame age and inference time under its stream; any thread."""
        timings = result.timings_ms
        age, inference = _number(timings.get("age")), _number(timings.get("inference"))
        if age is None and inference is None:
            return
        with self._lock:
            self._observed.add(result.stream)
        if age is not None:
            self._age.labels(result.stream).observe(age / 1000.0)
        if inference is not None:
            self._inference.labels(result.stream).observe(inference / 1000.0)

    def ws_error(self, code: str) -> None:
        """Count one ``error`` message answered on /ws (``code`` is one of the codec's few)."""
        self._errors.labels(code).inc()

    def forget_streams_but(self, streams: set[str]) -> None:
        """Drop the histograms of every stream not in ``streams`` (gone, or private)."""
        with self._lock:
            gone = self._observed - streams
            self._observed -= gone
        for stream in gone:
            for histogram in (self._age, self._inference):
                with contextlib.suppress(KeyError):
                    histogram.remove(stream)

    def render(self) -> bytes:
        """The text exposition (format 0.0.4) of everything, read now (histograms of gone streams dropped first)."""
        self.forget_streams_but({str(row.get("stream", "")) for row in self.stats()})
        return generate_latest(self.registry)
