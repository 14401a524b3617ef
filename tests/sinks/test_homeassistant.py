"""Home Assistant discovery messages, parsed back from their real JSON, for hand-made streams."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from streamer.sinks.homeassistant import discovery, removal

CONFIG = re.compile(r"homeassistant/(binary_sensor|sensor|camera|switch)/streamer/([A-Za-z0-9_-]+)/config")
ODD = ["a/b", "a_b", "c+#", "ca\u0301fe\u0301 \U0001f4f7", "", "x\0y\x1f\x7f\x85"]


def parsed(messages: list[tuple[str, str]]) -> list[tuple[str, dict[str, Any]]]:
    return [(topic, json.loads(payload)) for topic, payload in messages]


def by_name(messages: list[tuple[str, str]]) -> dict[str, tuple[str, dict[str, Any]]]:
    named = {config["name"]: (topic, config) for topic, config in parsed(messages)}
    assert len(named) == len(messages)
    return named


def valid_topic(topic: str) -> bool:
    return bool(topic) and not any(ch in topic for ch in "+#\0") and "//" not in topic and topic.isprintable()


def test_one_device_per_stream_with_every_entity() -> None:
    messages = discovery("streamer", "front", ["person", "car"], ["porch"], version="1.2.3")
    named = by_name(messages)
    assert sorted(named) == sorted(
        [
            "person occupancy",
            "person count",
            "person snapshot",
            "car occupancy",
            "car count",
            "car snapshot",
            "porch person occupancy",
            "porch person count",
            "porch car occupancy",
            "porch car count",
            "Detect",
            "FPS",
            "State",
        ]
    )
    devices = {json.dumps(config["device"], sort_keys=True) for _, config in named.values()}
    assert len(devices) == 1
    device = named["FPS"][1]["device"]
    assert device == {
        "identifiers": ["streamer:front"],
        "manufacturer": "streamer",
        "model": "video stream",
        "name": "front",
        "sw_version": "1.2.3",
    }
    for topic, config in named.values():
        match = CONFIG.fullmatch(topic)
        assert match is not None, topic
        assert config["unique_id"] == match[2]
        assert config["availability"] == [
            {"topic": "streamer/available", "payload_available": "online", "payload_not_available": "offline"}
        ]
        assert config["origin"] == {"name": "streamer", "sw_version": "1.2.3"}


def test_each_platform_gets_the_keys_home_assistant_reads() -> None:
    named = by_name(discovery("cams", "front", ["person"], ["porch"]))
    topic, occupancy = named["person occupancy"]
    assert topic.startswith("homeassistant/binary_sensor/streamer/")
    assert occupancy["state_topic"] == "cams/front/person"
    assert occupancy["device_class"] == "occupancy"
    assert (occupancy["payload_on"], occupancy["payload_off"]) == ("ON", "OFF")
    assert "value" in occupancy["value_template"] and "> 0" in occupancy["value_template"]

    topic, count = named["person count"]
    assert topic.startswith("homeassistant/sensor/streamer/")
    assert (count["state_topic"], count["state_class"]) == ("cams/front/person", "measurement")

    assert named["porch person occupancy"][1]["state_topic"] == "cams/porch/person"
    assert named["porch person count"][1]["state_topic"] == "cams/porch/person"

    topic, camera = named["person snapshot"]
    assert topic.startswith("homeassistant/camera/streamer/")
    assert camera["topic"] == "cams/front/person/snapshot"

    topic, switch = named["Detect"]
    assert topic.startswith("homeassistant/switch/streamer/")
    assert switch["command_topic"] == "cams/front/detect/set"
    assert switch["state_topic"] == "cams/front/detect/state"
    assert (switch["payload_on"], switch["payload_off"]) == ("ON", "OFF")
    assert (switch["state_on"], switch["state_off"]) == ("ON", "OFF")

    assert named["FPS"][1]["state_topic"] == "cams/front/fps"
    assert named["FPS"][1]["state_class"] == "measurement"
    assert named["State"][1]["state_topic"] == "cams/front/state"
    assert "state_class" not in named["State"][1]


def test_unique_ids_differ_across_streams_and_devices_too() -> None:
    front = parsed(discovery("streamer", "front", ["person", "car"], ["porch", "drive"]))
    back = parsed(discovery("streamer", "back", ["person", "car"], ["porch", "drive"]))
    unique_ids = [config["unique_id"] for _, config in front + back]
    assert len(set(unique_ids)) == len(unique_ids)
    assert len({topic for topic, _ in front + back}) == len(unique_ids)
    assert {tuple(config["device"]["identifiers"]) for _, config in front} == {("streamer:front",)}
    assert {tuple(config["device"]["identifiers"]) for _, config in back} == {("streamer:back",)}


def test_unique_ids_are_stable_and_follow_node_id() -> None:
    first = parsed(discovery("streamer", "front", ["person"], []))
    again = parsed(discovery("streamer", "front", ["person"], [], version="9"))
    other = parsed(discovery("streamer", "front", ["person"], [], node_id="garage-2"))
    assert [config["unique_id"] for _, config in first] == [config["unique_id"] for _, config in again]
    assert not {config["unique_id"] for _, config in first} & {config["unique_id"] for _, config in other}
    assert all(topic.split("/")[2] == "garage-2" for topic, _ in other)
    assert {tuple(config["device"]["identifiers"]) for _, config in other} == {("garage-2:front",)}


def test_odd_names_give_valid_topics_and_distinct_object_ids() -> None:
    messages = []
    for stream in ODD:
        messages += discovery("streamer", stream, ODD, ODD)
    payloads = parsed(messages)
    topics = [topic for topic, _ in payloads]
    assert len(set(topics)) == len(topics)
    for topic, config in payloads:
        assert CONFIG.fullmatch(topic), topic
        state_topics = [config[key] for key in ("state_topic", "command_topic", "topic") if key in config]
        assert state_topics
        for state_topic in state_topics:
            assert valid_topic(state_topic), state_topic
            state_topic.encode("utf-8")
            assert state_topic.startswith("streamer/")
    # One topic level per name, whatever it holds.
    named = by_name(discovery("streamer", "a/b", ["c+#"], [""]))
    assert named["c+# snapshot"][1]["topic"] == "streamer/a_b/c__/snapshot"
    assert named["c+# count"][1]["state_topic"] == "streamer/a_b/c__"
    assert named["c+# occupancy"][1]["state_topic"] == "streamer/a_b/c__"
    assert named["c+# count"][1]["device"]["identifiers"] == ["streamer:a/b"]
    assert named["_ c+# count"][1]["state_topic"] == "streamer/_/c__"
    assert named["_ c+# occupancy"][1]["state_topic"] == "streamer/_/c__"
    assert "_ occupancy" in by_name(discovery("streamer", "", [""], []))


def test_names_that_read_alike_keep_apart() -> None:
    one = parsed(discovery("streamer", "a/b", ["c"], []))
    two = parsed(discovery("streamer", "a_b", ["c"], []))
    three = parsed(discovery("streamer", "a", ["b_c"], []))
    ids = [config["unique_id"] for _, config in one + two + three]
    assert len(set(ids)) == len(ids)


def test_long_names_are_cut_in_the_object_id_but_stay_whole_in_topics() -> None:
    stream = "s" * 500
    for topic, config in parsed(discovery("streamer", stream, ["person"], [])):
        assert len(topic.split("/")[3]) < 80
        assert stream in json.dumps(config)


def test_duplicate_labels_and_zones_count_once() -> None:
    assert discovery("streamer", "front", ["person", "person"], ["porch", "porch"]) == discovery(
        "streamer", "front", ["person"], ["porch"]
    )


def test_no_version_leaves_it_out() -> None:
    for _, config in parsed(discovery("streamer", "front", ["person"], [])):
        assert "sw_version" not in config["device"]
        assert config["origin"] == {"name": "streamer"}


def test_removal_empties_the_same_topics() -> None:
    for node_id, prefix in (("streamer", "homeassistant"), ("n-1", "ha/discovery")):
        made = discovery("cams", "front", ["person", "c+#"], ["porch"], node_id=node_id, discovery_prefix=prefix)
        gone = removal("cams", "front", ["person", "c+#"], ["porch"], node_id=node_id, discovery_prefix=prefix)
        assert [topic for topic, _ in gone] == [topic for topic, _ in made]
        assert {payload for _, payload in gone} == {""}
        assert all(topic.startswith(f"{prefix}/") for topic, _ in gone)


@pytest.mark.parametrize("node_id", ["", "a b", "a/b", "caf\u00e9", "x+"])
def test_a_bad_node_id_is_named(node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        discovery("streamer", "front", ["person"], [], node_id=node_id)
    with pytest.raises(ValueError, match="node_id"):
        removal("streamer", "front", ["person"], [], node_id=node_id)


@pytest.mark.parametrize("prefix", ["", "a/+", "#", "a/", "/a", "a\0"])
def test_a_bad_prefix_is_named(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        discovery(prefix, "front", ["person"], [])
    with pytest.raises(ValueError, match="discovery_prefix"):
        discovery("streamer", "front", ["person"], [], discovery_prefix=prefix)
