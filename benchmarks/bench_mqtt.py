"""MQTT publish cost per event: streamer's MqttPublisher against bare paho, in one process, on a real broker.

A real ``mosquitto`` listens on 127.0.0.1 (a free port, anonymous, no
persistence), started from a config written to a temporary folder and killed
at the end. Each round publishes ``--events`` JSON event payloads of about
1 KB to ``<prefix>/events`` and measures the CPU time of the calling thread
(``time.thread_time``) over the publish calls only, divided by their number:

- ours: ``MqttPublisher.publish(topic, payload)`` (it queues, and hands what
  waits to paho when no other thread is doing so), its outbox
  (``max_queue``) sized to hold a whole batch, so that a burst measures
  publishing rather than dropping;
- bare: paho's ``Client.publish(topic, payload)`` on a connected client whose
  network loop runs on paho's thread (``loop_start``); the calling thread
  builds the packet and writes it when the socket takes it.

The sides alternate in ABBA order (ours first in even rounds, bare first in
odd ones), so drift and noise hit both alike. Between batches, untimed, each
side waits until its messages have left (ours: ``sent`` reaches the count;
bare: the last message is published), so a backlog of one never slows the
other. The script prints each side's median microseconds per event and the
ratio ours / bare. Target: ratio <= 1.0 (queueing a message should cost the
event's thread no more than paho writing it), and no message dropped at
this rate; the dropped count is printed.

    python benchmarks/bench_mqtt.py [--events 2000] [--rounds 10]

Then the loop's throughput with MQTT publishing on against off: frames per
second of a whole runtime (detector, tracker, events, snapshots and clips) on
``samples/street.mp4``, read as fast as it decodes, with a publisher to the
same broker against none, alternating ``--passes`` rounds (ABBA), the median
of the per-round ratios. Target: >= 0.98.

The defaults run in about a minute; ``--events 50 --rounds 2 --passes 2`` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

# Run as a script, sys.path starts at benchmarks/: put the repo root first so `streamer` imports from the tree.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_tracking import street_fps

from streamer.sinks.mqtt import MqttConfig, MqttPublisher

MOSQUITTO = "/usr/sbin/mosquitto"
PREFIX = "streamer"
TOPIC = f"{PREFIX}/events"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def broker() -> Iterator[int]:
    """A mosquitto on 127.0.0.1 for the duration; yields its port and kills it after."""
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as folder:
        port = free_port()
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        said = process.stderr.read() if process.poll() is not None and process.stderr else ""
                        raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{port}: {said}") from None
                    time.sleep(0.05)
            yield port
        finally:
            process.kill()
            process.wait(5.0)


def event_payload(index: int) -> str:
    """About 1 KB of JSON, shaped like an event (``before`` and ``after`` of a tracked object)."""
    obj = {
        "id": f"1700000000.{index:06d}-door-person-{index}",
        "stream": "door",
        "label": "person",
        "sub_label": None,
        "score": 0.8731,
        "top_score": 0.9124,
        "box": [412.5, 118.25, 530.0, 401.75],
        "area": 33340,
        "ratio": 0.4153,
        "region": [320, 0, 640, 480],
        "current_zones": ["porch", "driveway"],
        "entered_zones": ["driveway", "porch"],
        "start_time": 1700000000.125 + index,
        "end_time": None,
        "frame_time": 1700000003.5 + index,
        "has_snapshot": True,
        "has_clip": True,
        "stationary": False,
        "position_changes": 3,
    }
    text = json.dumps({"type": "update", "before": obj, "after": {**obj, "score": 0.8812}})
    return text + " " * max(0, 1024 - len(text))


def wait_until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.001)


def bare_client(port: int) -> mqtt.Client:
    """paho, connected, its network loop on its own thread."""
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.on_connect = lambda *_args: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10.0):
        raise RuntimeError("bare paho client did not connect")
    return client


def timed(publish: Callable[[str, str], object], payloads: list[str]) -> tuple[float, object]:
    """Calling-thread CPU microseconds per publish over ``payloads``, and what the last call returned."""
    last: object = None
    start = time.thread_time_ns()
    for payload in payloads:
        last = publish(TOPIC, payload)
    return (time.thread_time_ns() - start) / 1000.0 / len(payloads), last


def throughput(port: int, passes: int) -> float:
    """The median per-round ratio of frames/s with MQTT on to off."""
    rates: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(passes):
            for on in (True, False) if round_ % 2 == 0 else (False, True):
                mqtt = MqttConfig(host="127.0.0.1", port=port, topic_prefix=PREFIX) if on else None
                rates[on].append(street_fps(Path(folder) / f"{round_}-{on}", mqtt=mqtt))
    ratio = statistics.median(a / b for a, b in zip(rates[True], rates[False], strict=True))
    print(
        f"loop throughput, street.mp4 (detect, events): MQTT on {statistics.median(rates[True]):.1f} fps, "
        f"off {statistics.median(rates[False]):.1f} fps, ratio on / off {ratio:.3f} (target >= 0.98)"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="events published per side per round")
    parser.add_argument("--rounds", type=int, default=10, help="ABBA rounds")
    parser.add_argument("--passes", type=int, default=10, help="rounds of the throughput part (ABBA)")
    args = parser.parse_args()
    payloads = [event_payload(i) for i in range(args.events)]
    print(f"{args.events} events of {len(payloads[0])} bytes per side, {args.rounds} rounds (ABBA), mosquitto")

    with broker() as port:
        config = MqttConfig(host="127.0.0.1", port=port, topic_prefix=PREFIX, max_queue=max(1000, args.events))
        publisher = MqttPublisher(config)
        publisher.start()
        bare = bare_client(port)
        try:
            wait_until(lambda: bool(publisher.connected), 10.0, "MqttPublisher to connect")

            def ours_round() -> float:
                before = publisher.sent + publisher.dropped
                cost, _ = timed(publisher.publish, payloads)
                wait_until(lambda: publisher.sent + publisher.dropped >= before + len(payloads), 60.0, "ours to send")
                return cost

            def bare_round() -> float:
                cost, last = timed(bare.publish, payloads)
                assert isinstance(last, mqtt.MQTTMessageInfo)
                last.wait_for_publish(60.0)
                return cost

            ours_round(), bare_round()  # warm up both (connections, caches, first-call costs)
            dropped_before = publisher.dropped
            ours: list[float] = []
            plain: list[float] = []
            for index in range(args.rounds):
                if index % 2 == 0:
                    ours.append(ours_round())
                    plain.append(bare_round())
                else:
                    plain.append(bare_round())
                    ours.append(ours_round())
            dropped = publisher.dropped - dropped_before
        finally:
            bare.loop_stop()
            bare.disconnect()
            publisher.close(5.0)

    mine, theirs = statistics.median(ours), statistics.median(plain)
    print(f"per round, ours us:     {' '.join(f'{value:.1f}' for value in ours)}")
    print(f"per round, bare paho us: {' '.join(f'{value:.1f}' for value in plain)}")
    print(f"dropped by ours: {dropped}")
    print(
        f"publish cost per event: ours {mine:.1f} us, bare paho {theirs:.1f} us, ratio ours / bare {mine / theirs:.2f}"
    )
    with broker() as port:
        throughput(port, args.passes)
    print("targets: ratio <= 1.0, dropped 0; throughput ratio >= 0.98")


if __name__ == "__main__":
    main()
