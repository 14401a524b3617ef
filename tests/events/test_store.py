"""The SQLite event store on real files: rows, queries, JPEG snapshots, clips, retention, migrations."""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from streamer.errors import ConfigError
from streamer.events import store as store_module
from streamer.events.machine import Event, EventMachine
from streamer.events.store import MAX_LIMIT, EventStore, StoreError
from streamer.results import Detection, Detections, FrameResult, Label
from tests.media import photo

DAY = 86400.0
SEDAN = Label(3, "sedan", "Sedan", 0.9, 3, 4)


class Maker:
    """Events made by a real EventMachine from hand-made results."""

    def __init__(self) -> None:
        counter = itertools.count(1)
        self.machine = EventMachine(stale_s=None, new_id=lambda: f"{next(counter):032x}")

    def see(
        self,
        track: int,
        t: float,
        *,
        stream: str = "cam",
        name: str = "car",
        label: Label | None = None,
        zones: tuple[str, ...] = (),
        box: tuple[float, float, float, float] = (100, 150, 300, 350),
    ) -> Event:
        """The one event of ``track`` seen at ``t`` (new, or an update)."""
        result = FrameResult(
            512,
            512,
            objects=Detections.of([Detection(box, 2, name, 0.8, track_id=track, label=label, zones=zones)]),
            stream=stream,
        )
        [event] = [e for e in self.machine.update(result, t) if e.after.track_id == track]
        return event

    def end(self, track: int, t: float, stream: str = "cam") -> Event:
        [event] = self.machine.update(FrameResult(512, 512, stream=stream, ended=(track,)), t)
        return event


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = EventStore(tmp_path / "data")
    yield opened
    opened.close()


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_layout_and_pragmas(store: EventStore) -> None:
    assert (store.directory / "events.db").is_file()
    assert (store.directory / "snapshots").is_dir() and store.clips_dir == store.directory / "clips"
    assert store.clips_dir.is_dir()
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(store_module._MIGRATIONS)


def test_record_get_and_reopen(tmp_path: Path) -> None:
    maker = Maker()
    store = EventStore(tmp_path)
    new = maker.see(1, 100.0, label=SEDAN, zones=("door",))
    store.record(new, photo("astronaut"))
    row = store.get(new.id)
    assert row is not None
    assert (row["id"], row["kind"], row["stream"], row["label"]) == (new.id, "new", "cam", "car")
    assert row["sub_label"] == SEDAN.to_dict() and row["entered_zones"] == ["door"]
    assert row["start_time"] == 100.0 and row["end_time"] is None and "before" not in row
    assert row["has_snapshot"] and not row["has_clip"]
    store.record(maker.end(1, 105.0))
    store.close()
    store.close()  # idempotent
    reopened = EventStore(tmp_path)
    row = reopened.get(new.id)
    assert row is not None and row["kind"] == "end" and row["end_time"] == 100.0 and row["has_snapshot"]
    assert reopened.snapshot(new.id) is not None
    reopened.close()


def test_query_filters_and_paging(store: EventStore) -> None:
    maker = Maker()
    store.record(maker.see(1, 10.0, stream="a", name="car", label=SEDAN, zones=("door",)))
    store.record(maker.see(2, 20.0, stream="a", name="person", zones=("yard",)))
    store.record(maker.see(3, 30.0, stream="b", name="car"))
    store.record(maker.see(3, 31.0, stream="b", box=(0, 0, 9, 9), zones=("door",)))

    def start(**filters: Any) -> list[float]:
        return [r["start_time"] for r in store.query(**filters)]

    assert start() == [30.0, 20.0, 10.0]
    assert start(stream="a") == [20.0, 10.0]
    assert start(label="car") == [30.0, 10.0]
    assert start(label="sedan") == [10.0]  # the settled sub-label's name
    assert start(zone="door") == [30.0, 10.0]  # entered later counts
    assert start(zone="yard", stream="a") == [20.0]
    assert start(after=20.0) == [30.0, 20.0] and start(before=20.0) == [10.0]
    assert start(limit=2) == [30.0, 20.0] and start(limit=2, offset=2) == [10.0]
    assert start(stream="nope") == [] and start(zone="'; DROP TABLE events; --") == []
    with pytest.raises(ConfigError, match="offset"):
        store.query(offset=-1)


def test_same_start_time_orders_by_id_and_limit_is_capped(store: EventStore) -> None:
    maker = Maker()
    events = [maker.see(i, 5.0) for i in range(MAX_LIMIT + 10)]
    for event in events:
        store.record(event)
    rows = store.query(limit=10_000)
    assert len(rows) == MAX_LIMIT
    assert [r["id"] for r in rows[:3]] == sorted((e.id for e in events), reverse=True)[:3]


