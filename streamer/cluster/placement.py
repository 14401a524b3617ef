"""Which camera group takes a stream: pure functions of the groups' loads.

A stream goes to the group with the fewest streams that has room (under
``streams_per_actor``), ties broken by name; when every group is full a new
group is started. Streams of a lost group are placed one by one the same
way, so they spread over the groups left before new ones start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["GROUP_PREFIX", "group_name", "is_group_name", "place", "place_all"]

#: camera groups are the named actors ``group-1``, ``group-2``, ... of the cluster's namespace.
GROUP_PREFIX = "group-"
_NAME = re.compile(rf"^{GROUP_PREFIX}(\d+)$")


def is_group_name(name: str) -> bool:
    return bool(_NAME.match(name))


def group_name(taken: Iterable[str]) -> str:
    """A new group's name: one past the highest number taken (names of dead groups are never reused)."""
    numbers = [int(match.group(1)) for name in taken if (match := _NAME.match(name))]
    return f"{GROUP_PREFIX}{max(numbers, default=0) + 1}"


def place(loads: Mapping[str, int], capacity: int) -> str | None:
    """The group with room and the fewest streams (ties: the first name); ``None``: start a new group."""
    open_groups = sorted((load, name) for name, load in loads.items() if load < capacity)
    return open_groups[0][1] if open_groups else None


def place_all(streams: Sequence[str], loads: Mapping[str, int], capacity: int) -> dict[str, str | None]:
    """Each of ``streams`` (in order) to a group, counting the ones placed before it; ``None``: a new
    group must start for it (the caller then places the rest again with that group)."""
    loads = dict(loads)
    placed: dict[str, str | None] = {}
    for stream in streams:
        group = place(loads, capacity)
        placed[stream] = group
        if group is not None:
            loads[group] += 1
    return placed
