"""A real mosquitto for tests: on a free 127.0.0.1 port, optionally with a password file and TLS, killable.

Call order::

    with mosquitto(tmp_path, users={"alice": "secret"}, tls=make_tls(tmp_path)) as broker:
        broker.port, broker.url                  # 127.0.0.1 and its port
        broker.kill()                            # SIGKILL: clients see the connection die
        broker.start()                           # the same port and config again
    # stopped and waited for on the way out, whatever happened

``mosquitto`` calls :func:`tests.required.unavailable` when the binary is
missing. The password file is written here in mosquitto's own ``$7$``
format (PBKDF2-SHA512, 101 iterations, 12-byte salt), so
``mosquitto_passwd`` is not needed. :func:`make_tls` makes a certificate
authority and a server certificate for ``127.0.0.1``/``localhost`` with
``cryptography``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.required import unavailable

__all__ = ["Broker", "Subscription", "TlsFiles", "free_port", "make_tls", "mosquitto", "password_line", "subscriber"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def password_line(user: str, password: str, *, salt: bytes | None = None) -> str:
    """One line of a mosquitto 2 password file: ``user:$7$101$<salt>$<PBKDF2-SHA512 hash>`` (base64)."""
    salt = os.urandom(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    return f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the authority's certificate and key, and the server's certificate and key it signed."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def make_tls(folder: Path, *, name: str = "test") -> TlsFiles:
    """A fresh certificate authority ``name`` in ``folder`` and a server certificate for 127.0.0.1/localhost."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"streamer {name} CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def write_key(path: Path, private: ec.EllipticCurvePrivateKey) -> Path:
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return path

    files = TlsFiles(
        ca_cert=folder / f"{name}-ca.pem",
        ca_key=write_key(folder / f"{name}-ca.key", ca_key),
        server_cert=folder / f"{name}-server.pem",
        server_key=write_key(folder / f"{name}-server.key", key),
    )
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


class Broker:
    """One mosquitto process on 127.0.0.1:``port``, with its config file in ``folder``; restartable."""

    def __init__(self, binary: str, folder: Path, port: int, *, tls: bool) -> None:
        self.binary = binary
        self.folder = folder
        self.port = port
        self.tls = tls
        self.config = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Start mosquitto and wait (bounded) until its port accepts connections."""
        if self.alive():
            raise RuntimeError("mosquitto is already running")
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdin=subprocess.DEVNULL, stdout=out, stderr=out
            )
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError(f"mosquitto exited with {self._process.returncode}:\n{self.read_log()[-3000:]}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1.0):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"mosquitto did not listen on {self.port} within {timeout} s") from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, then wait: no goodbye to its clients, no will sent for them."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait(30)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after 10 s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)

    def restart(self) -> None:
        self.kill()
        self.start()

    def read_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@contextmanager
def mosquitto(
    folder: Path,
    *,
    users: Mapping[str, str] | None = None,
    tls: TlsFiles | None = None,
    port: int | None = None,
    persistent: bool = False,
) -> Iterator[Broker]:
    """A started mosquitto in ``folder``: anonymous unless ``users`` (user -> password); TLS with ``tls``.

    ``persistent`` saves sessions to ``folder/mosquitto.db`` after every change (and queues QoS 0 messages
    for absent persistent sessions), so a subscriber's session outlives :meth:`Broker.kill`.
    """
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        unavailable("mosquitto (the MQTT broker) is not installed: apt-get install mosquitto")
    folder.mkdir(parents=True, exist_ok=True)
    broker = Broker(binary, folder, port or free_port(), tls=tls is not None)
    lines = [
        f"listener {broker.port} {HOST}",
        *(
            [
                "persistence true",
                f"persistence_location {folder}/",
                "autosave_interval 1",
                "autosave_on_changes true",
                "queue_qos0_messages true",
            ]
            if persistent
            else ["persistence false"]
        ),
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # else mosquitto drops to user "mosquitto", who cannot read these files
    if users is not None:
        passwords = folder / "passwords"
        passwords.write_text("".join(password_line(u, p) + "\n" for u, p in users.items()))
        passwords.chmod(0o600)
        lines += ["allow_anonymous false", f"password_file {passwords}"]
    else:
        lines.append("allow_anonymous true")
    if tls is not None:
        lines += [f"cafile {tls.ca_cert}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
    broker.config.write_text("\n".join(lines) + "\n")
    try:
        broker.start()
        yield broker
    finally:
        broker.kill()


class Subscription:
    """Messages a :func:`subscriber` received: ``(topic, payload, retained)``, read with bounded waits."""

    def __init__(self, messages: queue.Queue[tuple[str, bytes, bool]]) -> None:
        self.messages = messages

    def next(self, timeout: float = 20.0) -> tuple[str, bytes, bool]:
        """The next message; fails the test if none comes within ``timeout`` seconds."""
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout} s") from None

    def until(self, topic: str, payload: bytes, timeout: float = 20.0) -> list[tuple[str, bytes, bool]]:
        """Messages up to and including the first ``payload`` on ``topic``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        seen: list[tuple[str, bytes, bool]] = []
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            seen.append(message)
            if message[0] == topic and message[1] == payload:
                return seen
            if len(seen) > 100_000:
                raise AssertionError(f"{payload!r} on {topic!r} not among {len(seen)} messages")


@contextmanager
def subscriber(
    broker: Broker,
    topics: list[str],
    *,
    user: str | None = None,
    password: str | None = None,
    ca_file: Path | None = None,
    client_id: str | None = None,
    timeout: float = 20.0,
) -> Iterator[Subscription]:
    """A plain paho client subscribed (QoS 1) to ``topics``; its messages arrive on ``.messages`` (a queue).

    With a ``client_id`` its session is persistent (clean session off): with a ``persistent`` broker it
    survives a kill and restart, the client reconnects by itself and gets what was queued meanwhile.
    """
    received: queue.Queue[tuple[str, bytes, bool]] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"test-sub-{os.getpid()}-{time.monotonic_ns()}",
        clean_session=client_id is None,
    )
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    if user is not None:
        client.username_pw_set(user, password)
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file))

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: object, properties: object) -> None:
        for topic in topics:
            c.subscribe(topic, qos=1)

    def on_subscribe(c: mqtt.Client, userdata: object, mid: int, reasons: object, properties: object) -> None:
        subscribed.put(mid)

    def on_message(c: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.put((message.topic, bytes(message.payload), bool(message.retain)))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, broker.port, keepalive=30)
    client.loop_start()
    try:
        for _ in topics:
            subscribed.get(timeout=timeout)
        yield Subscription(received)
    finally:
        client.disconnect()
        client.loop_stop()
