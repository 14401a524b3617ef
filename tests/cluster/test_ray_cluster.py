"""A real Ray cluster on this machine: a head and two worker nodes, four real RTSP cameras, the real front.

Each test starts its own cluster (``ray.cluster_utils.Cluster``: the head runs
no actors, each worker node offers 2 CPUs) and tears it down after, also when
it fails. The front is the real ``streamer serve --ray ADDRESS`` in a child
process; the checks go through its REST API and ``/ws``. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import json
import logging
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer.inference.cascade import DEFAULT_DETECTOR
from streamer.models import zoo
from tests.mqtt_broker import mosquitto, subscriber
from tests.process import REPO, Child, child_env, spawn, spawn_streamer
from tests.required import unavailable
from tests.rtsp import RtspServer, rtsp_available, rtsp_clip

log = logging.getLogger(__name__)

CAMERAS = ("cam1", "cam2", "cam3", "cam4")
BOUND_S = 90.0  # every wait: generous on 2 busy cores; the benchmark measures how long it really takes


@pytest.fixture
def cameras(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Four RTSP servers (GStreamer), each looping a clip of the collage: id -> URL."""
    reason = rtsp_available()
    if reason is not None:
        unavailable(reason)
    clip = rtsp_clip(tmp_path / "cam.mp4", frames=60, fps=10, size=(320, 240))
    servers = [RtspServer() for _ in CAMERAS]
    try:
        yield {name: server.start(clip, loop=True) for name, server in zip(CAMERAS, servers, strict=True)}
    finally:
        for server in servers:
            server.close()


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> Iterator[Any]:
    """A head node (no CPUs: no camera group lands there) and two worker nodes of 2 CPUs each."""
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setattr(builtins, "print", builtins.print)  # whatever a Ray driver here does to it is undone
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every node's address is 127.0.0.1 ...
    try:
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster
    except ImportError:
        unavailable("Ray is not installed: pip install 'streamer[ray]'")
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)  # ... also if Ray was imported before
    zoo.build(DEFAULT_DETECTOR, cache_dir)  # once here, not in each group at once
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    small = {"object_store_memory": 100 * 1024 * 1024, "include_dashboard": False, "temp_dir": temp}
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, **small})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, object_store_memory=100 * 1024 * 1024)
        yield cluster
    finally:
        cluster.shutdown()


def _config(tmp_path: Path, cameras: dict[str, str], names: tuple[str, ...], *, per_actor: int = 4) -> Path:
    streams = "".join(
        f'[[streams]]\nid = "{name}"\nsource = "{cameras[name]}"\ninference_fps = 2\n\n' for name in names
    )
    path = tmp_path / "config.toml"
    path.write_text(
        'stages = "detect"\ndevice = "cpu"\nthreads = 1\n\n'
        f'[storage]\ndir = "{tmp_path / "storage"}"\nclips = false\n\n'
        f"[cluster]\nactors = 2\nmax_actors = 2\nstreams_per_actor = {per_actor}\nactor_cpus = 1.0\n"
        "lost_after_s = 2.0\n\n" + streams
    )
    return path


