"""Configuration: ``config.toml``, then ``STREAMER_*`` variables, then CLI flags.

Later sources win. Keys are ``section.key`` (top-level keys have no
section); the environment spells them ``STREAMER_<SECTION>_<KEY>`` in capitals
(``STREAMER_CLASSIFIER_MAX_RESULTS=3``, ``STREAMER_DEVICE=cpu``). Lists in the
environment are comma-separated. An unknown key or a bad value is a
:class:`ConfigError` naming the key, the value, where it came from and what is
allowed.

Streams to run come as ``[[streams]]`` tables (:class:`StreamSpec`); the
command line's sources add to them.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from streamer.cluster.options import ClusterConfig
from streamer.errors import ConfigError, InputNotFoundError
from streamer.events.clips import ClipConfig
from streamer.events.store import EventStore
from streamer.inference.cascade import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR, STAGES, CascadeConfig
from streamer.models.engine import DEFAULT_BUCKETS, DEVICES, PREPROCESS, EngineOptions
from streamer.models.spec import (
    COLORS,
    FAMILIES,
    HEADS,
    LAYOUTS,
    NORMALIZATIONS,
    PRECISIONS,
    RESIZES,
    ClassifierModel,
    DetectorModel,
)
from streamer.sinks.mqtt import MqttConfig
from streamer.sources import default_stream_id
from streamer.sources.images import DEFAULT_LIMITS, ImageLimits
from streamer.sources.pyav import DECODERS
from streamer.tasks import ClassifierOptions, RunningMode
from streamer.tracking.objects import TrackingConfig
from streamer.tracking.settle import SettleConfig
from streamer.tracking.tracker import TrackerConfig
from streamer.tracking.zones import Line, Zone, lines_from_config, zones_from_config
from streamer.vision.preprocess import RegionOfInterest

__all__ = ["ENV_PREFIX", "SCHEMA", "Config", "StreamSpec", "load_config"]

ENV_PREFIX = "STREAMER_"
#: variables with the prefix that are not configuration keys.
ENV_IGNORED = frozenset({"STREAMER_REQUIRE_ALL", "STREAMER_CONFIG"})  # not configuration keys
LOG_LEVELS = ("debug", "info", "warning", "error")
_Declaration = TypeVar("_Declaration", ClassifierModel, DetectorModel)


@dataclass(frozen=True)
class Kind:
    """A value's type: ``base`` is str, int, float or bool; ``count`` is 0 for a scalar,
    -1 for a list of any length, n for exactly n items."""

    base: type
    count: int = 0
    choices: tuple[str, ...] = ()
    optional: bool = False

    def describe(self) -> str:
        item = f"one of {', '.join(self.choices)}" if self.choices else self.base.__name__
        if self.count == 0:
            return item
        return f"a list of {'' if self.count < 0 else self.count} {self.base.__name__}".replace("  ", " ")


_STR, _INT, _FLOAT = Kind(str), Kind(int), Kind(float)

_OPTIONAL_STR = Kind(str, optional=True)
_TRIPLE = Kind(float, 3, optional=True)
_NAMES = Kind(str, -1)

SCHEMA: dict[str, dict[str, Kind]] = {
    "": {
        "device": Kind(str, choices=DEVICES),
        "cache_dir": _OPTIONAL_STR,
        "threads": Kind(int, optional=True),
        "log_level": Kind(str, choices=LOG_LEVELS),
        "stages": Kind(str, choices=STAGES),
        "region_of_interest": Kind(float, 4, optional=True),
        "token": _OPTIONAL_STR,
    },
    "server": {
        "host": _STR,
        "port": _INT,
        "allowed_origins": _NAMES,
        "max_batch": _INT,
        "max_frame_age_ms": _FLOAT,
        "allowed_hosts": _NAMES,
        "max_pending_classify": _INT,
        "ice_timeout_s": _FLOAT,
        "max_peers": _INT,
        "max_peers_per_client": _INT,
        "share_cameras": Kind(bool),
        "max_body_bytes": _INT,
    },
    "classifier": {
        "model": _STR,
        "labels": _OPTIONAL_STR,
        "input_size": Kind(int, 2, optional=True),
        "resize": Kind(str, choices=RESIZES, optional=True),
        "resize_shorter": Kind(int, optional=True),
        "normalization": Kind(str, choices=tuple(NORMALIZATIONS), optional=True),
        "mean": _TRIPLE,
        "std": _TRIPLE,
        "layout": Kind(str, choices=LAYOUTS, optional=True),
        "color": Kind(str, choices=COLORS, optional=True),
        "head": Kind(str, choices=HEADS, optional=True),
        "precision": Kind(str, choices=PRECISIONS, optional=True),
        "calibration": _OPTIONAL_STR,
        "max_results": _INT,
        "score_threshold": _FLOAT,
        "category_allowlist": _NAMES,
        "category_denylist": _NAMES,
        "display_names_locale": _OPTIONAL_STR,
    },
    "detector": {
        "model": _STR,
        "labels": _OPTIONAL_STR,
        "family": Kind(str, choices=FAMILIES, optional=True),
        "input_size": Kind(int, 2, optional=True),
        "normalization": Kind(str, choices=tuple(NORMALIZATIONS), optional=True),
        "mean": _TRIPLE,
        "std": _TRIPLE,
        "layout": Kind(str, choices=LAYOUTS, optional=True),
        "color": Kind(str, choices=COLORS, optional=True),
        "pad_value": Kind(int, optional=True),
        "confidence": Kind(float, optional=True),
        "iou": Kind(float, optional=True),
        "max_detections": Kind(int, optional=True),
        "min_box_size": Kind(float, optional=True),
        "normalized_boxes": Kind(bool, optional=True),
        "precision": Kind(str, choices=PRECISIONS, optional=True),
        "calibration": _OPTIONAL_STR,
        "object_allowlist": _NAMES,
        "object_denylist": _NAMES,
        "cascade_classes": _NAMES,
        "crop_margin": _FLOAT,
    },
    "engine": {
        "device_id": _INT,
        "tensorrt_fp16": Kind(bool),
        "cuda_graphs": Kind(bool),
        "io_binding": Kind(bool, optional=True),
        "preprocess": Kind(str, choices=PREPROCESS),
        "buckets": Kind(int, -1),
    },
    "limits": {
        "max_image_pixels": _INT,
        "max_aspect_ratio": _FLOAT,
    },
    "tracking": {
        "enabled": Kind(bool),
        "high_score": _FLOAT,
        "low_score": _FLOAT,
        "new_track_score": _FLOAT,
        "match_iou": _FLOAT,
        "low_match_iou": _FLOAT,
        "min_hits": _INT,
        "max_lost_s": _FLOAT,
        "score_window": _INT,
        "report_score": _FLOAT,
        "classify_every": _INT,
        "min_attempts": _INT,
        "min_votes": _INT,
        "min_confidence": _FLOAT,
        "recheck_every": _INT,
    },
    "mqtt": {
        "url": _OPTIONAL_STR,
        "host": _OPTIONAL_STR,
        "port": Kind(int, optional=True),
        "user": _OPTIONAL_STR,
        "password": _OPTIONAL_STR,
        "tls": Kind(bool),
        "ca_file": _OPTIONAL_STR,
        "cert_file": _OPTIONAL_STR,
        "key_file": _OPTIONAL_STR,
        "topic_prefix": _STR,
        "client_id": _OPTIONAL_STR,
        "qos": _INT,
        "keepalive": _INT,
        "discovery": Kind(bool),
        "discovery_prefix": _STR,
        "labels": _NAMES,
    },
    "cluster": {
        "ray": _OPTIONAL_STR,
        "streams_per_actor": _INT,
        "actors": _INT,
        "max_actors": _INT,
        "actor_cpus": _FLOAT,
        "actor_gpus": Kind(float, optional=True),
        "namespace": _STR,
        "lost_after_s": _FLOAT,
        "outbox": _INT,
    },
    "storage": {
        "dir": _STR,
        "events": Kind(bool),
        "retain_days": _FLOAT,
        "max_bytes": _INT,
        "clips": Kind(bool),
        "pre_capture_s": _FLOAT,
        "post_capture_s": _FLOAT,
    },
}

DEFAULTS: dict[str, Any] = {
    "device": "auto",
    "log_level": "info",
    "stages": "classify",
    "classifier.model": DEFAULT_CLASSIFIER,
    "classifier.max_results": 5,
    "classifier.score_threshold": 0.0,
    "classifier.category_allowlist": (),
    "classifier.category_denylist": (),
    "detector.model": DEFAULT_DETECTOR,
    "detector.object_allowlist": (),
    "detector.object_denylist": (),
    "detector.cascade_classes": (),
    "detector.crop_margin": 0.1,
    "server.host": "127.0.0.1",
    "server.port": 8080,
    "server.allowed_origins": (),
    "server.max_batch": 4,
    "server.max_frame_age_ms": 500.0,
    "server.allowed_hosts": (),
    "server.max_pending_classify": 4,
    "server.ice_timeout_s": 15.0,
    "server.max_peers": 32,
    "server.max_peers_per_client": 4,
    "server.share_cameras": False,
    "server.max_body_bytes": 32 * 1024 * 1024,
    "engine.device_id": 0,
    "engine.tensorrt_fp16": True,
    "engine.cuda_graphs": False,
    "engine.preprocess": "auto",
    "engine.buckets": DEFAULT_BUCKETS,
    "limits.max_image_pixels": DEFAULT_LIMITS.max_pixels,
    "limits.max_aspect_ratio": DEFAULT_LIMITS.max_aspect_ratio,
    "tracking.enabled": True,
    "mqtt.tls": False,
    "mqtt.topic_prefix": "streamer",
    "mqtt.qos": 0,
    "mqtt.keepalive": 60,
    "mqtt.discovery": True,
    "mqtt.discovery_prefix": "homeassistant",
    "mqtt.labels": ("person", "car", "bicycle", "motorbike", "bus", "truck", "dog", "cat"),
    "cluster.streams_per_actor": 4,
    "cluster.actors": 1,
    "cluster.max_actors": 64,
    "cluster.actor_cpus": 1.0,
    "cluster.namespace": "streamer",
    "cluster.lost_after_s": 3.0,
    "cluster.outbox": 2048,
    "storage.dir": "~/.local/share/streamer",
    "storage.events": True,
    "storage.retain_days": 10.0,
    "storage.max_bytes": 2 * 1024**3,
    "storage.clips": True,
    "storage.pre_capture_s": 5.0,
    "storage.post_capture_s": 5.0,
    "streams": (),
}


MAX_STREAM_ID = 64


@dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """One stream to run: ``id`` (shown on the page and in results), ``source`` (a file, URL or camera index)
    and its options: ``realtime`` plays a file at its own speed, ``loop`` repeats it, ``inference_fps`` caps
    how often it is inferred (``None``: as often as the models keep up), ``decoder`` is ``auto`` (NVDEC where
    an NVIDIA GPU can decode, else software), ``nvdec`` or ``software``. Validated on creation."""

    id: str
    source: str
    realtime: bool = True
    loop: bool = False
    inference_fps: float | None = None
    decoder: str = "auto"
    zones: tuple[Zone, ...] = ()
    lines: tuple[Line, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise ConfigError(f"stream source = {self.source!r}; expected a file, a URL or a camera index")
        if (
            not isinstance(self.id, str)
            or not self.id
            or len(self.id) > MAX_STREAM_ID
            or not self.id.isprintable()
            or self.id != self.id.strip()
        ):
            raise ConfigError(
                f"stream id {self.id!r:.80}: expected 1 to {MAX_STREAM_ID} printable characters, "
                "no leading or trailing spaces"
            )
        for name in ("realtime", "loop"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"stream {self.id!r}: {name} = {getattr(self, name)!r}; expected true or false")
        if self.decoder not in DECODERS:
            raise ConfigError(f"stream {self.id!r}: decoder = {self.decoder!r}; use one of: {', '.join(DECODERS)}")
        fps = self.inference_fps
        if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= 1000):
            raise ConfigError(
                f"stream {self.id!r}: inference_fps = {fps!r}; expected a number of frames per second in (0, 1000]"
            )

    @classmethod
    def from_table(cls, table: object, where: str) -> StreamSpec:
        """A spec from a ``[[streams]]`` table (or a JSON object); errors name ``where`` and the key."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} is not a table; expected id, source and options such as loop")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(known)}")
        if "source" not in table:
            raise ConfigError(f"{where} has no source; give a file, a URL or a camera index")
        values = dict(table)
        if isinstance(values["source"], int) and not isinstance(values["source"], bool):
            values["source"] = str(values["source"])  # a camera index
        if isinstance(values["source"], str) and not values.get("id"):
            values["id"] = default_stream_id(values["source"])
        if "zones" in values:
            values["zones"] = zones_from_config(values["zones"], f"{where}.zones")
        if "lines" in values:
            values["lines"] = lines_from_config(values["lines"], f"{where}.lines")
        try:
            return cls(**values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _streams(raw: object, origin: str) -> tuple[StreamSpec, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"streams ({origin}) must be [[streams]] tables, each with id, source and options")
    specs = tuple(StreamSpec.from_table(table, f"streams[{i}] ({origin})") for i, table in enumerate(raw))
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.id in seen:
            raise ConfigError(f"streams[{i}] ({origin}): id {spec.id!r} is used twice; give each stream its own id")
        seen.add(spec.id)
    return specs


SECRETS = frozenset({"token", "mqtt.password", "mqtt.url", "cluster.ray"})  # their values never appear in an error


def _scalar(key: str, raw: Any, kind: Kind, origin: str) -> Any:
    def bad(why: str) -> ConfigError:
        shown = "(hidden)" if key in SECRETS else repr(raw)
        return ConfigError(f"{key} = {shown} ({origin}) {why}; expected {kind.describe()}")

    if kind.base is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0", "yes", "no"):
            return raw.lower() in ("true", "1", "yes")
        raise bad("is not a boolean")
    if kind.base is int:
        if isinstance(raw, (bool, float)):
            raise bad("is not an integer")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise bad("is not an integer") from None
    if kind.base is float:
        if isinstance(raw, bool):
            raise bad("is not a number")
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise bad("is not a number") from None
    if not isinstance(raw, str):
        raise bad("is not a string")
    if kind.choices and raw not in kind.choices:
        raise bad("is not allowed")
    return raw


def coerce(key: str, raw: Any, kind: Kind, origin: str) -> Any:
    """``raw`` (TOML value, or a string from the environment or CLI) as ``kind``; empty means unset."""
    if kind.optional and raw in ("", None, []):
        return None
    if kind.count == 0:
        return _scalar(key, raw, kind, origin)
    items = raw
    if isinstance(raw, str):
        items = [part.strip() for part in raw.strip().strip("[]").split(",") if part.strip()]
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{key} = {raw!r} ({origin}) is not a list; expected {kind.describe()}")
    if kind.count > 0 and len(items) != kind.count:
        raise ConfigError(f"{key} = {raw!r} ({origin}) has {len(items)} items; expected {kind.describe()}")
    return tuple(_scalar(key, item, Kind(kind.base, choices=kind.choices), origin) for item in items)


def _kind(key: str, origin: str) -> Kind:
    section, _, name = key.rpartition(".")
    if section not in SCHEMA or name not in SCHEMA[section]:
        known = [f"{s}.{k}" if s else k for s, keys in SCHEMA.items() for k in keys]
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or difflib.get_close_matches(
            name, [k.rpartition(".")[2] for k in known], n=1, cutoff=0.6
        )
        if near and near[0] not in known:  # matched by the name alone: name the key it belongs to
            near = [k for k in known if k.rpartition(".")[2] == near[0]]
        hint = f"did you mean {' or '.join(repr(k) for k in near)}?" if near else "config.toml lists every key"
        raise ConfigError(f"unknown configuration key {key!r} ({origin}); {hint}")
    return SCHEMA[section][name]


def _flatten_toml(data: Mapping[str, Any], origin: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in data.items():
        if name == "streams":
            flat[name] = _streams(value, origin)
        elif isinstance(value, dict):
            if name not in SCHEMA or not name:
                raise ConfigError(
                    f"unknown configuration section [{name}] ({origin}); known: {', '.join(s for s in SCHEMA if s)}"
                )
            for key, item in value.items():
                flat[f"{name}.{key}"] = item
        else:
            flat[name] = value
    return flat


def _env_key(variable: str) -> str:
    rest = variable[len(ENV_PREFIX) :].lower()
    for section in SCHEMA:
        if section and rest.startswith(section + "_"):
            return f"{section}.{rest[len(section) + 1 :]}"
    return rest


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's keys, flattened to ``section.key``."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise InputNotFoundError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return _flatten_toml(data, str(path))


@dataclass(frozen=True)
class Config:
    """Validated settings, flattened: ``values["classifier.max_results"]``."""

    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key, DEFAULTS.get(key))

    @property
    def cache_dir(self) -> Path | None:
        return Path(self["cache_dir"]).expanduser() if self["cache_dir"] else None

    def _declaration(self, section: str, cls: type[_Declaration]) -> _Declaration:
        return cls(**{f.name: self[f"{section}.{f.name}"] for f in fields(cls)})

    def classifier_model(self) -> ClassifierModel:
        return self._declaration("classifier", ClassifierModel)

    def detector_model(self) -> DetectorModel:
        return self._declaration("detector", DetectorModel)

    def classifier_options(self, running_mode: RunningMode = RunningMode.IMAGE, **extra: Any) -> ClassifierOptions:
        """Options for :class:`~streamer.tasks.Classifier`; ``extra`` overrides or adds fields."""
        roi = self["region_of_interest"]
        values: dict[str, Any] = {
            "model": self.classifier_model(),
            "detector": self.detector_model(),
            "stages": self["stages"],
            "running_mode": running_mode,
            "max_results": self["classifier.max_results"],
            "score_threshold": self["classifier.score_threshold"],
            "category_allowlist": tuple(self["classifier.category_allowlist"]),
            "category_denylist": tuple(self["classifier.category_denylist"]),
            "object_allowlist": tuple(self["detector.object_allowlist"]),
            "object_denylist": tuple(self["detector.object_denylist"]),
            "cascade_classes": tuple(self["detector.cascade_classes"]),
            "crop_margin": self["detector.crop_margin"],
            "display_names_locale": self["classifier.display_names_locale"],
            "region_of_interest": RegionOfInterest(*roi) if roi else None,
            "device": self["device"],
            "cache_dir": self.cache_dir,
            "threads": self["threads"],
            "engine": self.engine_options(),
        }
        return ClassifierOptions(**{**values, **extra})

    def engine_options(self) -> EngineOptions:
        """How model sessions run (``device``, ``cache_dir`` and ``[engine]``)."""
        return EngineOptions(
            device=self["device"],
            cache_dir=self.cache_dir,
            device_id=self["engine.device_id"],
            tensorrt_fp16=self["engine.tensorrt_fp16"],
            cuda_graphs=self["engine.cuda_graphs"],
            io_binding=self["engine.io_binding"],
            preprocess=self["engine.preprocess"],
            buckets=tuple(self["engine.buckets"]),
        )

    def cascade_config(self, stages: str | None = None) -> CascadeConfig:
        """What the inference core runs (``stages`` overrides the config's)."""
        options = self.classifier_options(stages=stages) if stages else self.classifier_options()
        return options.cascade_config()

    def tracking_config(self) -> TrackingConfig:
        """How streams track objects (``[tracking]``; unset keys keep the defaults)."""

        def given(cls: type[Any]) -> dict[str, Any]:
            names = {f.name for f in fields(cls)}
            return {
                k.split(".", 1)[1]: v
                for k, v in self.values.items()
                if k.startswith("tracking.") and k.split(".", 1)[1] in names
            }

        return TrackingConfig(tracker=TrackerConfig(**given(TrackerConfig)), settle=SettleConfig(**given(SettleConfig)))

    def mqtt_config(self, url: str | None = None) -> MqttConfig | None:
        """The broker to publish to: ``url`` (``--mqtt``), else ``[mqtt] url``, else ``[mqtt] host`` and the
        other keys; ``None`` when none is given. The other ``[mqtt]`` keys fill in what a URL leaves out."""
        keys = ("port", "user", "password", "ca_file", "cert_file", "key_file", "client_id")
        given = {key: self[f"mqtt.{key}"] for key in keys if self[f"mqtt.{key}"] is not None}
        for key in ("ca_file", "cert_file", "key_file"):
            if key in given:
                given[key] = Path(given[key]).expanduser()
        common = {
            "topic_prefix": self["mqtt.topic_prefix"],
            "qos": self["mqtt.qos"],
            "keepalive": self["mqtt.keepalive"],
        }
        url = url or self["mqtt.url"]
        if url:
            return MqttConfig.from_url(url, **given, **common)
        if self["mqtt.host"]:
            return MqttConfig(host=self["mqtt.host"], tls=self["mqtt.tls"], **given, **common)
        return None

    def cluster_config(self, address: str | None = None) -> ClusterConfig | None:
        """``[cluster]``, with ``address`` (``--ray``) over ``cluster.ray``; ``None``: no cluster (one process)."""
        address = address or self["cluster.ray"]
        if not address:
            return None
        return ClusterConfig(
            address=address,
            streams_per_actor=self["cluster.streams_per_actor"],
            actors=self["cluster.actors"],
            max_actors=self["cluster.max_actors"],
            actor_cpus=self["cluster.actor_cpus"],
            actor_gpus=self["cluster.actor_gpus"],
            namespace=self["cluster.namespace"],
            lost_after_s=self["cluster.lost_after_s"],
            outbox=self["cluster.outbox"],
        )

    def clip_config(self) -> ClipConfig:
        """How event clips are cut (``[storage] pre_capture_s`` and ``post_capture_s``)."""
        return ClipConfig(pre_capture_s=self["storage.pre_capture_s"], post_capture_s=self["storage.post_capture_s"])

    def event_store(self) -> EventStore:
        """The event store in ``[storage] dir``, with its retention (``retain_days``, ``max_bytes``)."""
        return EventStore(
            self.storage_dir, retain_days=self["storage.retain_days"], max_bytes=self["storage.max_bytes"]
        )

    @property
    def storage_dir(self) -> Path:
        """Where events, snapshots and clips are kept (``[storage] dir``)."""
        return Path(self["storage.dir"]).expanduser()

    def image_limits(self) -> ImageLimits:
        """The largest image that is decoded, from a file or an upload (``[limits]``)."""
        return ImageLimits(self["limits.max_image_pixels"], self["limits.max_aspect_ratio"])


def load_config(
    path: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge ``path`` (else ``$STREAMER_CONFIG``, else ``./config.toml`` if present), the
    environment, and ``overrides`` (CLI flags as ``section.key``; ``None`` values are skipped)."""
    env = os.environ if env is None else env
    if path is None and env.get("STREAMER_CONFIG"):
        path = Path(env["STREAMER_CONFIG"])
    if path is None and Path("config.toml").is_file():
        path = Path("config.toml")
    values: dict[str, Any] = {}
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        layers.append((str(path), read_toml(path)))
    layers.append(
        (
            "environment",
            {_env_key(k): v for k, v in env.items() if k.startswith(ENV_PREFIX) and k not in ENV_IGNORED},
        )
    )
    layers.append(("command line", {k: v for k, v in (overrides or {}).items() if v is not None}))
    for origin, layer in layers:
        if "streams" in layer:
            if origin != str(path):
                raise ConfigError(f"streams ({origin}) can only be set in config.toml as [[streams]] tables")
            values["streams"] = layer.pop("streams")
        for key, raw in layer.items():
            where = f"from {origin}"
            if origin == "environment":
                where = f"from {ENV_PREFIX}{key.replace('.', '_').upper()}"
            values[key] = coerce(key, raw, _kind(key, where), where)
    config = Config(values)
    config.classifier_options()  # validates choices, sizes and lists now, not at first use
    config.image_limits()
    config.tracking_config()
    config.clip_config()
    config.mqtt_config()  # a broker given in config.toml or the environment: checked now
    return config
