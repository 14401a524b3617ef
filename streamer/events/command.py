"""``streamer events``: the recorded events from the database, newest first, as a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from streamer.config import Config
from streamer.errors import ConfigError

__all__ = ["list_events", "since_seconds"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def since_seconds(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"``, ``"1w"`` as seconds (argparse's type for ``--since``)."""
    match = _SPAN.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time span; use a number and s, m, h, d or w, e.g. 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _row(event: dict[str, Any]) -> str:
    sub = event.get("sub_label")
    label = event["label"] + (f" ({sub['name']})" if sub else "")
    zones = ",".join(event.get("entered_zones") or []) or "-"
    end = _when(event.get("end_time")) if event.get("end_time") is not None else "ongoing"
    return (
        f"{event['id']}  {event['stream']:<16.16} #{event['track_id']:<5} {label:<28.28} "
        f"{event['top_score']:.2f}  {_when(event['start_time'])}  {end:<19}  {zones}"
    )


def list_events(args: argparse.Namespace, config: Config) -> int:
    """Print the events ``args`` asks for; 0, or 2 with a message when there is no database yet."""
    if args.limit < 1:
        raise ConfigError(f"--limit {args.limit}: expected an integer >= 1")
    directory = config.storage_dir
    if not (directory / "events.db").is_file():
        raise ConfigError(
            f"no events recorded in {directory} yet; `streamer run` or `serve` with a detector records them"
        )
    store = config.event_store()
    try:
        after = None if args.since is None else time.time() - args.since
        events = store.query(stream=args.stream, label=args.label, zone=args.zone, after=after, limit=args.limit)
    finally:
        store.close()
    for event in events:
        print(json.dumps(event, separators=(",", ":")) if args.json else _row(event))
    if not events and not args.json:
        print("no events", file=sys.stderr)
    return 0
