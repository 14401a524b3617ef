"""The page's tests run in a network namespace of their own, with only ``lo`` up, so no packet can leave it.

Outside such a namespace, the tests selected here are replaced by one, ``test_page_in_a_network_namespace``
(in ``test_page.py``), which makes a fresh namespace and runs them there in a child pytest. Inside it
(``STREAMER_NETNS`` set), that one is deselected and each session first proves it sees nothing but ``lo``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamer.runtime import Runtime
from streamer.sources.base import Source, SourceState
from tests import netns

WEB = Path(__file__).resolve().parent
PARENT = "test_page_in_a_network_namespace"
INSIDE = os.environ.get(netns.ENV)
# The environment as pytest was started with, before the autouse fixtures clear STREAMER_*: the child's.
ENVIRON = dict(os.environ)
INNER = pytest.StashKey[list[str]]()


def _web(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(WEB)


@pytest.hookimpl(trylast=True)  # after -k/-m have deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    web = [item for item in items if _web(item)]
    parents = [item for item in web if getattr(item, "originalname", item.name) == PARENT]
    inner = [item for item in web if item not in parents]
    if INSIDE:
        drop = parents
    else:
        drop = inner
        config.stash[INNER] = [item.nodeid for item in inner]
        if inner and not parents:  # only some of the page's tests were named: run them through the parent
            module = next((item.parent for item in inner if hasattr(getattr(item, "module", None), PARENT)), None)
            if module is not None:
                items.insert(items.index(inner[0]), pytest.Function.from_parent(module, name=PARENT))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if item not in drop]


@pytest.fixture(scope="session", autouse=True)
def _network_namespace() -> None:
    """Inside the namespace, every session starts by proving that it is isolated."""
    if INSIDE:
        netns.assert_isolated()


class StagedSource(Source):
    """A stream whose frames and results the test hands to the server itself (known boxes, known times).

    It is a real source of a real runtime, so ``/api/streams`` and ``hello`` list it; it is live at once and
    decodes nothing, and :meth:`set_state` moves it (``reconnecting`` and back) as a camera would.
    """

    def __init__(self, stream_id: str) -> None:
        super().__init__(stream_id, f"test:{stream_id}", live=True)

    def _run(self) -> None:
        self._set_state(SourceState.LIVE)
        self.stopping.wait()

    def set_state(self, state: str) -> None:
        self._set_state(SourceState(state))


@contextmanager
def staged(runtime: Runtime, stream_id: str = "cam") -> Iterator[StagedSource]:
    """A :class:`StagedSource` in ``runtime`` for the block."""
    source = StagedSource(stream_id)
    runtime.add_source(source)
    try:
        yield source
    finally:
        runtime.remove_stream(stream_id)
