"""MQTT publisher against a real mosquitto: round trips, credentials, TLS, outages, the last will, config."""

from __future__ import annotations

import base64
import logging
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.publish as one_shot
import pytest

from streamer.errors import ConfigError
from streamer.sinks.mqtt import MqttConfig, MqttPublisher, topic_part
from tests.mqtt_broker import HOST, free_port, make_tls, mosquitto, password_line, subscriber
from tests.process import spawn
from tests.required import unavailable

SECRET = "s3cr:et/p@ss%"  # characters that need percent-encoding in a URL


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` every 20 ms; fail naming ``what`` when it is still false after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        time.sleep(0.02)


@contextmanager
def publisher(config: MqttConfig, **kwargs: Callable[[str, str], None]) -> Iterator[MqttPublisher]:
    p = MqttPublisher(config, **kwargs)
    p.start()
    try:
        yield p
    finally:
        p.close(timeout=5.0)


# ---------------------------------------------------------------------- pure parts


def test_topic_part_makes_one_safe_level() -> None:
    assert topic_part("front door") == "front door"
    assert topic_part("a/b+c#d") == "a_b_c_d"
    assert topic_part("x\x00y\n\tz\x7f") == "x_y__z_"
    assert topic_part("") == "_"
    assert topic_part("café") == "café"
    assert topic_part("a\ud800b") == "a_b", "a lone surrogate (from JSON) cannot be UTF-8"


def test_config_validation_names_the_key(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"host": ""}, "mqtt.host"),
        ({"host": "h", "port": 0}, "mqtt.port"),
        ({"host": "h", "port": 70000}, "mqtt.port"),
        ({"host": "h", "qos": 3}, "mqtt.qos"),
        ({"host": "h", "keepalive": 4}, "mqtt.keepalive"),
        ({"host": "h", "max_queue": 0}, "mqtt.max_queue"),
        ({"host": "h", "ca_file": tmp_path / "missing.pem"}, "mqtt.ca_file"),
        ({"host": "h", "topic_prefix": "a/+/b"}, "mqtt.topic_prefix"),
        ({"host": "h", "topic_prefix": "a//b"}, "mqtt.topic_prefix"),
        ({"host": "h", "topic_prefix": "a/"}, "mqtt.topic_prefix"),
        ({"host": "h", "topic_prefix": ""}, "mqtt.topic_prefix"),
        ({"host": "h", "topic_prefix": "#"}, "mqtt.topic_prefix"),
    ]
    for fields, key in cases:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            MqttConfig(**fields)  # type: ignore[arg-type]
    config = MqttConfig(host="h", user="u", password=SECRET)
    assert SECRET not in repr(config)
    assert config.url == "mqtt://u:***@h:1883"
    assert MqttConfig(host="h", tls=True).url == "mqtts://h:8883"
    assert MqttConfig(host="::1", port=1884).url == "mqtt://[::1]:1884"


def test_from_url_parses_and_redacts(tmp_path: Path) -> None:
    encoded = "s3cr%3Aet%2Fp%40ss%25"
    config = MqttConfig.from_url(f"mqtt://al%20ice:{encoded}@broker.lan:1884/", topic_prefix="home/cams")
    assert (config.host, config.port, config.user, config.password) == ("broker.lan", 1884, "al ice", SECRET)
    assert config.tls is False and config.topic_prefix == "home/cams"
    assert config.url == "mqtt://al%20ice:***@broker.lan:1884"
    assert SECRET not in repr(config) and encoded not in repr(config)

    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    secure = MqttConfig.from_url("mqtts://broker.lan", ca_file=ca)
    assert (secure.tls, secure.port, secure.effective_port, secure.ca_file) == (True, None, 8883, ca)
    assert secure.url == "mqtts://broker.lan:8883"
    assert MqttConfig.from_url("mqtt://10.0.0.2").effective_port == 1883
    assert MqttConfig.from_url("mqtt://u@h").user == "u"

    for bad in (
        f"http://u:{SECRET}@host",
        f"mqtt://u:{SECRET}@host:99999",
        f"mqtt://u:{SECRET}@host:port",
        f"mqtt://u:{SECRET}@",
        f"mqtt://u:{SECRET}@host/some/topic",
        f"mqtt://u:{SECRET}@host?x=1",
        f"u:{SECRET}@host",
        "mqtt://u:pa/ss@host",
    ):
        with pytest.raises(ConfigError, match=r"mqtt\.url") as caught:
            MqttConfig.from_url(bad)
        text = str(caught.value)
        assert SECRET not in text and "pa/ss" not in text and "***" in text, text
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        MqttConfig.from_url("mqtt://host:0")


def test_outbox_keeps_newest_state_and_drops_droppables_first() -> None:
    """Never started: everything waits in the outbox, whose policy is visible through the counters."""
    p = MqttPublisher(MqttConfig(host=HOST, port=1, max_queue=4))
    p.publish("t/state", "1", retain=True)
    p.publish("t/state", "2", retain=True)
    assert (p.waiting, p.replaced, p.dropped) == (1, 1, 0)
    p.publish("t/a", "a", droppable=True)
    p.publish("t/b", "b")
    p.publish("t/c", "c", droppable=True)
    assert (p.waiting, p.dropped) == (4, 0)
    p.publish("t/d", "d")  # full: the oldest droppable (a) goes
    p.publish("t/e", "e")  # then the next droppable (c)
    p.publish("t/f", "f")  # then the oldest of all (the state)
    assert (p.waiting, p.dropped) == (4, 3)
    waiting = [m.topic for m in list(p._keep) + list(p._loose)]
    assert sorted(waiting) == ["t/b", "t/d", "t/e", "t/f"]
    p.publish("", "x")
    p.publish("t/+", "x")
    assert p.errors == 2 and p.waiting == 4
    p.close()
    assert p.dropped == 7


# ---------------------------------------------------------------------- a real broker


def test_round_trip_online_offline_and_commands(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker, subscriber(broker, ["rt/#"]) as sub:
        commands: list[tuple[str, str]] = []
        config = MqttConfig(host=HOST, port=broker.port, topic_prefix="rt", qos=1)
        p = MqttPublisher(config, on_command=lambda topic, text: commands.append((topic, text)))
        p.start()
        try:
            p.subscribe("rt/+/detect/set")
            wait_for(lambda: p.connected, "connected")
            assert sub.until("rt/available", b"online")
            with subscriber(broker, ["rt/available"]) as late:
                assert late.next() == ("rt/available", b"online", True)  # retained
            sent = [(f"rt/{topic_part(name)}/state", f"{name}-{i}".encode()) for i in range(5) for name in ("a", "b/c")]
            for topic, payload in sent:
                p.publish(topic, payload)
            got = [sub.next()[:2] for _ in sent]
            assert got == sent
            wait_for(lambda: p.sent == len(sent), "all confirmed")

            one_shot.single("rt/cam1/detect/set", "OFF", hostname=HOST, port=broker.port)
            wait_for(lambda: bool(commands), "a command received")
            assert commands == [("rt/cam1/detect/set", "OFF")]
        finally:
            p.close()
        assert not p.connected and p.dropped == 0 and p.errors == 0
        assert sub.until("rt/available", b"offline")
        with subscriber(broker, ["rt/available"]) as late:
            assert late.next() == ("rt/available", b"offline", True)


def test_password_right_and_wrong(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with mosquitto(tmp_path / "broker", users={"alice": SECRET, "watcher": "w"}) as broker:
        with subscriber(broker, ["pw/#"], user="watcher", password="w") as sub:
            good = MqttConfig(host=HOST, port=broker.port, user="alice", password=SECRET, topic_prefix="pw")
            with publisher(good) as p:
                wait_for(lambda: p.connected, "connected with the right password")
                p.publish("pw/x", "hello")
                assert sub.until("pw/x", b"hello")
            assert p.last_error is None

        wrong = "not-" + SECRET
        bad = MqttConfig(host=HOST, port=broker.port, user="alice", password=wrong, topic_prefix="pw")
        with publisher(bad) as p:
            wait_for(lambda: p.last_error is not None, "an error reported")
            error = p.last_error or ""
            assert "not authorized" in error and f"{HOST}:{broker.port}" in error, error
            assert not p.connected
            wait_for(lambda: p.errors >= 2, "a second attempt")  # it keeps retrying
            p.publish("pw/x", "kept")
            assert p.waiting == 1
        logged = caplog.text
        assert "not authorized" in logged
        for secret in (SECRET, wrong):
            assert secret not in logged and secret not in error and secret not in repr(p)
        assert logged.count("not authorized") == 1  # each state change is logged once


def test_unreachable_broker_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with publisher(MqttConfig(host=HOST, port=port, user="u", password=SECRET)) as p:
        wait_for(lambda: p.last_error is not None, "an error reported")
        assert "connection refused" in (p.last_error or "")
        assert f"mqtt://u:***@{HOST}:{port}" in (p.last_error or "")
    assert SECRET not in caplog.text


def test_tls_with_a_test_ca(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    other = make_tls(tmp_path / "other", name="other")
    with mosquitto(tmp_path / "broker", tls=tls) as broker:
        assert broker.url.startswith("mqtts://")
        with subscriber(broker, ["tls/#"], ca_file=tls.ca_cert) as sub:
            config = MqttConfig.from_url(f"mqtts://{HOST}:{broker.port}", ca_file=tls.ca_cert, topic_prefix="tls")
            assert config.tls
            with publisher(config) as p:
                wait_for(lambda: p.connected, "connected over TLS")
                p.publish("tls/x", "secure")
                assert sub.until("tls/x", b"secure")
        for ca in (None, other.ca_cert):
            config = MqttConfig(host=HOST, port=broker.port, tls=True, ca_file=ca, topic_prefix="tls")
            with publisher(config) as p:
                wait_for(lambda: p.last_error is not None, "a TLS error reported")
                assert "certificate" in (p.last_error or ""), p.last_error
                assert not p.connected
        with publisher(MqttConfig(host=HOST, port=broker.port, topic_prefix="tls")) as p:  # no TLS on a TLS port
            wait_for(lambda: p.last_error is not None, "an error reported")
            assert "mqtts://" in (p.last_error or "") and not p.connected, p.last_error


@pytest.mark.parametrize("qos", [0, 1])
def test_outage_keeps_what_matters_in_order(tmp_path: Path, qos: int) -> None:
    with (
        mosquitto(tmp_path / "broker", persistent=True) as broker,
        subscriber(broker, ["out/data/#"], client_id=f"outage-watcher-{qos}") as sub,
    ):
        config = MqttConfig(host=HOST, port=broker.port, topic_prefix="out", qos=qos, max_queue=10)
        with publisher(config) as p:
            wait_for(lambda: p.connected, "connected")
            for i in range(3):
                p.publish(f"out/data/before/{i}", str(i))
            assert [sub.next()[1] for _ in range(3)] == [b"0", b"1", b"2"]
            wait_for(lambda: p.sent == 3, "the first messages confirmed")
            saved = broker.folder / "mosquitto.db"
            marked = time.time()
            p.publish("out/mark", "x", retain=True)  # a change the broker saves, with the watcher's session
            wait_for(lambda: saved.exists() and saved.stat().st_mtime > marked, "the broker saved its sessions")
            wait_for(lambda: p.sent == 4, "the mark confirmed")

            broker.kill()
            wait_for(lambda: not p.connected, "disconnected")
            published: list[tuple[str, bool]] = []
            for i in range(15):  # 8 droppable, 7 not: 5 over max_queue
                droppable = i % 2 == 0
                p.publish(f"out/data/during/{i}", f"{i}", droppable=droppable)
                published.append((f"{i}", droppable))
            assert p.waiting == 10 and p.dropped == 5

            broker.start()
            wait_for(lambda: p.connected, "reconnected", timeout=60)
            wait_for(lambda: p.sent == 4 + 10, "the outbox sent", timeout=30)
            arrived: list[str] = []
            for _ in range(100):  # the broker may deliver "before" messages again (QoS 1 allows it): skip them
                topic, payload, _ = sub.next(30)
                if topic.startswith("out/data/during/"):
                    arrived.append(payload.decode())
                    if len(arrived) == 10:
                        break
        expected = [text for text, droppable in published if not droppable or int(text) >= 10]
        assert arrived == expected
        assert all(text in arrived for text, droppable in published if not droppable)
        assert p.dropped == len(published) - len(arrived) == 5
        dropped = [text for text, _ in published if text not in arrived]
        assert dropped == ["0", "2", "4", "6", "8"]  # droppables, oldest first
        rest = [m for m in list(sub.messages.queue) if m[0].startswith("out/data/during/")]
        assert rest == []


CHILD = """
import sys, time
from streamer.sinks.mqtt import MqttConfig, MqttPublisher
p = MqttPublisher(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), keepalive=5, topic_prefix="will"))
p.start()
deadline = time.monotonic() + 60
while not p.connected and time.monotonic() < deadline:
    time.sleep(0.02)
print("ready" if p.connected else "not connected", flush=True)
time.sleep(120)
"""


def test_last_will_when_the_process_dies(tmp_path: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker, subscriber(broker, ["will/available"]) as sub:
        with spawn([sys.executable, "-c", CHILD, str(broker.port)]) as child:
            child.wait_for_stdout(r"^ready$", timeout=60)
            assert sub.until("will/available", b"online")
            child.send_signal(signal.SIGKILL)
            child.wait(30)
            assert sub.until("will/available", b"offline", timeout=20)
        with subscriber(broker, ["will/available"]) as late:
            assert late.next() == ("will/available", b"offline", True)


def test_password_file_format_matches_mosquitto(tmp_path: Path) -> None:
    """The line written by the helper is what mosquitto_passwd (shipped with mosquitto) writes."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        unavailable("mosquitto_passwd (Debian's mosquitto package) is not installed: apt-get install mosquitto")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "alice", SECRET], check=True, capture_output=True, timeout=30)
    line = path.read_text().strip()
    salt = line.split("$")[3]
    assert password_line("alice", SECRET, salt=base64.b64decode(salt)) == line