def test_snapshot_is_the_picture_and_annotated_differs_only_around_the_box(store: EventStore) -> None:
    picture = photo("astronaut")
    maker = Maker()
    event = maker.see(1, 1.0, label=SEDAN)
    store.record(event, picture)
    clean = decode(store.snapshot(event.id) or b"")
    assert clean.shape == picture.shape
    assert np.abs(clean.astype(np.int16) - picture).mean() < 4.0  # the same picture, through JPEG
    annotated = decode(store.snapshot(event.id, annotated=True) or b"")
    changed = np.abs(annotated.astype(np.int16) - clean).max(axis=2) > 60
    x1, y1, x2, y2 = 100, 150, 300, 350
    near = np.zeros_like(changed)
    near[y1 - 60 : y2 + 8, x1 - 8 : 512] = True  # the box, and the label above it (it may run to the right)
    assert changed[~near].sum() == 0
    assert changed[y1 - 2 : y1 + 3, x1:x2].mean() > 0.5 and changed[y1:y2, x2 - 2 : x2 + 3].mean() > 0.5
    assert not changed[y1 + 20 : y2 - 20, x1 + 20 : x2 - 20].any()  # inside the box is untouched


def test_snapshot_kept_until_a_better_one(store: EventStore) -> None:
    maker = Maker()
    first = maker.see(1, 1.0, box=(0, 0, 50, 50))
    store.record(first, photo("astronaut"))
    zone = maker.see(1, 2.0, box=(0, 0, 50, 50), zones=("z",))
    assert not zone.snapshot
    store.record(zone, photo("camera").repeat(3).reshape(512, 512, 3))  # ignored: not a snapshot event
    assert np.abs(decode(store.snapshot(first.id) or b"").astype(np.int16) - photo("astronaut")).mean() < 4.0
    better = maker.see(1, 3.0, box=(0, 0, 400, 400), zones=("z",))
    assert better.snapshot
    coffee = photo("coffee")  # 400x600
    store.record(better, coffee)
    assert decode(store.snapshot(first.id) or b"").shape == coffee.shape


def test_event_without_snapshot(store: EventStore) -> None:
    event = Maker().see(1, 1.0)
    store.record(event)
    row = store.get(event.id)
    assert row is not None and not row["has_snapshot"]
    assert store.snapshot(event.id) is None and store.snapshot(event.id, annotated=True) is None


def test_clips_attach_path_and_refusals(store: EventStore, tmp_path: Path) -> None:
    event = Maker().see(1, 1.0)
    store.record(event)
    assert store.clip_path(event.id) is None
    clip = store.clips_dir / f"{event.id}.mp4"
    clip.write_bytes(b"\x00" * 1000)
    store.attach_clip(event.id, clip)
    assert store.clip_path(event.id) == clip
    row = store.get(event.id)
    assert row is not None and row["has_clip"]
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"x")
    with pytest.raises(StoreError, match="directly in"):
        store.attach_clip(event.id, outside)
    orphan = store.clips_dir / "orphan.mp4"
    orphan.write_bytes(b"x")
    store.attach_clip("f" * 32, orphan)  # no such event: the clip is removed, not leaked
    assert not orphan.exists()


def test_delete_removes_row_and_files(store: EventStore) -> None:
    maker = Maker()
    gone, kept = maker.see(1, 1.0), maker.see(2, 2.0)
    for event in (gone, kept):
        store.record(event, photo("astronaut"))
    clip = store.clips_dir / f"{gone.id}.mp4"
    clip.write_bytes(b"clip")
    store.attach_clip(gone.id, clip)
    snapshot_file = store.directory / "snapshots" / f"{gone.id}.jpg"
    assert snapshot_file.exists()
    assert store.delete(gone.id)
    assert store.get(gone.id) is None and not snapshot_file.exists() and not clip.exists()
    assert not store.delete(gone.id)
    assert store.get(kept.id) is not None and store.snapshot(kept.id) is not None


def test_bad_ids_are_not_found(store: EventStore) -> None:
    event = Maker().see(1, 1.0)
    store.record(event, photo("astronaut"))
    (store.directory / "x.jpg").write_bytes(b"secret")
    for bad in ("../x", "../../events", "AB" * 16, event.id[:-1] + "g", event.id + "0", "", "/etc/passwd"):
        assert store.get(bad) is None
        assert store.snapshot(bad) is None and store.snapshot(bad, annotated=True) is None
        assert store.clip_path(bad) is None
        assert store.delete(bad) is False
    assert (store.directory / "x.jpg").exists() and store.get(event.id) is not None
    with pytest.raises(StoreError, match="32 lowercase hex"):
        store.record(Event("../x", "new", (), None, event.after, snapshot=False))


def test_prune_by_days_keeps_open_and_recent(tmp_path: Path) -> None:
    store = EventStore(tmp_path, retain_days=10.0, max_bytes=None)
    maker = Maker()
    old, recent, still_open = maker.see(1, 0.0), maker.see(2, 5 * DAY), maker.see(3, 0.0)
    for event in (old, recent, still_open):
        store.record(event, photo("astronaut"))
    store.record(maker.end(1, 1.0))
    store.record(maker.end(2, 5 * DAY + 1))
    assert store.prune(12 * DAY) == 1
    assert store.get(old.id) is None and not (tmp_path / "snapshots" / f"{old.id}.jpg").exists()
    assert store.get(recent.id) is not None and store.get(still_open.id) is not None
    assert store.prune(12 * DAY) == 0
    assert store.prune(16 * DAY) == 1 and store.get(recent.id) is None
    store.close()


