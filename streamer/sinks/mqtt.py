"""MQTT: one broker connection that any thread may publish to, never blocking, surviving outages.

Call order::

    config = MqttConfig.from_url("mqtts://user:secret@broker.lan", ca_file=Path("ca.pem"))
    publisher = MqttPublisher(config, on_command=handle)   # handle(topic, text) runs on paho's thread
    publisher.start()                                      # connects in the background, retries for ever
    publisher.subscribe(f"{config.topic_prefix}/+/detect/set")
    publisher.publish(f"{config.topic_prefix}/cam1/state", payload, retain=True)
    publisher.close()                                      # "offline", bounded flush, clean disconnect

The network runs on paho-mqtt's own thread. :meth:`MqttPublisher.publish`
puts a message in a bounded outbox and, while connected, hands the outbox
to paho in order, at most ``WINDOW`` messages unconfirmed at a time; during
an outage the outbox keeps the newest ``max_queue`` messages, losing the
droppable ones first, and on every reconnect it goes out in order after the
retained ``<prefix>/available`` ``online``. The broker publishes
``offline`` there (the last will) when the connection dies without
:meth:`MqttPublisher.close`.

The password never leaves :class:`MqttConfig`: its ``repr``, :attr:`MqttConfig.url`,
every log line, error and :attr:`MqttPublisher.last_error` show ``***``.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from streamer.errors import ConfigError

__all__ = ["WINDOW", "MqttConfig", "MqttPublisher", "topic_part"]

log = logging.getLogger(__name__)

WINDOW = 20
"""Messages handed to paho and not yet confirmed (written for QoS 0, acknowledged above); more wait in the outbox."""

_SCHEMES = {"mqtt": False, "mqtts": True}
_CONTROL = re.compile(r"[/+#\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # lone surrogates cannot be UTF-8


def topic_part(name: str) -> str:
    """``name`` (a stream, label or zone) as one safe topic level: ``/ + #``, NUL, control characters and lone
    surrogates (a JSON stream id may hold one; it cannot be UTF-8) become ``_``; an empty name is ``_``."""
    return _CONTROL.sub("_", name) or "_"


def _redact_url(url: str) -> str:
    """``url`` with whatever could be a password replaced by ``***``, even when it does not parse."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    if "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    shown = f"{user}:***" if colon else user
    return f"{scheme}{sep}{shown}@{hostpart}"


