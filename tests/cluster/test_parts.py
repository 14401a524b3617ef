"""The cluster's pure parts: ``[cluster]`` options, the outbox and placement (no Ray)."""

from __future__ import annotations

import threading

import pytest

from streamer.cluster.options import ClusterConfig, redact_address
from streamer.cluster.outbox import Outbox
from streamer.cluster.placement import group_name, is_group_name, place, place_all
from streamer.config import load_config
from streamer.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cluster_options_come_from_config_and_the_flag_wins() -> None:
    assert load_config(env={}).cluster_config() is None, "no address: one process, as always"
    config = load_config(env={"STREAMER_CLUSTER_RAY": "auto", "STREAMER_CLUSTER_STREAMS_PER_ACTOR": "2"})
    cluster = config.cluster_config()
    assert cluster is not None and (cluster.address, cluster.streams_per_actor) == ("auto", 2)
    flagged = config.cluster_config("ray://head:10001")
    assert flagged is not None and flagged.address == "ray://head:10001"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("address", "http://head:10001", "cluster.ray"),
        ("address", "ray://user:hunter2@head/path", "cluster.ray"),
        ("streams_per_actor", 0, "cluster.streams_per_actor"),
        ("lost_after_s", 0.1, "cluster.lost_after_s"),
        ("actor_gpus", -1.0, "cluster.actor_gpus"),
        ("namespace", "a b", "cluster.namespace"),
        ("actors", 100, "cluster.max_actors"),
    ],
)
def test_bad_cluster_options_name_the_key(field: str, value: object, named: str) -> None:
    kwargs: dict[str, object] = {"address": "auto", field: value}
    with pytest.raises(ConfigError, match=named) as error:
        ClusterConfig(**kwargs)  # type: ignore[arg-type]
    assert "hunter2" not in str(error.value), "a password in the address never shows"


def test_addresses_are_redacted() -> None:
    assert redact_address("ray://me:secret@head:10001") == "ray://***@head:10001"
    assert redact_address("10.0.0.1:6379") == "10.0.0.1:6379"


def test_the_outbox_keeps_items_until_acknowledged() -> None:
    box = Outbox(capacity=8)
    for item in "abc":
        box.put(item)
    first = box.take(after=0)
    assert [item for _, item in first.items] == ["a", "b", "c"] and first.last == 3
    again = box.take(after=0)
    assert [item for _, item in again.items] == ["a", "b", "c"], "a front that died before acknowledging gets all again"
    box.put("d")
    after = box.take(after=first.last)
    assert [item for _, item in after.items] == ["d"] and len(box) == 1, "what was acknowledged is gone"
    assert box.take(after=99).items == [(4, "d")], "a cursor from another group of that name starts over"


def test_the_outbox_is_bounded_and_counts_what_it_dropped() -> None:
    box = Outbox(capacity=4)
    for i in range(10):
        box.put(i)
    batch = box.take(after=0)
    assert [item for _, item in batch.items] == [6, 7, 8, 9] and batch.dropped == 6
    assert box.take(after=0, limit=2).items == [(7, 6), (8, 7)]


def test_the_outbox_keeps_only_the_newest_frame_of_each_stream() -> None:
    box = Outbox()
    box.frame("cam", 1)
    box.frame("cam", 2)
    box.frame("door", 3)
    assert box.take(after=0).frames == {"cam": 2, "door": 3}
    assert box.take(after=0).frames == {}, "taken once"
    box.frame("cam", 4)
    box.forget("cam")
    assert box.take(after=0).frames == {}


def test_the_outbox_long_poll_waits_for_an_item_or_the_deadline() -> None:
    clock = FakeClock()
    box = Outbox(clock=clock)
    got: list[object] = []
    taker = threading.Thread(target=lambda: got.append(box.take(after=0, timeout=3600)))
    taker.start()
    box.put("x")
    taker.join(10)
    assert not taker.is_alive() and [item for _, item in got[0].items] == ["x"]  # type: ignore[attr-defined]
    assert box.take(after=1, timeout=0).items == [], "an expired deadline returns at once"


def test_placement_fills_the_least_loaded_group_then_asks_for_a_new_one() -> None:
    assert place({}, 4) is None
    assert place({"group-1": 2, "group-2": 1}, 4) == "group-2"
    assert place({"group-1": 1, "group-2": 1}, 4) == "group-1", "ties: the first name"
    assert place({"group-1": 4, "group-2": 4}, 4) is None
    spread = place_all(["a", "b", "c", "d", "e"], {"group-1": 0, "group-2": 1}, 2)
    assert spread == {"a": "group-1", "b": "group-1", "c": "group-2", "d": None, "e": None}


def test_group_names_are_never_reused() -> None:
    assert group_name([]) == "group-1"
    assert group_name(["group-1", "group-7", "other", "group-x"]) == "group-8"
    assert is_group_name("group-12") and not is_group_name("group-") and not is_group_name("camera")


def test_without_a_cluster_nothing_imports_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import streamer.cli, streamer.server.app, streamer.cluster.front, streamer.cluster.group\n"
        "from streamer.config import load_config\n"
        "from streamer.cluster.front import ClusterRuntime\n"
        "from streamer.cluster.options import ClusterConfig\n"
        "ClusterRuntime(load_config(env={}), ClusterConfig(address='auto'), events=False)\n"
        "print(sorted(name for name in sys.modules if name == 'ray' or name.startswith('ray.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_a_camera_group_gets_no_secret_and_no_stream() -> None:
    from streamer.cluster.group import group_config

    config = load_config(
        env={
            "STREAMER_TOKEN": "t0ken-secret",
            "STREAMER_MQTT_URL": "mqtt://u:mqtt-secret@127.0.0.1:1883",
            "STREAMER_CLUSTER_RAY": "ray://me:ray-secret@127.0.0.1:10001",
            "STREAMER_STAGES": "detect",
        }
    )
    sent = repr(group_config(config).values)
    assert not any(secret in sent for secret in ("t0ken-secret", "mqtt-secret", "ray-secret")), sent
    assert group_config(config)["stages"] == "detect", "the rest goes along"