def test_prune_by_bytes_removes_oldest_ended_first(tmp_path: Path) -> None:
    maker = Maker()
    events = [maker.see(i, float(i)) for i in range(6)]
    with EventStoreCtx(tmp_path, retain_days=None, max_bytes=None) as store:
        for event in events:
            store.record(event, photo("astronaut"))
        for i in range(5):  # the last stays open
            store.record(maker.end(i, float(i) + 0.5))
        sizes = [(tmp_path / "snapshots" / f"{e.id}.jpg").stat().st_size for e in events]
    budget = sum(sizes[3:])  # room for the three newest
    with EventStoreCtx(tmp_path, retain_days=None, max_bytes=budget) as store:
        assert store.prune(100.0) == 3
        assert [r["start_time"] for r in store.query()] == [5.0, 4.0, 3.0]
        left = sum(p.stat().st_size for p in (tmp_path / "snapshots").iterdir())
        assert left <= budget
    with EventStoreCtx(tmp_path, retain_days=None, max_bytes=0) as store:
        assert store.prune(100.0) == 2  # every ended one; the open one stays
        assert [r["start_time"] for r in store.query()] == [5.0]


def test_prune_sweeps_old_orphan_snapshot_files(store: EventStore) -> None:
    snapshots = store.directory / "snapshots"
    old, fresh, partial = snapshots / ("a" * 32 + ".jpg"), snapshots / ("b" * 32 + ".jpg"), snapshots / "c.jpg.tmp"
    for path in (old, fresh, partial):
        path.write_bytes(b"x")
    now = 1_000_000.0
    os.utime(old, (now - 3600, now - 3600))
    os.utime(partial, (now - 3600, now - 3600))
    os.utime(fresh, (now - 1, now - 1))  # may be a snapshot whose row is about to commit
    store.prune(now)
    assert not old.exists() and not partial.exists() and fresh.exists()


def test_end_open_ends_leftovers_of_a_previous_run(store: EventStore) -> None:
    maker = Maker()
    store.record(maker.see(1, 10.0))
    store.record(maker.see(1, 12.0, box=(0, 0, 9, 9), zones=("z",)))
    assert store.end_open() == 1
    [row] = store.query()
    assert row["kind"] == "end" and row["end_time"] == 12.0
    assert store.end_open() == 0


def test_migrates_an_empty_database(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "events.db").close()  # version 0: a file with nothing in it
    with EventStoreCtx(tmp_path) as store:
        assert store.query() == []
        store.record(Maker().see(1, 1.0))
        assert len(store.query()) == 1


def test_migrates_v1_to_a_next_version_keeping_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    event = Maker().see(1, 1.0, zones=("door",))
    with EventStoreCtx(tmp_path) as store:
        store.record(event, photo("astronaut"))

    def v2(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE events ADD COLUMN note TEXT NOT NULL DEFAULT 'migrated'")

    monkeypatch.setattr(store_module, "_MIGRATIONS", (*store_module._MIGRATIONS, v2))
    with EventStoreCtx(tmp_path) as store:
        row = store.get(event.id)
        assert row is not None and row["entered_zones"] == ["door"] and store.snapshot(event.id) is not None
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT note FROM events").fetchall() == [("migrated",)]


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "events.db") as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match=r"schema version 99, newer than this streamer understands \(1\)") as info:
        EventStore(tmp_path)
    assert str(tmp_path / "events.db") in str(info.value) and "[storage] dir" in str(info.value)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "events.db").write_bytes(b"this is not a database at all, just text" * 100)
    with pytest.raises(StoreError, match=r"events\.db.*\[storage\] dir"):
        EventStore(tmp_path)


def test_a_bad_directory_names_the_path_and_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match=r"a-file/events.*\[storage\] dir in config\.toml") as info:
        EventStore(blocker / "events")
    assert isinstance(info.value, ConfigError)


def test_bad_retention_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retain_days"):
        EventStore(tmp_path, retain_days=0)
    with pytest.raises(ConfigError, match="max_bytes"):
        EventStore(tmp_path, max_bytes=-1)


def test_reads_from_another_thread_while_writing(store: EventStore) -> None:
    maker = Maker()
    seen: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        try:
            for _ in range(10_000):
                seen.append(len(store.query(limit=MAX_LIMIT)))
                if done.is_set():
                    break
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(200):
        store.record(maker.see(i, float(i)))
    done.set()
    reader.join(timeout=60)
    assert not reader.is_alive() and errors == []
    assert seen == sorted(seen) and len(store.query(limit=MAX_LIMIT)) == 200


class EventStoreCtx:
    """An EventStore closed at the end of a ``with`` block."""

    def __init__(self, directory: Path, **options: float | None) -> None:
        self.store = EventStore(directory, **options)  # type: ignore[arg-type]

    def __enter__(self) -> EventStore:
        return self.store

    def __exit__(self, *_: object) -> None:
        self.store.close()