@dataclass(frozen=True, kw_only=True)
class MqttConfig:
    """Where and how to reach the broker; validated on creation (:class:`ConfigError` names ``mqtt.<key>``).

    ``port`` None means 1883, or 8883 with ``tls``; ``client_id`` None means ``streamer-<hostname>-<pid>``;
    ``ca_file`` None with ``tls`` means the system's certificate authorities.
    """

    host: str
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    topic_prefix: str = "streamer"
    client_id: str | None = None
    qos: int = 0
    keepalive: int = 60
    max_queue: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("mqtt.host: empty; give the broker's host name or address, e.g. 'localhost'")
        if self.port is not None and (isinstance(self.port, bool) or not 1 <= self.port <= 65535):
            raise ConfigError(f"mqtt.port: {self.port!r} is not a port; use 1..65535 (or leave it out)")
        if isinstance(self.qos, bool) or self.qos not in (0, 1, 2):
            raise ConfigError(f"mqtt.qos: {self.qos!r} is not an MQTT QoS; use 0, 1 or 2")
        if isinstance(self.keepalive, bool) or self.keepalive < 5:
            raise ConfigError(f"mqtt.keepalive: {self.keepalive!r} s is too short; use 5 seconds or more")
        if isinstance(self.max_queue, bool) or self.max_queue < 1:
            raise ConfigError(f"mqtt.max_queue: {self.max_queue!r}; use 1 or more messages")
        if self.password is not None and self.user is None:
            raise ConfigError("mqtt.password: given without mqtt.user; set the user name too")
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"mqtt.{key}: {str(path)!r} does not exist or is not a file; fix the path")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigError("mqtt.key_file: given without mqtt.cert_file; set the client certificate too")
        prefix = self.topic_prefix
        if not prefix or any(c in prefix for c in "+#\x00") or "" in prefix.split("/"):
            raise ConfigError(
                f"mqtt.topic_prefix: {prefix!r} is not a topic prefix; use levels without '+', '#' or empty "
                "levels (no leading, trailing or double '/'), e.g. 'streamer' or 'home/streamer'"
            )
        if self.client_id is not None and not self.client_id:
            raise ConfigError("mqtt.client_id: empty; give a name or leave it out")

    @classmethod
    def from_url(cls, url: str, **defaults: Any) -> MqttConfig:
        """``mqtt://[user[:password]@]host[:port][/]`` (``mqtts://`` sets ``tls``); user and password are
        percent-decoded. ``defaults`` gives the other fields; the URL's parts win over them."""
        shown = _redact_url(url)
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            reason = "bad port" if "port" in str(exc).lower() else "it does not parse"
            raise ConfigError(f"mqtt.url: {shown!r}: {reason}; write mqtt://[user:password@]host[:port]") from None
        if parts.scheme.lower() not in _SCHEMES:
            raise ConfigError(f"mqtt.url: {shown!r}: the scheme must be mqtt:// or mqtts:// (TLS)")
        if not parts.hostname:
            raise ConfigError(f"mqtt.url: {shown!r}: no host; write mqtt://[user:password@]host[:port]")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError(
                f"mqtt.url: {shown!r}: only mqtt://[user:password@]host[:port] is allowed; set the topic with "
                "mqtt.topic_prefix"
            )
        fields: dict[str, Any] = dict(defaults)
        fields["host"] = parts.hostname
        if port is not None:
            fields["port"] = port
        if parts.username is not None and parts.username != "":
            fields["user"] = unquote(parts.username)
        if parts.password is not None:
            fields["password"] = unquote(parts.password)
        if _SCHEMES[parts.scheme.lower()]:
            fields["tls"] = True
        return cls(**fields)

    @property
    def effective_port(self) -> int:
        """The port connected to: ``port``, else 8883 with TLS, else 1883."""
        if self.port is not None:
            return self.port
        return 8883 if self.tls else 1883

    @property
    def url(self) -> str:
        """The broker as a URL with the password shown as ``***``, e.g. ``mqtt://user:***@host:1883``."""
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        userinfo = ""
        if self.user is not None:
            userinfo = quote(self.user, safe="") + (":***" if self.password is not None else "") + "@"
        return f"{scheme}://{userinfo}{host}:{self.effective_port}"


@dataclass(eq=False)
class _Message:
    seq: int
    topic: str
    payload: bytes
    retain: bool
    droppable: bool


