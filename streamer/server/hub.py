"""The hub: fans results out to every connected client, each through its own bounded queue.

A slow client loses its oldest messages (counted in ``dropped``); the
server's memory and the other clients do not suffer. A stream in
``private`` (a browser's camera) reaches only the client it maps to. :meth:`Hub.publish`
may be called from any thread (the pipeline's dispatcher); the queues live
on the asyncio loop the hub was created on. Call order::

    hub = Hub(loop, queue_size=64)           # on the server's event loop
    client = hub.connect()                   # per WebSocket connection
    text = await client.next()               # in that connection's sender task, one message...
    await client.wait()                      # ... or: until one is queued, then
    for _ in range(len(client)):             #     the ones queued now, oldest first,
        text = client.pop()                  #     with no await between them
    hub.publish(text, stream="cam1")         # from anywhere
    hub.disconnect(client)
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["RETIRED", "Client", "Hub"]

#: ended private streams remembered, so a result still on its way is dropped; stream ids are never reused
RETIRED = 1024


class Client:
    """One connection's queue: newest messages kept, oldest dropped when full."""

    def __init__(self, queue_size: int) -> None:
        self._queue: deque[str] = deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        self.streams: frozenset[str] | None = None  # None: every stream
        self.dropped = 0

    def offer(self, text: str, stream: str | None) -> None:
        """Queue ``text`` if this client wants ``stream`` (``None``: a message for everyone)."""
        if stream is not None and self.streams is not None and stream not in self.streams:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(text)
        self._ready.set()

    async def next(self) -> str:
        """The oldest queued message, waiting for one."""
        await self.wait()
        return self._queue.popleft()

    async def wait(self) -> None:
        """Until a message is queued (at once if one is)."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()

    def pop(self) -> str:
        """The oldest queued message; an :class:`IndexError` if there is none (see :meth:`wait`).

        The queue only shrinks by ``pop`` (dropping the oldest keeps it full), so a sender may pop
        ``len(client)`` messages, however many arrive meanwhile.
        """
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)


class Hub:
    """Every connected :class:`Client`, and the way messages reach them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, queue_size: int = 64) -> None:
        self._loop = loop
        self.queue_size = queue_size
        self.clients: set[Client] = set()
        #: stream -> the one client that may see it; ``None``: nobody (a camera that ended, whose late results
        #: still in the pipeline must not reach anyone)
        self.private: dict[str, Client | None] = {}
        self._retired: deque[str] = deque()

    def connect(self) -> Client:
        client = Client(self.queue_size)
        self.clients.add(client)
        return client

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)

    def retire(self, stream: str) -> None:
        """A private stream has ended: its late results reach nobody (the last :data:`RETIRED` are kept)."""
        if stream not in self.private:
            return
        self.private[stream] = None
        self._retired.append(stream)
        while len(self._retired) > RETIRED:
            self.private.pop(self._retired.popleft(), None)

    def publish(self, text: str, stream: str | None = None) -> None:
        """Send ``text`` to every client that wants ``stream``; safe from any thread, never blocks."""
        if self._loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._fan_out(text, stream)
        else:
            self._loop.call_soon_threadsafe(self._fan_out, text, stream)

    def _fan_out(self, text: str, stream: str | None) -> None:
        if stream is not None and stream in self.private:
            owner = self.private[stream]
            if owner is not None and owner in self.clients:
                owner.offer(text, stream)
            return
        for client in self.clients:  # offer() never connects or disconnects anyone
            client.offer(text, stream)
