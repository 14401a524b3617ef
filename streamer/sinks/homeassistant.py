"""Home Assistant MQTT discovery: the retained config messages that make one device per stream.

Pure: :func:`discovery` and :func:`removal` only build ``(topic, payload)``
pairs; the MQTT client (:mod:`streamer.sinks.mqtt`) publishes them retained,
discovery after each connect and removal when a stream goes away. Each stream
becomes one Home Assistant device holding, on the topics streamer publishes:

- per label: ``<label> occupancy`` (binary_sensor, ON while
  ``<prefix>/<stream>/<label>`` is above 0), ``<label> count`` (sensor, the
  same topic) and ``<label> snapshot`` (camera,
  ``<prefix>/<stream>/<label>/snapshot``);
- per zone and label: ``<zone> <label> occupancy`` and ``<zone> <label> count``
  on ``<prefix>/<zone>/<label>``;
- ``Detect`` (switch: ``<prefix>/<stream>/detect/set``, ``.../detect/state``),
  ``FPS`` and ``State`` (sensors: ``<prefix>/<stream>/fps``, ``.../state``).

Every entity is available while ``<prefix>/available`` says ``online`` (the
client's last will says ``offline``).

Discovery topics are ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``;
Home Assistant allows only ``[a-zA-Z0-9_-]`` in ``node_id`` and ``object_id``.
``object_id`` is ``<node_id>_<readable>_<hash>``: ``readable`` is the stream,
zone, label and entity kind with every other character replaced by ``_`` (so
``a/b`` and ``a_b`` read alike, and it is cut to 40 characters), and ``hash``
is 12 hex digits of BLAKE2b over the exact, JSON-encoded
``[node_id, stream, entity kind, zone, label]``. Names that read alike still
differ in the hash; two entities collide only if 48-bit hashes collide as well
(about n**2 / 2**49 for n entities). The same string is the entity's
``unique_id``, so it is stable across restarts and versions as long as names
are. ``object_id`` (deprecated by Home Assistant 2025.10 in the payload) and
``default_entity_id`` are not sent: Home Assistant derives readable entity ids
from the device name (the stream) and the entity name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streamer.sinks.mqtt import topic_part

__all__ = ["discovery", "removal"]

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
_READABLE_MAX = 40
_ON = "ON"
_OFF = "OFF"
# ON while the retained count is above zero; a payload that is not a number reads as 0 (OFF).
_OCCUPIED = "{{ 'ON' if (value | int(0)) > 0 else 'OFF' }}"


@dataclass(frozen=True)
class _Entity:
    """One discovered entity before its topic and payload are made: what it is and its platform options."""

    component: str
    kind: str
    zone: str | None  # None: the stream's own count, not a zone's
    label: str
    options: Mapping[str, object]


def discovery(
    prefix: str,
    stream: str,
    labels: Sequence[str],
    zones: Sequence[str],
    *,
    node_id: str = "streamer",
    discovery_prefix: str = "homeassistant",
    version: str = "",
) -> list[tuple[str, str]]:
    """Retained discovery messages ``(topic, JSON payload)`` creating one Home Assistant device for ``stream``.

    Per label a binary_sensor (occupancy, ON while ``<prefix>/<stream>/<label>``
    is above 0), a count sensor (state_class measurement) and a camera fed by
    ``<prefix>/<stream>/<label>/snapshot``; per zone and label the binary_sensor
    and count sensor on ``<prefix>/<zone>/<label>``; a detect switch
    (``<prefix>/<stream>/detect/set`` and ``.../detect/state``, ON/OFF); an fps
    and a state sensor. ``version`` is the device's and origin's software
    version; ``""`` leaves it out. Duplicate labels or zones count once.
    Raises ValueError naming a bad ``prefix``, ``node_id`` or ``discovery_prefix``.
    """
    _check(prefix, node_id, discovery_prefix)
    device: dict[str, object] = {
        "identifiers": [f"{node_id}:{stream}"],
        "manufacturer": "streamer",
        "model": "video stream",
        "name": stream or "_",
    }
    origin: dict[str, object] = {"name": "streamer"}
    if version:
        device["sw_version"] = version
        origin["sw_version"] = version
    availability = [{"payload_available": "online", "payload_not_available": "offline", "topic": f"{prefix}/available"}]
    messages = []
    for entity in _entities(prefix, stream, labels, zones):
        object_id = _object_id(node_id, stream, entity)
        payload = {
            **entity.options,
            "availability": availability,
            "device": device,
            "origin": origin,
            "unique_id": object_id,
        }
        messages.append((_config_topic(discovery_prefix, node_id, entity.component, object_id), _dumps(payload)))
    return messages


def removal(
    prefix: str,
    stream: str,
    labels: Sequence[str],
    zones: Sequence[str],
    *,
    node_id: str = "streamer",
    discovery_prefix: str = "homeassistant",
) -> list[tuple[str, str]]:
    """The topics of :func:`discovery` (same arguments) with empty payloads: published retained, Home Assistant
    removes those entities and the broker forgets the configs. Raises ValueError as :func:`discovery` does."""
    _check(prefix, node_id, discovery_prefix)
    return [
        (_config_topic(discovery_prefix, node_id, entity.component, _object_id(node_id, stream, entity)), "")
        for entity in _entities(prefix, stream, labels, zones)
    ]


def _check(prefix: str, node_id: str, discovery_prefix: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", node_id):
        raise ValueError(
            f"Home Assistant node_id {node_id!r} must be made of letters, digits, '_' and '-' only (e.g. 'streamer')"
        )
    for key, value in (("prefix", prefix), ("discovery_prefix", discovery_prefix)):
        if not value or any(ch in value for ch in "+#\0") or value.startswith("/") or value.endswith("/"):
            raise ValueError(
                f"MQTT {key} {value!r} must be a non-empty topic without '+', '#', NUL or a leading or trailing '/'"
            )


def _entities(prefix: str, stream: str, labels: Sequence[str], zones: Sequence[str]) -> list[_Entity]:
    """Every entity of one stream's device, in a fixed order: per label, per zone and label, then the stream's own."""
    base = f"{prefix}/{topic_part(stream)}"
    entities = []
    for label in dict.fromkeys(labels):
        count = f"{base}/{topic_part(label)}"
        entities += [
            _occupancy(None, label, count),
            _count(None, label, count),
            _Entity("camera", "snapshot", None, label, {"name": f"{label} snapshot", "topic": f"{count}/snapshot"}),
        ]
    for zone in dict.fromkeys(zones):
        for label in dict.fromkeys(labels):
            count = f"{prefix}/{topic_part(zone)}/{topic_part(label)}"
            entities += [_occupancy(zone, label, count), _count(zone, label, count)]
    detect = {
        "command_topic": f"{base}/detect/set",
        "entity_category": "config",
        "name": "Detect",
        "payload_off": _OFF,
        "payload_on": _ON,
        "state_off": _OFF,
        "state_on": _ON,
        "state_topic": f"{base}/detect/state",
    }
    fps = {
        "entity_category": "diagnostic",
        "name": "FPS",
        "state_class": "measurement",
        "state_topic": f"{base}/fps",
        "suggested_display_precision": 1,
        "unit_of_measurement": "fps",
    }
    state = {"entity_category": "diagnostic", "name": "State", "state_topic": f"{base}/state"}
    return [
        *entities,
        _Entity("switch", "detect", None, "", detect),
        _Entity("sensor", "fps", None, "", fps),
        _Entity("sensor", "state", None, "", state),
    ]


def _occupancy(zone: str | None, label: str, topic: str) -> _Entity:
    options: dict[str, object] = {
        "device_class": "occupancy",
        "name": _name(zone, label, "occupancy"),
        "payload_off": _OFF,
        "payload_on": _ON,
        "state_topic": topic,
        "value_template": _OCCUPIED,
    }
    return _Entity("binary_sensor", "occupancy" if zone is None else "zone_occupancy", zone, label, options)


def _count(zone: str | None, label: str, topic: str) -> _Entity:
    options: dict[str, object] = {
        "name": _name(zone, label, "count"),
        "state_class": "measurement",
        "state_topic": topic,
    }
    return _Entity("sensor", "count" if zone is None else "zone_count", zone, label, options)


def _name(zone: str | None, label: str, what: str) -> str:
    """``[zone] label what``; an empty zone or label shows as ``_``, as in its topic."""
    where = [] if zone is None else [zone or "_"]
    return " ".join([*where, label or "_", what])


def _object_id(node_id: str, stream: str, entity: _Entity) -> str:
    """``<node_id>_<readable>_<12 hex>``: see the module docstring for why it is unique."""
    exact = json.dumps([node_id, stream, entity.kind, entity.zone, entity.label])
    digest = hashlib.blake2b(exact.encode("ascii"), digest_size=6).hexdigest()
    words = "_".join(part for part in (stream, entity.zone, entity.label, entity.kind) if part)
    readable = _SAFE.sub("_", words).strip("_")[:_READABLE_MAX].strip("_")
    return "_".join(part for part in (node_id, readable, digest) if part)


def _config_topic(discovery_prefix: str, node_id: str, component: str, object_id: str) -> str:
    return f"{discovery_prefix}/{component}/{node_id}/{object_id}/config"


def _dumps(payload: dict[str, object]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