class _Client(mqtt.Client):
    """paho's client, telling us why a connection attempt failed (paho's own loop swallows the exception)."""

    def __init__(self, on_failure: Callable[[OSError], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._streamer_on_failure = on_failure

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as exc:
            self._streamer_on_failure(exc)
            raise


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS error: certificate verify failed: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.CertificateError):
        return f"TLS error: certificate does not match the host: {exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the broker running and listening on that port?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "connection timed out (is the host reachable?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    return exc.strerror or str(exc) or type(exc).__name__


def _describe_connack(reason: ReasonCode) -> str:
    value = reason.value
    if value in (0x86, 0x04):
        return "not authorized: bad username or password"
    if value in (0x87, 0x05):
        return "not authorized: the broker refused these credentials"
    return f"refused by the broker: {reason.getName()}"


class MqttPublisher:
    """One broker connection on paho's own network thread, fed through a bounded outbox; any thread may
    publish, none ever blocks.

    Call order: ``p = MqttPublisher(config, on_command=...); p.start(); p.publish(...)...; p.close()``.
    ``on_command(topic, text)`` (None: no commands) runs on paho's thread for each message on a topic given
    to :meth:`subscribe`; what it raises is logged and counted in ``errors``.

    Counters: ``sent`` (confirmed: written for QoS 0, acknowledged above), ``dropped`` (lost to a full
    outbox, a lost connection or :meth:`close`), ``replaced`` (a retained message superseded by a newer one
    on its topic before it went out), ``errors`` (failed connection attempts, unpublishable topics, failing
    ``on_command``).
    """

    def __init__(self, config: MqttConfig, *, on_command: Callable[[str, str], None] | None = None) -> None:
        self.config = config
        self.on_command = on_command
        self.availability_topic = f"{config.topic_prefix}/available"
        self.sent = 0
        self.dropped = 0
        self.replaced = 0
        self.errors = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()  # outbox, counters, state; never held while calling into paho
        self._send = threading.Lock()  # one thread at a time hands the outbox to paho, in order
        self._changed = threading.Condition(self._lock)
        self._keep: deque[_Message] = deque()  # messages that must not be dropped while a droppable waits
        self._loose: deque[_Message] = deque()  # droppable messages
        self._retained: dict[str, _Message] = {}  # topic -> the retained message waiting for it
        self._seq = 0
        self._inflight: dict[int, _Message] = {}  # mid -> message handed to paho, not yet confirmed
        self._early: set[int] = set()  # mids paho confirmed before publish() returned them to us
        self._internal: set[int] = set()  # mids of our own "online" / "offline"
        self._subscriptions: list[str] = []
        self._connected = False
        self._hold = True  # after a (re)connect: until paho has re-sent what it kept, the outbox waits
        self._session = 0  # increases on every disconnect
        self._closing = False
        self._refused = False  # the broker answered the last attempt with a refusal (already reported)
        self._started = False
        self._logged: str | None = None  # the state last logged, so each change is logged once
        client_id = config.client_id or f"streamer-{socket.gethostname()}-{os.getpid()}"
        self._client = _Client(
            self._on_failure,
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
        )
        self._client.max_inflight_messages_set(WINDOW)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    def __repr__(self) -> str:
        return f"MqttPublisher({self.config.url!r}, connected={self._connected})"

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the connection and it has not been lost since."""
        return self._connected

    @property
    def waiting(self) -> int:
        """Messages in the outbox."""
        with self._lock:
            return len(self._keep) + len(self._loose)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Connect in the background (retrying with backoff from 1 s up to 30 s) and start paho's thread.

        Raises :class:`ConfigError` when the TLS files cannot be loaded; connection problems never raise:
        they are in :attr:`last_error` and the log.
        """
        if self._started:
            raise RuntimeError("MqttPublisher.start() was already called")
        config, client = self.config, self._client
        if config.user is not None:
            client.username_pw_set(config.user, config.password)
        if config.tls:
            try:
                client.tls_set(
                    ca_certs=str(config.ca_file) if config.ca_file else None,
                    certfile=str(config.cert_file) if config.cert_file else None,
                    keyfile=str(config.key_file) if config.key_file else None,
                )
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"mqtt.ca_file / mqtt.cert_file / mqtt.key_file: cannot be loaded ({exc}); give PEM files"
                ) from None
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        self._started = True
        client.connect_async(config.host, config.effective_port, keepalive=config.keepalive)
        client.loop_start()

    def close(self, timeout: float = 5.0) -> None:
        """Send what waits (bounded by ``timeout`` seconds), publish ``offline`` retained, disconnect, stop.

        What could not be sent in time is counted in ``dropped``. Calling it twice is harmless.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self._started:
            self._shut_down(timeout)
        with self._lock:
            lost = len(self._keep) + len(self._loose) + len(self._inflight)
            self.dropped += lost
            self._keep.clear()
            self._loose.clear()
            self._retained.clear()
            self._inflight.clear()
            self._connected = False
        if lost:
            log.warning("mqtt %s: closed with %d message(s) unsent", self.config.url, lost)

    def _shut_down(self, timeout: float) -> None:
        deadline = time.monotonic() + max(0.0, timeout)
        self._pump()
        with self._changed:
            self._changed.wait_for(lambda: (not self._connected) or self._idle(), timeout=timeout * 0.7)
            connected = self._connected
        if connected:
            info = self._client.publish(self.availability_topic, "offline", qos=1, retain=True)
            with self._changed:
                self._internal.add(info.mid)
                self._changed.wait_for(
                    lambda: info.mid not in self._internal or not self._connected,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
        self._client.disconnect()
        stopper = threading.Thread(target=self._client.loop_stop, name="mqtt-close", daemon=True)
        stopper.start()
        stopper.join(max(0.5, deadline - time.monotonic()))

    # ----------------------------------------------------------------- publishing

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False, droppable: bool = False) -> None:
        """Queue ``payload`` for the full ``topic``; never blocks, never raises.

        While disconnected (or while ``WINDOW`` messages are unconfirmed) messages wait in an outbox of at
        most ``config.max_queue``; when it is full the oldest droppable goes first, else the oldest. A
        retained message replaces an older retained one still waiting for the same topic.
        """
        try:
            data = payload.encode() if isinstance(payload, str) else bytes(payload)
        except (TypeError, ValueError, UnicodeError):
            self._reject(topic, "the payload is neither bytes nor text")
            return
        if not isinstance(topic, str) or not topic or any(c in topic for c in "+#\x00"):
            self._reject(topic, "a topic to publish on must be non-empty, without '+', '#' or NUL")
            return
        with self._lock:
            if self._closing:
                self.dropped += 1
                return
            self._seq += 1
            self._admit(_Message(self._seq, topic, data, retain, droppable))
        self._pump()

    def subscribe(self, topic: str) -> None:
        """Receive messages on ``topic`` (wildcards allowed) through ``on_command``; kept across reconnects."""
        with self._lock:
            if topic in self._subscriptions:
                return
            self._subscriptions.append(topic)
            connected = self._connected
        if connected:
            self._client.subscribe(topic, qos=self.config.qos)

    def _reject(self, topic: object, reason: str) -> None:
        with self._lock:
            self.errors += 1
        log.warning("mqtt %s: not publishing on %r: %s", self.config.url, topic, reason)

    def _admit(self, message: _Message, *, front: bool = False) -> None:
        """Put ``message`` in the outbox (lock held), keeping only the newest retained one per topic and at
        most ``max_queue`` messages."""
        if message.retain:
            older = self._retained.get(message.topic)
            if older is not None:
                if older.seq > message.seq:  # a newer state is already waiting: this one is stale
                    self.replaced += 1
                    return
                (self._loose if older.droppable else self._keep).remove(older)
                self.replaced += 1
            self._retained[message.topic] = message
        queue = self._loose if message.droppable else self._keep
        if front:
            queue.appendleft(message)
        else:
            queue.append(message)
        while len(self._keep) + len(self._loose) > self.config.max_queue:
            victim = (self._loose or self._keep).popleft()
            if self._retained.get(victim.topic) is victim:
                del self._retained[victim.topic]
            self.dropped += 1

    def _next(self) -> _Message | None:
        """Take the oldest waiting message when it may go to paho now (lock held)."""
        if not self._connected or self._hold or len(self._inflight) >= WINDOW:
            return None
        if self._keep and (not self._loose or self._keep[0].seq < self._loose[0].seq):
            message = self._keep.popleft()
        elif self._loose:
            message = self._loose.popleft()
        else:
            return None
        if self._retained.get(message.topic) is message:
            del self._retained[message.topic]
        return message

    def _idle(self) -> bool:
        return not self._keep and not self._loose and not self._inflight

    def _pump(self) -> None:
        """Hand waiting messages to paho, in order; whoever holds the send lock does it, nobody waits."""
        for _ in range(self.config.max_queue + WINDOW + 2):  # each round sends, or another thread takes over
            if not self._send.acquire(blocking=False):
                return
            try:
                self._drain()
            finally:
                self._send.release()
            with self._lock:  # a publish() that found the send lock taken left its message for us
                if not self._connected or self._hold or len(self._inflight) >= WINDOW:
                    return
                if not self._keep and not self._loose:
                    return

    def _drain(self) -> None:
        qos = self.config.qos
        for _ in range(WINDOW + 1):
            with self._lock:
                message = self._next()
                session = self._session
            if message is None:
                return
            try:
                info = self._client.publish(message.topic, message.payload, qos=qos, retain=message.retain)
            except (ValueError, TypeError) as exc:  # checked in publish(); kept as a last guard
                self._reject(message.topic, str(exc))
                continue
            with self._changed:
                if info.rc == mqtt.MQTT_ERR_NO_CONN and qos == 0:
                    self._admit(message, front=True)  # the connection went away under us: retry later
                    return
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    self._admit(message, front=True)
                    return
                if info.mid in self._early:
                    self._early.discard(info.mid)
                    self.sent += 1
                    self._changed.notify_all()
                elif qos == 0 and session != self._session:
                    self.dropped += 1  # went out on a connection that is gone
                else:
                    self._inflight[info.mid] = message

    # ----------------------------------------------------------------- paho callbacks (paho's thread)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            text = _describe_connack(reason)
            with self._lock:
                self.errors += 1
                self._refused = True
            self._report(text)
            return
        with self._lock:
            self._connected = True
            self._hold = True
            self.last_error = None
            subscriptions = list(self._subscriptions)
        if self._logged != "connected":
            log.info("mqtt %s: connected", self.config.url)
        self._logged = "connected"
        info = client.publish(self.availability_topic, "online", qos=1, retain=True)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self._hold = False
            else:
                self._internal.add(info.mid)
        for topic in subscriptions:
            client.subscribe(topic, qos=self.config.qos)
        self._pump()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        with self._changed:
            was = self._connected
            self._connected = False
            self._hold = True
            self._session += 1
            self._internal.clear()
            if self.config.qos == 0:  # paho forgets QoS 0 packets it had not written: they are lost
                self.dropped += len(self._inflight)
                self._inflight.clear()
            closing = self._closing
            refused, self._refused = self._refused, False
            if not was and not refused and not closing:
                self.errors += 1
            self._changed.notify_all()
        if closing or refused:
            return
        name = reason.getName()
        detail = "" if name == "Unspecified error" else f" ({name})"
        if was:
            self._report(f"connection lost{detail}")
        else:
            self._report(
                f"the connection closed before the broker accepted it{detail}; is this a TLS port (mqtts://) "
                "or not an MQTT broker?"
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        with self._changed:
            if self._inflight.pop(mid, None) is not None:
                self.sent += 1
            elif mid in self._internal:
                self._internal.discard(mid)
            else:
                self._early.add(mid)
                if len(self._early) > 4 * WINDOW:  # only ever a few: never let it grow
                    self._early.clear()
            self._hold = False  # paho re-sends what it kept before it reads anything: that is done
            self._changed.notify_all()
        self._pump()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.on_command is None:
            return
        text = message.payload.decode(errors="replace")
        try:
            self.on_command(message.topic, text)
        except Exception:
            with self._lock:
                self.errors += 1
            log.exception("mqtt %s: on_command failed for %r", self.config.url, message.topic)

    def _on_failure(self, exc: OSError) -> None:
        with self._lock:
            self.errors += 1
        self._report(_describe_os_error(exc))

    def _report(self, reason: str) -> None:
        """Keep ``reason`` as :attr:`last_error`; log it when it differs from what was logged last."""
        text = f"{self.config.url}: {reason}"
        password = self.config.password
        if password:
            text = text.replace(password, "***")
        self.last_error = text
        if self._logged != reason:
            self._logged = reason
            log.warning("mqtt %s", text)