def _front(config: Path, address: str, cache_dir: Path, *extra: str) -> Any:
    env = child_env(cache_dir, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    return spawn_streamer(
        "serve", "--config", str(config), "--ray", address, "--port", "0", *extra, env=env, serving_timeout=BOUND_S * 2
    )


def _get(child: Child, path: str) -> Any:
    with urllib.request.urlopen(child.url + path.lstrip("/"), timeout=30) as answer:
        return json.loads(answer.read() or b"null")


def _send(child: Child, method: str, path: str, body: Any = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        child.url + path.lstrip("/"), data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return int(answer.status)


def _post(child: Child, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        child.url + path.lstrip("/"), data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _until(child: Child, condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        if condition():
            return
        assert child.alive(), f"the front exited while waiting for {what}:\n{child.stderr()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"not within {BOUND_S:.0f} s: {what}\n{child.stderr()[-3000:]}")


def _rows(child: Child) -> dict[str, dict[str, Any]]:
    return {row["stream"]: row for row in _get(child, "/api/streams")}


def _results(child: Child, streams: set[str], count: int = 2) -> dict[str, list[dict[str, Any]]]:
    """At least ``count`` results of each of ``streams`` from ``/ws`` (bounded)."""
    from websockets.asyncio.client import connect

    async def collect() -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {stream: [] for stream in streams}
        async with asyncio.timeout(BOUND_S), connect(child.url.replace("http", "ws") + "ws") as ws:
            while any(len(got[stream]) < count for stream in streams):
                message = json.loads(await ws.recv())
                if message.get("type") == "result" and message["result"]["stream"] in got:
                    got[message["result"]["stream"]].append(message["result"])
        return got

    return asyncio.run(collect())


def _peers_off_loopback() -> list[str]:
    """Established TCP connections of Ray's and Python's processes whose peer is not a loopback address."""
    listing = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True)
    off = []
    for line in listing.stdout.splitlines():
        fields = line.split()
        peer = fields[3].rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        owners = " ".join(fields[4:])
        if any(name in owners for name in ("ray", "gcs_server", "python")) and not (
            peer.startswith("127.") or peer == "::1"
        ):
            off.append(line)
    return off


def _node_of(cluster: Any, node_id: str) -> Any:
    """The worker node of that Ray node id (where a camera group runs)."""
    nodes = [node for node in cluster.worker_nodes if node.node_id == node_id]
    assert len(nodes) == 1, f"no worker node {node_id}"
    return nodes[0]


def _wait_all_on_groups(child: Child, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    _until(
        child,
        lambda: (
            set(rows := _rows(child)) == set(names)
            and all(row.get("state") == "live" and row.get("group") for row in rows.values())
        ),
        f"{', '.join(names)} live on camera groups",
    )
    return _rows(child)


def test_results_events_and_cameras_added_and_removed_over_rest(
    cluster: Any, cameras: dict[str, str], tmp_path: Path, cache_dir: Path
) -> None:
    config = _config(tmp_path, cameras, CAMERAS[:3], per_actor=2)
    with (
        mosquitto(tmp_path / "mqtt") as broker,
        subscriber(broker, ["streamer/events", "streamer/cam2/detect/state"]) as mqtt,
        _front(config, cluster.address, cache_dir, "--mqtt", broker.url) as front,
    ):
        rows = _wait_all_on_groups(front, CAMERAS[:3])
        assert len({row["group"] for row in rows.values()}) == 2, f"spread over both groups: {rows}"
        assert len({row["pid"] for row in rows.values()}) == 2
        results = _results(front, set(CAMERAS[:3]))
        assert all(r["width"] == 320 and r["objects"] for got in results.values() for r in got), "the collage's objects"

        missing = tmp_path / "no-such-clip.mp4"
        with pytest.raises(urllib.error.HTTPError) as refused:
            _send(front, "POST", "/api/streams", {"id": "bad", "source": str(missing)})
        detail = json.loads(refused.value.read())["detail"]
        assert refused.value.code == 400 and str(missing) in detail and "Traceback" not in detail, detail
        assert "bad" not in _rows(front), "nothing left behind"
        assert _send(front, "POST", "/api/streams", {"id": "cam4", "source": cameras["cam4"]}) == 201
        rows = _wait_all_on_groups(front, CAMERAS)
        assert _results(front, {"cam4"})["cam4"], "a camera added over REST produces on the cluster"
        per_group = [[r["group"] for r in rows.values()].count(g) for g in {r["group"] for r in rows.values()}]
        assert sorted(per_group) == [2, 2], "placed on the least loaded group"
        with pytest.raises(urllib.error.HTTPError) as full:
            _send(front, "POST", "/api/streams", {"id": "extra", "source": cameras["cam1"]})
        assert full.value.code == 503 and "max_actors" in json.loads(full.value.read())["detail"]
        assert "extra" not in _rows(front), "a full cluster refuses a camera, starts no third group"

        _until(front, lambda: len(_get(front, "/api/events?stream=cam1")) > 0, "events of cam1 in the store")
        event = _get(front, "/api/events?stream=cam1")[0]
        with urllib.request.urlopen(front.url + f"api/events/{event['id']}/snapshot.jpg", timeout=30) as answer:
            assert answer.read(3) == b"\xff\xd8\xff", "the snapshot crossed from the group to the front's store"

        topic, payload, _ = mqtt.next(BOUND_S)
        while topic != "streamer/events":
            topic, payload, _ = mqtt.next(BOUND_S)
        assert json.loads(payload)["after"]["stream"] in CAMERAS, "the front publishes the groups' events on MQTT"

        image = base64.b64encode((REPO / "samples" / "collage.jpg").read_bytes()).decode()
        answer = _post(front, "/api/classify", {"records": [{"_base64": image}], "detect": True})
        assert answer["records"][0]["_status"]["code"] == 200 and answer["records"][0]["objects"], answer
        assert [m["task"] for m in _get(front, "/api/models")] == ["detector"], "the groups' models"

        assert _send(front, "DELETE", "/api/streams/cam4") in (200, 204)
        assert set(_rows(front)) == set(CAMERAS[:3]), "removed from the cluster"
        _until(
            front,
            lambda: all(e["end_time"] is not None for e in _get(front, "/api/events?stream=cam4")),
            "cam4's events ended",
        )
        assert _peers_off_loopback() == [], "Ray, the groups and the front talk over loopback only"
        front.send_signal(signal.SIGTERM)
        assert front.wait(60) == 0, front.stderr()
    assert "Traceback" not in front.stderr()


def _lose_a_node(front: Child, cluster: Any) -> None:
    """Remove the worker node of cam1's group; its cameras move, the others stay; its open events end."""
    rows = _rows(front)
    victim_group = rows["cam1"]["group"]
    moved = {name for name, row in rows.items() if row["group"] == victim_group}
    node = _node_of(cluster, rows["cam1"]["node_id"])
    _until(front, lambda: any(_get(front, f"/api/events?stream={s}") for s in moved), "an event on that node")
    open_before = [e for s in moved for e in _get(front, f"/api/events?stream={s}") if e["end_time"] is None]
    reconnects = {name: row["reconnects"] for name, row in rows.items()}

    killed = time.monotonic()
    cluster.remove_node(node, allow_graceful=False)
    _until(
        front,
        lambda: all(row.get("group") not in (None, victim_group) for row in _rows(front).values()),
        "every camera on a live group",
    )
    after = _results(front, set(CAMERAS))
    log.warning("node lost: all four cameras produced again %.1f s later", time.monotonic() - killed)
    assert all(after[name] for name in CAMERAS)
    rows = _rows(front)
    assert sorted(rows) == sorted(CAMERAS), "no camera lost or duplicated"
    assert all(rows[name]["reconnects"] > reconnects[name] for name in moved), rows
    assert all(rows[name]["reconnects"] == reconnects[name] for name in set(CAMERAS) - moved), rows
    for event in open_before:
        row = _get(front, f"/api/events/{event['id']}")
        assert row["end_time"] is not None, f"the open event {event['id']} of the lost node ended"
    old_ids = {e["track_id"] for e in open_before}
    new_ids = {o["track_id"] for name in moved for r in after[name] for o in r["objects"] if o["track_id"]}
    assert not old_ids & new_ids, "tracks restart with new ids"


def test_a_lost_worker_node_moves_its_cameras_to_the_other_group(
    cluster: Any, cameras: dict[str, str], tmp_path: Path, cache_dir: Path
) -> None:
    config = _config(tmp_path, cameras, CAMERAS)
    with _front(config, cluster.address, cache_dir) as front:
        _wait_all_on_groups(front, CAMERAS)
        _results(front, set(CAMERAS))
        _lose_a_node(front, cluster)
        front.send_signal(signal.SIGTERM)
        assert front.wait(60) == 0, front.stderr()


def test_a_restarted_front_re_attaches_to_the_running_groups(
    cluster: Any, cameras: dict[str, str], tmp_path: Path, cache_dir: Path
) -> None:
    config = _config(tmp_path, cameras, CAMERAS)
    with _front(config, cluster.address, cache_dir) as first:
        before = _wait_all_on_groups(first, CAMERAS)
        _results(first, set(CAMERAS))
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0, first.stderr()
    with _front(config, cluster.address, cache_dir) as second:
        after = _wait_all_on_groups(second, CAMERAS)
        assert {n: (r["group"], r["pid"]) for n, r in after.items()} == {
            n: (r["group"], r["pid"]) for n, r in before.items()
        }, "the same groups, still running: re-attached, nothing started twice"
        assert all(row["reconnects"] == 0 for row in after.values())
        assert all(_results(second, set(CAMERAS)).values()), "delivery resumed"
        assert "re-attached to camera group" in second.stderr()
        _lose_a_node(second, cluster)  # the events opened under the first front end too
        after = _rows(second)
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, second.stderr()
    groups = sorted({row["group"] for row in after.values()})
    env = child_env(cache_dir, RAY_USAGE_STATS_ENABLED="0", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    for expected in (groups, []):  # the second time there is nothing left to stop
        command = [sys.executable, "-m", "streamer", "cluster", "stop", "--ray", cluster.address]
        with spawn(command, env=env) as stop:
            assert stop.wait(BOUND_S) == 0, stop.stderr()
        assert f"stopped {len(expected)} camera groups: {', '.join(expected) or 'none'}" in stop.stdout()


def test_an_unreachable_cluster_is_a_clear_error_naming_its_address(cache_dir: Path) -> None:
    from tests.rtsp import free_port

    address = f"ray://viewer:s3cret@127.0.0.1:{free_port()}"
    env = child_env(cache_dir, RAY_USAGE_STATS_ENABLED="0")
    with spawn([sys.executable, "-m", "streamer", "serve", "--ray", address, "--port", "0"], env=env) as child:
        code = child.wait(60)
    assert code == 2, child.stderr()
    assert f"cannot reach the Ray cluster at ray://***@127.0.0.1:{address.rsplit(':', 1)[1]}" in child.stderr()
    assert "s3cret" not in child.stderr() + child.stdout()


def test_the_front_gets_frames_of_watched_streams_only_and_classifies_on_a_group(
    cluster: Any, tmp_path: Path, cache_dir: Path
) -> None:
    """The front in this process (a Ray driver): frames cross only for the stream a viewer watches."""
    from streamer.cluster.front import ClusterRuntime
    from streamer.cluster.options import ClusterConfig
    from streamer.config import StreamSpec, load_config
    from tests.media import make_clip, photo

    clip = make_clip(tmp_path / "cam.mp4", frames=30, fps=15, size=(320, 240))
    overrides = {"device": "cpu", "stages": "detect", "threads": 1, "cache_dir": str(cache_dir)}
    config = load_config(env={}, overrides={**overrides, "storage.dir": str(tmp_path / "storage")})
    streams = [StreamSpec(id=name, source=str(clip), loop=True) for name in ("watched", "unwatched")]
    front = ClusterRuntime(config, ClusterConfig(address=cluster.address, namespace="frames"), streams=streams)
    frames: list[tuple[str, tuple[int, ...]]] = []
    results: set[str] = set()
    front.subscribe_frames(lambda frame: frames.append((frame.stream_id, frame.image.shape)), wanted="watched".__eq__)
    front.subscribe(lambda result, frame: results.add(result.stream))
    front.start()
    try:
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline and (len(frames) < 5 or results != {"watched", "unwatched"}):
            time.sleep(0.2)
        assert results == {"watched", "unwatched"}
        assert len(frames) >= 5 and {stream for stream, _ in frames} == {"watched"}, "no frame of the other stream"
        assert all(shape == (240, 320, 3) for _, shape in frames)
        answer = front.classify([photo("collage")], detect=True).result(timeout=BOUND_S)
        assert len(answer) == 1 and len(answer[0].objects) > 0, "one-off images run on a camera group"
        assert [model.task for model in front.models()] == ["detector"]
    finally:
        front.stop(keep_groups=False)
