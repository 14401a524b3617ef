"""streamer on a real MQTT broker (Debian's mosquitto): a real clip run seen by a real subscriber, Home Assistant
discovery, detect ON/OFF, the last will of a killed process, and a wrong password that never leaks."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from streamer.config import StreamSpec, load_config
from streamer.errors import ConfigError
from streamer.frames import Frame
from streamer.results import FrameResult
from streamer.runtime import Runtime
from streamer.sinks.mqtt import MqttConfig
from streamer.tracking.zones import zones_from_config
from tests.media import make_clip
from tests.mqtt_broker import Subscription, mosquitto, subscriber
from tests.process import child_env, spawn_streamer

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
RIGHT = [{"name": "right", "polygon": [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]], "inertia": 1}]


def _drain(messages: Subscription, until: float) -> list[tuple[str, bytes, bool]]:
    """Everything that arrives until the monotonic time ``until``."""
    seen: list[tuple[str, bytes, bool]] = []
    while (left := until - time.monotonic()) > 0:
        try:
            seen.append(messages.messages.get(timeout=min(left, 0.5)))
        except Exception:
            continue
    return seen


def _runtime(cache_dir: Path, storage: Path, port: int, **overrides: Any) -> Runtime:
    values = {"device": "cpu", "cache_dir": str(cache_dir), "stages": "detect", "storage.dir": str(storage)}
    return Runtime(
        load_config(env={}, overrides={**values, **overrides}),
        mqtt=MqttConfig(host="127.0.0.1", port=port, keepalive=10),
    )


def test_a_clip_run_on_the_bus_with_home_assistant_discovery(tmp_path: Path, cache_dir: Path) -> None:
    with mosquitto(tmp_path / "broker") as broker, subscriber(broker, ["streamer/#", "homeassistant/#"]) as seen:
        runtime = _runtime(cache_dir, tmp_path / "data", broker.port)
        spec = StreamSpec(
            id="street", source=str(SAMPLES / "street.mp4"), realtime=False, zones=zones_from_config(RIGHT, "z")
        )
        runtime.start()
        try:
            runtime.add_stream(spec)
            assert runtime.wait(60), "the file ends"
            messages = _drain(seen, time.monotonic() + 8)  # the events' ends, a state tick (every 5 s)
            runtime.remove_stream("street")
            removed = _drain(seen, time.monotonic() + 3)
        finally:
            runtime.stop()
        offline = _drain(seen, time.monotonic() + 3)
    topics = {topic for topic, _, _ in messages}
    assert ("streamer/available", b"online", True) in messages or any(
        t == "streamer/available" and p == b"online" for t, p, _ in messages
    )
    events = [json.loads(p) for t, p, _ in messages if t == "streamer/events"]
    assert {"new", "end"} <= {e["type"] for e in events}, events
    new = next(e for e in events if e["type"] == "new")
    assert new["before"] is None and new["after"]["stream"] == "street" and new["after"]["id"]
    counts = {
        t: int(p) for t, p, _ in messages if t.count("/") == 2 and t.startswith("streamer/street/") and p.isdigit()
    }
    assert any(n > 0 for n in counts.values()), counts
    assert any(t.startswith("streamer/right/") for t in topics), "zone counts"
    snapshots = [p for t, p, _ in messages if t.endswith("/snapshot")]
    assert snapshots and all(p.startswith(b"\xff\xd8") for p in snapshots), "JPEG snapshots"
    assert "streamer/street/state" in topics and "streamer/street/detect/state" in topics
    configs = {t: json.loads(p) for t, p, _ in messages if t.startswith("homeassistant/") and p}
    assert configs, "discovery"
    for payload in configs.values():
        assert payload["unique_id"] and payload["availability"][0]["topic"] == "streamer/available"
        assert payload["device"]["identifiers"]
    kinds = {t.split("/")[1] for t in configs}
    assert {"binary_sensor", "sensor", "camera", "switch"} <= kinds, kinds
    assert all("state_topic" in p for t, p in configs.items() if t.split("/")[1] in ("binary_sensor", "sensor"))
    emptied = {t for t, p, _ in removed if t.startswith("homeassistant/") and p == b""}
    assert emptied == set(configs), "removing the stream removes its entities"
    assert ("streamer/available", b"offline", True) in offline or any(
        t == "streamer/available" and p == b"offline" for t, p, _ in offline
    ), "a clean stop says offline"


def test_detect_off_over_mqtt_stops_one_stream_only(tmp_path: Path, cache_dir: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    counts: dict[str, int] = {"a": 0, "b": 0}

    def count(result: FrameResult, frame: Frame) -> None:
        counts[result.stream] += 1

    with mosquitto(tmp_path / "broker") as broker, subscriber(broker, ["streamer/+/detect/state"]) as seen:
        runtime = _runtime(cache_dir, tmp_path / "data", broker.port, stages="classify")
        runtime.subscribe(count)
        for name in ("a", "b"):
            runtime.add_stream(StreamSpec(id=name, source=str(clip), loop=True))
        runtime.start()
        control = mqtt.Client(CallbackAPIVersion.VERSION2)
        control.connect("127.0.0.1", broker.port)
        control.loop_start()
        try:
            seen.until("streamer/a/detect/state", b"ON")
            control.publish("streamer/a/detect/set", "OFF", qos=1).wait_for_publish(10)
            seen.until("streamer/a/detect/state", b"OFF")
            paused, others = counts["a"] + 2, counts["b"]
            deadline = time.monotonic() + 60
            while counts["b"] < others + 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert counts["b"] >= others + 20 and counts["a"] <= paused, counts
            control.publish("streamer/a/detect/set", "ON", qos=1).wait_for_publish(10)
            seen.until("streamer/a/detect/state", b"ON")
        finally:
            control.loop_stop()
            control.disconnect()
            runtime.stop()


def test_a_killed_server_goes_offline_by_its_last_will(tmp_path: Path, cache_dir: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    with mosquitto(tmp_path / "broker") as broker, subscriber(broker, ["streamer/available"]) as seen:
        env = child_env(cache_dir, STREAMER_MQTT_KEEPALIVE="5", STREAMER_STORAGE_DIR=str(tmp_path / "data"))
        args = ("serve", str(clip), "--loop", "--port", "0", "--device", "cpu", "--mqtt", broker.url)
        with spawn_streamer(*args, env=env, cwd=tmp_path) as child:
            seen.until("streamer/available", b"online")
            os.kill(child.pid, signal.SIGKILL)
            seen.until("streamer/available", b"offline", timeout=30)


def test_a_wrong_password_is_named_never_shown_and_the_streams_run(tmp_path: Path, cache_dir: Path) -> None:
    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    secret = "hunter2-very-secret"
    with mosquitto(tmp_path / "broker", users={"alice": "right-password"}) as broker:
        url = f"mqtt://alice:{secret}@127.0.0.1:{broker.port}"
        env = child_env(cache_dir, STREAMER_STORAGE_DIR=str(tmp_path / "data"))
        args = ("serve", str(clip), "--loop", "--port", "0", "--device", "cpu", "--mqtt", url)
        with spawn_streamer(*args, env=env, cwd=tmp_path) as child:
            deadline = time.monotonic() + 30
            while "not authorized" not in child.stderr().lower() and time.monotonic() < deadline:
                time.sleep(0.2)
            with urllib.request.urlopen(child.url + "api/streams", timeout=10) as answer:
                streams = answer.read().decode()
            with urllib.request.urlopen(child.url + "metrics", timeout=10) as answer:
                metrics = answer.read().decode()
            assert json.loads(streams)[0]["state"] in ("live", "connecting"), streams
            assert "streamer_mqtt_connected 0.0" in metrics
            log = child.stderr()
            assert f"127.0.0.1:{broker.port}" in log and "not authorized" in log.lower(), log[-2000:]
            for text in (log, child.stdout(), streams, metrics):
                assert secret not in text


def test_mqtt_settings_are_checked_on_load_and_secrets_never_shown(tmp_path: Path) -> None:
    config = load_config(
        env={"STREAMER_MQTT_URL": "mqtts://bob:s3cr3t@broker.example:8884", "STREAMER_MQTT_TOPIC_PREFIX": "cams"}
    )
    mqtt_config = config.mqtt_config()
    assert mqtt_config is not None and mqtt_config.tls and mqtt_config.port == 8884
    assert mqtt_config.topic_prefix == "cams" and "s3cr3t" not in repr(mqtt_config) and "s3cr3t" not in mqtt_config.url
    assert config.mqtt_config("mqtt://127.0.0.1:1999") is not None, "--mqtt wins over the config"
    assert load_config(env={}).mqtt_config() is None, "no broker: no MQTT"
    for env in (
        {"STREAMER_MQTT_HOST": "broker.example", "STREAMER_MQTT_CA_FILE": str(tmp_path / "missing.pem")},
        {"STREAMER_MQTT_URL": "ftp://bob:s3cr3t@broker.example"},
        {"STREAMER_MQTT_HOST": "broker.example", "STREAMER_MQTT_QOS": "7", "STREAMER_MQTT_PASSWORD": "s3cr3t"},
    ):
        with pytest.raises(ConfigError, match="mqtt") as refused:
            load_config(env=env)
        assert "s3cr3t" not in str(refused.value), str(refused.value)
