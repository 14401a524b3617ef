"""Objects over time: tracker, settled scores and labels, zones and lines (pure; no I/O).

:class:`streamer.tracking.objects.ObjectTracker` puts them together as the inference core's per-stream
hook (not imported here: it builds on the inference core, which uses :func:`describable` from here).
"""

from __future__ import annotations

from streamer.tracking.settle import Labels, SettleConfig, TrackScores, describable
from streamer.tracking.tracker import Tracker, TrackerConfig, TrackUpdate
from streamer.tracking.zones import Crossing, Line, Zone, ZoneState, ZoneUpdate

__all__ = [
    "Crossing",
    "Labels",
    "Line",
    "SettleConfig",
    "TrackScores",
    "TrackUpdate",
    "Tracker",
    "TrackerConfig",
    "Zone",
    "ZoneState",
    "ZoneUpdate",
    "describable",
]
