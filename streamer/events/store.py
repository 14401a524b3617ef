"""The event store: one SQLite file, the snapshot JPEGs and the clips, in one data directory.

::

    <dir>/events.db         one row per event (WAL journal, synchronous=NORMAL)
    <dir>/snapshots/<id>.jpg  the clean best frame of each event
    <dir>/clips/            clips, written by the clip writer and attached here

Durability: WAL with ``synchronous=NORMAL``: a committed event survives the
process being killed (``kill -9``: the WAL is in the OS page cache); a power
loss can lose the last commits but never corrupts the file. A snapshot is
written (temp file + ``os.replace``) before the commit that sets
``has_snapshot``, so a committed row never points at a partial file.

Threads: one writer connection (record, attach_clip, delete, prune) and one
reader connection (query, get, snapshot, clip_path), each behind its own
lock and opened with ``check_same_thread=False``; WAL lets reads run while a
write is in progress. Call order: ``EventStore(dir)``, then any methods from
any threads, then ``close()`` once.

Event ids are 32 lowercase hex digits; any other id is simply not found
(``None`` / ``False``), so no id can name a path outside the directory.
The schema version is ``PRAGMA user_version``; ``_MIGRATIONS[n]`` takes a
version ``n`` database to ``n + 1`` in one transaction at open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from streamer.errors import ConfigError, ImageError
from streamer.events.machine import Event
from streamer.results import Category, Detection, Detections, FrameResult
from streamer.vision.draw import draw_result

__all__ = ["MAX_LIMIT", "EventStore", "StoreError", "snapshot_jpeg"]

log = logging.getLogger(__name__)

MAX_LIMIT = 500  # the most rows one query returns
_ID = re.compile(r"[0-9a-f]{32}")
_ORPHAN_AGE_S = 60.0  # a snapshot file without a row this old is a crash leftover


class StoreError(ConfigError):
    """The events directory or database cannot be used: unwritable, not a database, or a newer schema."""


def _v1(db: sqlite3.Connection) -> None:
    """The initial schema."""
    db.execute(
        """CREATE TABLE events (
            id TEXT PRIMARY KEY,
            stream TEXT NOT NULL,
            label TEXT NOT NULL,
            sub_label TEXT,
            top_score REAL NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL,
            last_seen REAL NOT NULL,
            has_snapshot INTEGER NOT NULL DEFAULT 0,
            has_clip INTEGER NOT NULL DEFAULT 0,
            zones TEXT NOT NULL DEFAULT '[]',
            snapshot TEXT,
            snapshot_bytes INTEGER NOT NULL DEFAULT 0,
            clip TEXT,
            clip_bytes INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX events_start ON events (start_time DESC, id DESC)")
    db.execute("CREATE INDEX events_stream ON events (stream, start_time)")
    db.execute("CREATE INDEX events_label ON events (label)")
    db.execute("CREATE INDEX events_sub_label ON events (sub_label)")
    db.execute("CREATE INDEX events_end ON events (end_time)")


# Version n + 1 is one more function here; never edit a released one.
_MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_v1,)

_UPSERT = """
INSERT INTO events (id, stream, label, sub_label, top_score, start_time, end_time, last_seen,
                    has_snapshot, zones, snapshot, snapshot_bytes, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    stream = excluded.stream, label = excluded.label, sub_label = excluded.sub_label,
    top_score = excluded.top_score, start_time = excluded.start_time,
    end_time = coalesce(excluded.end_time, events.end_time), last_seen = excluded.last_seen,
    has_snapshot = max(events.has_snapshot, excluded.has_snapshot), zones = excluded.zones,
    snapshot = coalesce(excluded.snapshot, events.snapshot),
    snapshot_bytes = CASE WHEN excluded.snapshot IS NULL THEN events.snapshot_bytes ELSE excluded.snapshot_bytes END,
    data = excluded.data
"""


def _valid(event_id: str) -> bool:
    return isinstance(event_id, str) and _ID.fullmatch(event_id) is not None


