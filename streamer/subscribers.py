"""What a runtime calls back: the subscribers of its results, frames and events.

Shared by :class:`~streamer.runtime.Runtime` (one process) and
:class:`~streamer.cluster.front.ClusterRuntime` (the front of a Ray cluster),
so the server, the CLI and the sinks subscribe to either the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from streamer.events import Event
from streamer.frames import Frame
from streamer.results import FrameResult

__all__ = ["OnEvent", "OnFrame", "OnResult", "Subscribers"]

OnResult = Callable[[FrameResult, Frame], None]
OnFrame = Callable[[Frame], None]
OnEvent = Callable[[Event], None]


class Subscribers:
    """The callbacks, kept in the order they subscribed; subscribe before the runtime starts."""

    def __init__(self) -> None:
        self._on_result: list[OnResult] = []
        self._on_frame: list[OnFrame] = []
        self._frames_wanted: list[Callable[[str], bool] | None] = []
        self._on_event: list[OnEvent] = []

    def subscribe(self, on_result: OnResult) -> None:
        """Call ``on_result(result, frame)`` for every result, on the runtime's delivery thread; keep it quick.
        (On a cluster ``frame`` has the frame's size and time, but its image stays on the camera group.)"""
        self._on_result.append(on_result)

    def subscribe_frames(self, on_frame: OnFrame, *, wanted: Callable[[str], bool] | None = None) -> None:
        """Call ``on_frame(frame)`` for every decoded frame (on a cluster: the newest frame of each stream
        ``wanted``), on the runtime's thread; it must be quick.

        ``wanted(stream_id)`` says whether it needs every frame of a stream now
        (a viewer is watching); ``None``: always. While no subscriber does, an
        overloaded live decoder may skip frames the models would not take, and
        a camera group sends no frames of that stream.
        """
        self._on_frame.append(on_frame)
        self._frames_wanted.append(wanted)

    def subscribe_events(self, on_event: OnEvent) -> None:
        """Call ``on_event(event)`` for each event once it is recorded (on the recorder's thread)."""
        self._on_event.append(on_event)

    def _every_frame_wanted(self, stream_id: str) -> bool:
        return any(wanted is None or wanted(stream_id) for wanted in self._frames_wanted)

    def _event(self, event: Event) -> None:
        for callback in self._on_event:
            callback(event)
