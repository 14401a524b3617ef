"""``[cluster]``: where the Ray cluster is and how streams are grouped onto its actors."""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamer.errors import ConfigError

__all__ = ["ClusterConfig", "redact_address"]

_ADDRESS = re.compile(r"^(auto|local|ray://[^\s/]+|[^\s/:]+:\d{1,5})$")


def redact_address(address: str) -> str:
    """``address`` without credentials (``ray://user:secret@host:port`` -> ``ray://***@host:port``)."""
    return re.sub(r"^(ray://)[^@/]*@", r"\1***@", address)


@dataclass(frozen=True)
class ClusterConfig:
    """``address``: ``auto`` (the cluster this machine belongs to), ``local`` (start one here),
    ``ray://host:port`` (Ray Client) or ``host:port`` (the head's GCS).
    ``streams_per_actor``: the most streams one camera group runs; ``actors``: groups started up front
    (the models load before the first stream); ``max_actors``: the most groups this front starts (a stream
    that would need one more is refused). ``actor_cpus`` / ``actor_gpus``: each group's Ray resources
    (``actor_gpus`` ``None``: a quarter GPU where the cluster has GPUs, else none). ``namespace``: the
    Ray namespace of the groups (one per site). ``lost_after_s``: a group that does not answer for this
    long is killed and its streams move. ``outbox``: results and events a group keeps for the front."""

    address: str
    streams_per_actor: int = 4
    actors: int = 1
    max_actors: int = 64
    actor_cpus: float = 1.0
    actor_gpus: float | None = None
    namespace: str = "streamer"
    lost_after_s: float = 3.0
    outbox: int = 2048

    def __post_init__(self) -> None:
        if not isinstance(self.address, str) or not _ADDRESS.match(self.address):
            raise ConfigError(
                f"cluster.ray = {redact_address(str(self.address))!r}: expected auto, local, ray://host:port "
                "or host:port (the head node's address)"
            )
        checks = (
            ("streams_per_actor", self.streams_per_actor, 1, 1000),
            ("actors", self.actors, 0, 1000),
            ("max_actors", self.max_actors, 1, 100_000),
            ("actor_cpus", self.actor_cpus, 0, 1024),
            ("lost_after_s", self.lost_after_s, 0.5, 3600),
            ("outbox", self.outbox, 16, 1_000_000),
        )
        for name, value, low, high in checks:
            if not low <= value <= high or (name == "lost_after_s" and value <= 0):
                raise ConfigError(f"cluster.{name} = {value!r}; expected a number in [{low}, {high}]")
        if self.actors > self.max_actors:
            raise ConfigError(f"cluster.actors = {self.actors} is over cluster.max_actors = {self.max_actors}")
        if self.actor_gpus is not None and not 0 <= self.actor_gpus <= 64:
            raise ConfigError(f"cluster.actor_gpus = {self.actor_gpus!r}; expected a number in [0, 64]")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.namespace):
            raise ConfigError(f"cluster.namespace = {self.namespace!r:.80}; expected 1 to 64 of A-Z a-z 0-9 _ . -")
