"""Events: objects over time turned into records, snapshots and clips."""

from streamer.events.machine import Event, EventMachine, EventState
from streamer.events.recorder import EventRecorder
from streamer.events.store import EventStore, StoreError

__all__ = ["Event", "EventMachine", "EventRecorder", "EventState", "EventStore", "StoreError"]