class EventStore:
    """Events, their snapshots and clips under ``directory`` (see the module for layout and threads).

    ``retain_days``: :meth:`prune` removes events that ended longer ago
    (``None``: keep forever). ``max_bytes``: then removes the oldest ended
    events until snapshots and clips fit (``None``: no limit).
    """

    def __init__(
        self, directory: Path, *, retain_days: float | None = 10.0, max_bytes: int | None = 2 * 1024**3
    ) -> None:
        if retain_days is not None and not (math.isfinite(retain_days) and retain_days > 0):
            raise ConfigError(f"[storage] retain_days must be a positive number, got {retain_days!r}")
        if max_bytes is not None and max_bytes < 0:
            raise ConfigError(f"[storage] max_bytes must be >= 0, got {max_bytes!r}")
        self.directory = Path(directory)
        self.retain_days = retain_days
        self.max_bytes = max_bytes
        self._snapshots = self.directory / "snapshots"
        self._clips = self.directory / "clips"
        self._path = self.directory / "events.db"
        try:
            for folder in (self.directory, self._snapshots, self._clips):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".probe-{os.getpid()}-{threading.get_ident()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise StoreError(
                f"cannot store events in {self.directory}: {error.strerror or error}; "
                "set [storage] dir in config.toml to a writable directory"
            ) from error
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer = self._connect()
        try:
            self._migrate(self._writer)
            self._reader = self._connect()
        except BaseException:
            self._writer.close()
            raise
        self._closed = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def clips_dir(self) -> Path:
        """Where the clip writer puts clips before :meth:`attach_clip`."""
        return self._clips

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self._path, timeout=10.0, isolation_level=None, check_same_thread=False)
            try:
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is needed")
                db.execute("PRAGMA synchronous = NORMAL")
            except BaseException:
                db.close()
                raise
        except sqlite3.Error as error:
            raise StoreError(
                f"cannot open the events database {self._path}: {error}; move the file away "
                "or set [storage] dir in config.toml to another directory"
            ) from error
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as error:
            raise StoreError(
                f"cannot read the events database {self._path}: {error}; move the file away "
                "or set [storage] dir in config.toml to another directory"
            ) from error
        known = len(_MIGRATIONS)
        if version > known:
            raise StoreError(
                f"the events database {self._path} has schema version {version}, newer than this streamer "
                f"understands ({known}); upgrade streamer, or set [storage] dir in config.toml to another directory"
            )
        for number in range(version, known):
            with self._transaction(db):
                _MIGRATIONS[number](db)
                db.execute(f"PRAGMA user_version = {number + 1}")
            log.info("events database %s migrated to schema version %d", self._path, number + 1)

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection) -> Iterator[None]:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- writes (one writer connection) ---

    def record(self, event: Event, snapshot: np.ndarray | bytes | None = None) -> None:
        """Insert or update ``event``'s row in one transaction. When ``event.snapshot`` is true and
        ``snapshot`` (the clean RGB uint8 frame, or that frame as :func:`snapshot_jpeg` made it elsewhere)
        is given, it becomes ``snapshots/<id>.jpg`` before the commit; otherwise the earlier snapshot stays.
        Raises OSError or sqlite3.Error when the disk fails."""
        if not _valid(event.id):
            raise StoreError(f"event id must be 32 lowercase hex digits, got {event.id!r}")
        data = event.to_dict()
        data.pop("before")
        after = event.after
        with self._write_lock:
            snapshot_json: str | None = None
            size = 0
            if event.snapshot and snapshot is not None:
                size = self._write_jpeg(event.id, snapshot)
                sub = after.sub_label
                snapshot_json = json.dumps(
                    {
                        "box": list(after.box),
                        "label": after.label,
                        "score": after.score,
                        "sub_label": None if sub is None else sub.to_dict(),
                    }
                )
            self._writer.execute(
                _UPSERT,
                (
                    event.id,
                    after.stream,
                    after.label,
                    None if after.sub_label is None else after.sub_label.name,
                    after.top_score,
                    after.first_seen,
                    data["end_time"],
                    after.last_seen,
                    1 if snapshot_json is not None else 0,
                    json.dumps(list(after.entered_zones)),
                    snapshot_json,
                    size,
                    json.dumps(data),
                ),
            )

    def _write_jpeg(self, event_id: str, image: np.ndarray | bytes) -> int:
        encoded = image if isinstance(image, bytes) else snapshot_jpeg(image)
        if not encoded.startswith(b"\xff\xd8\xff"):
            raise ImageError(f"the snapshot of event {event_id} is not a JPEG")
        target = self._snapshots / f"{event_id}.jpg"
        temporary = target.with_suffix(".jpg.tmp")
        temporary.write_bytes(encoded)
        os.replace(temporary, target)
        return len(encoded)

    def attach_clip(self, event_id: str, path: Path) -> None:
        """Mark ``path`` (a complete file directly in :attr:`clips_dir`) as the event's clip. A clip whose
        event is gone (deleted or pruned meanwhile, or a bad id) is removed instead."""
        path = Path(path)
        if path.resolve().parent != self._clips.resolve():
            raise StoreError(f"a clip must be a file directly in {self._clips}, got {path}")
        size = path.stat().st_size
        updated = 0
        if _valid(event_id):
            with self._write_lock:
                cursor = self._writer.execute(
                    "UPDATE events SET has_clip = 1, clip = ?, clip_bytes = ? WHERE id = ?", (path.name, size, event_id)
                )
                updated = cursor.rowcount
        if not updated:
            path.unlink(missing_ok=True)

    def end_open(self, *, keep: Collection[str] = ()) -> int:
        """Mark events a previous run left open (it stopped without ending them) as ended when last seen,
        but those of the streams in ``keep`` (still running elsewhere: a Ray camera group).
        The recorder calls this once before recording; returns how many."""
        kept = sorted(set(keep))
        where = "end_time IS NULL" + (f" AND stream NOT IN ({', '.join('?' * len(kept))})" if kept else "")
        with self._write_lock:
            cursor = self._writer.execute(
                "UPDATE events SET end_time = last_seen, "
                f"data = json_set(data, '$.end_time', last_seen, '$.kind', 'end') WHERE {where}",
                kept,
            )
            return cursor.rowcount

    def delete(self, event_id: str) -> bool:
        """Remove the event's row, then its snapshot and clip; ``False`` if there was none. (An event
        that is still open comes back with its next update.)"""
        if not _valid(event_id):
            return False
        with self._write_lock:
            return self._remove([event_id]) > 0

    def _remove(self, ids: list[str]) -> int:
        """Rows first (one transaction), then files: a crash in between leaves files, never dangling rows."""
        if not ids:
            return 0
        clips: list[str] = []
        removed = 0
        with self._transaction(self._writer):
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT clip FROM events WHERE id IN ({marks}) AND clip IS NOT NULL"
                clips += [name for (name,) in self._writer.execute(query, chunk)]
                removed += self._writer.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk).rowcount
        for event_id in ids:
            (self._snapshots / f"{event_id}.jpg").unlink(missing_ok=True)
        for name in clips:
            (self._clips / name).unlink(missing_ok=True)
        return removed

    def prune(self, now: float) -> int:
        """Apply retention at ``now`` (unix seconds): remove events that ended more than ``retain_days``
        ago, then the oldest ended events until snapshots and clips take at most ``max_bytes``; also
        remove snapshot files without a row (crash leftovers). Returns how many events were removed."""
        with self._write_lock:
            ids: list[str] = []
            if self.retain_days is not None:
                cutoff = now - self.retain_days * 86400.0
                rows = self._writer.execute(
                    "SELECT id FROM events WHERE end_time IS NOT NULL AND end_time < ?", (cutoff,)
                )
                ids = [event_id for (event_id,) in rows]
            removed = self._remove(ids)
            if self.max_bytes is not None:
                (total,) = self._writer.execute(
                    "SELECT coalesce(sum(snapshot_bytes + clip_bytes), 0) FROM events"
                ).fetchone()
                ids = []
                if total > self.max_bytes:
                    rows = self._writer.execute(
                        "SELECT id, snapshot_bytes + clip_bytes FROM events WHERE end_time IS NOT NULL "
                        "AND snapshot_bytes + clip_bytes > 0 ORDER BY start_time, id"
                    )
                    for event_id, size in rows:
                        if total <= self.max_bytes:
                            break
                        ids.append(event_id)
                        total -= size
                removed += self._remove(ids)
            self._sweep(now)
            return removed

    def _sweep(self, now: float) -> None:
        for entry in os.scandir(self._snapshots):
            event_id = entry.name.split(".", 1)[0]
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime > now - _ORPHAN_AGE_S:
                    continue
                if (
                    entry.name.endswith(".tmp")
                    or not self._writer.execute(
                        "SELECT 1 FROM events WHERE id = ? AND has_snapshot = 1", (event_id,)
                    ).fetchone()
                ):
                    os.unlink(entry.path)

    # --- reads (one reader connection) ---

    def query(
        self,
        *,
        stream: str | None = None,
        label: str | None = None,
        zone: str | None = None,
        after: float | None = None,
        before: float | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Events newest first (by start time, then id). ``label`` matches the detector label or the settled
        sub-label's name; ``zone`` any zone the object entered; ``after`` / ``before``: start time ``>=`` /
        ``<``; ``None``: no filter. ``limit`` is capped at :data:`MAX_LIMIT`."""
        if limit < 0 or offset < 0:
            raise ConfigError(f"limit and offset must be >= 0, got limit={limit} offset={offset}")
        where: list[str] = []
        args: list[Any] = []
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        if label is not None:
            where.append("(label = ? OR sub_label = ?)")
            args += [label, label]
        if zone is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(events.zones) WHERE value = ?)")
            args.append(zone)
        if after is not None:
            where.append("start_time >= ?")
            args.append(after)
        if before is not None:
            where.append("start_time < ?")
            args.append(before)
        sql = "SELECT data, has_snapshot, has_clip, snapshot FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?"
        args += [min(limit, MAX_LIMIT), offset]
        with self._read_lock:
            rows = self._reader.execute(sql, args).fetchall()
        return [_row(*row) for row in rows]

    def get(self, event_id: str) -> dict[str, Any] | None:
        """One event as :meth:`query` gives it; ``None``: no such event (or not a valid id)."""
        if not _valid(event_id):
            return None
        with self._read_lock:
            row = self._reader.execute(
                "SELECT data, has_snapshot, has_clip, snapshot FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        return None if row is None else _row(*row)

    def snapshot(self, event_id: str, *, annotated: bool = False) -> bytes | None:
        """The event's snapshot JPEG; ``annotated``: with its box and label drawn on a copy.
        ``None``: no such event, no snapshot, or the file is gone or unreadable."""
        if not _valid(event_id):
            return None
        with self._read_lock:
            row = self._reader.execute(
                "SELECT snapshot FROM events WHERE id = ? AND has_snapshot = 1", (event_id,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        try:
            data = (self._snapshots / f"{event_id}.jpg").read_bytes()
        except OSError:
            return None
        if not annotated:
            return data
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return None
        drawn = _annotate(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), json.loads(row[0]))
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return encoded.tobytes() if ok else None

    def clip_path(self, event_id: str) -> Path | None:
        """The event's attached clip file; ``None``: no such event, no clip yet, or the file is gone."""
        if not _valid(event_id):
            return None
        with self._read_lock:
            row = self._reader.execute("SELECT clip FROM events WHERE id = ? AND has_clip = 1", (event_id,)).fetchone()
        if row is None or not row[0]:
            return None
        path = self._clips / Path(row[0]).name
        return path if path.is_file() else None

    def close(self) -> None:
        """Close both connections (idempotent). The store's owner calls this after the recorder closed."""
        if self._closed:
            return
        self._closed = True
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._writer.close()


def snapshot_jpeg(image: np.ndarray) -> bytes:
    """A clean RGB uint8 frame as the store keeps snapshots: JPEG, quality 90 (a Ray camera group encodes
    its snapshots so, and sends the front a tenth of the bytes)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"a snapshot must be an RGB uint8 [H, W, 3] array, got {image.dtype} {list(image.shape)}")
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise ImageError(f"could not encode a {image.shape[1]}x{image.shape[0]} snapshot as JPEG")
    return encoded.tobytes()


def _row(data: str, has_snapshot: int, has_clip: int, snapshot: str | None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(data)
    event["has_snapshot"] = bool(has_snapshot)
    event["has_clip"] = bool(has_clip)
    event["snapshot"] = None if snapshot is None else json.loads(snapshot)  # its box, label and score
    return event


def _annotate(image: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """``image`` with the snapshot's box, label and score (and settled sub-label) drawn by the shared drawer."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in info["box"])
    sub = info.get("sub_label")
    classes: tuple[Category, ...] = ()
    if sub:
        confidence = min(1.0, max(0.0, float(sub["confidence"])))
        classes = (Category(max(0, int(sub["class_id"])), sub["name"], sub["display_name"], confidence),)
    label = str(info["label"])
    obj = Detection(
        (x1, y1, max(x1, x2), max(y1, y2)),
        zlib.crc32(label.encode()) % 1000,  # a stable colour per label
        label,
        float(info["score"]),
        classes,
    )
    return draw_result(image, FrameResult(width, height, objects=Detections.of([obj])))
