"""Where batches run: the :class:`InferenceBackend` protocol and its in-process ONNX Runtime implementation.

Every front door (the running modes, the inference loop, ``annotate``,
``eval``, the server's classify requests through the loop) submits batches
here. ``submit`` returns at once with a future, and several batches may be
in flight: :class:`LocalBackend` runs a batch's first phase (preprocessing,
detector, hooks, crops) on one thread and its second (the classifier) on
another, so batch N+1 is prepared while batch N runs, where that pays
(``in_flight``: on a GPU, not where both phases share the CPU's cores). Each phase keeps
submission order, so a stream's hook sees its frames in order and results
come back in order. A GPU engine and a Ray backend implement the same
protocol. Call order::

    backend = LocalBackend(config)                       # models loaded, checked, warmed up
    future = backend.submit([Request("cam1", image)])    # returns at once
    results = future.result()                            # list[FrameResult], one per request
    backend.reload(new_config)                           # swap models between two batches
    backend.close()
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Protocol

from streamer.errors import RunningModeError
from streamer.inference.cascade import Cascade, CascadeConfig, HookFactory, Hooks, ModelInfo, Request, Staged
from streamer.results import FrameResult

__all__ = ["InferenceBackend", "LocalBackend", "ModelInfo", "Request"]

Future = concurrent.futures.Future


class InferenceBackend(Protocol):
    """What runs batches; see the module."""

    def submit(self, requests: Sequence[Request]) -> Future[list[FrameResult]]:
        """Run ``requests`` as one batch; the future gives one result per request, in order."""
        ...

    def run(self, requests: Sequence[Request]) -> list[FrameResult]:
        """``submit(requests).result()``, for synchronous callers (the IMAGE and VIDEO modes); a backend may
        run it on the calling thread when that is cheaper."""
        ...

    def models(self) -> list[ModelInfo]:
        """The models batches submitted now run on."""
        ...

    @property
    def provider(self) -> str:
        """The execution provider, e.g. ``CPUExecutionProvider``."""
        ...

    @property
    def in_flight(self) -> int:
        """How many batches are worth keeping in flight at once: more than one only where one batch's
        work overlaps another's on different hardware."""
        ...

    def reload(self, config: CascadeConfig) -> list[ModelInfo]:
        """Load ``config``'s models beside the running ones and switch to them between two batches.
        On any error the running models stay and the error says why."""
        ...

    def forget(self, stream_id: str) -> None:
        """A stream ended: drop its per-stream state (its hook)."""
        ...

    def close(self) -> None:
        """Finish the batches in flight, then release the models."""
        ...


def _relay(source: Future[list[FrameResult]], target: Future[list[FrameResult]]) -> None:
    error = source.exception()
    if error is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


class LocalBackend:
    """The cascade in this process on ONNX Runtime; two phases on two threads (see the module).

    ``hooks`` builds each stream's hook (see :mod:`streamer.inference.cascade`).
    """

    def __init__(self, config: CascadeConfig, *, hooks: HookFactory | None = None) -> None:
        self._hooks = None if hooks is None else Hooks(hooks)
        self._cascade = Cascade(config)
        self._first = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inference-prepare")
        self._second = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inference-run")
        self._closed = False

    @property
    def cascade(self) -> Cascade:
        """The models batches submitted now run on."""
        return self._cascade

    @property
    def provider(self) -> str:
        return self._cascade.provider

    @property
    def in_flight(self) -> int:
        """2 on a GPU (batch N+1's first phase on the CPU while the GPU runs batch N); 1 on the CPU, where
        the two phases' sessions would share the same cores: on 2 cores, four live streams of the cascade
        gave 10.8 frames/s with two batches in flight and 12.2 with one."""
        return 1 if self._cascade.provider == "CPUExecutionProvider" else 2

    def models(self) -> list[ModelInfo]:
        return list(self._cascade.models)

    def _check_open(self) -> None:
        if self._closed:
            raise RunningModeError("this inference backend is closed; create a new one")

    def submit(self, requests: Sequence[Request]) -> Future[list[FrameResult]]:
        self._check_open()
        cascade = self._cascade  # a batch runs start to end on one set of models, whatever reload does
        out: Future[list[FrameResult]] = Future()
        out.set_running_or_notify_cancel()

        def then(first: Future[Staged]) -> None:
            error = first.exception()
            if error is not None:
                out.set_exception(error)
                return
            try:
                second = self._second.submit(cascade.second, first.result())
            except RuntimeError as exc:  # closed meanwhile
                out.set_exception(exc)
                return
            second.add_done_callback(lambda done: _relay(done, out))

        self._first.submit(cascade.first, list(requests), self._hooks).add_done_callback(then)
        return out

    def run(self, requests: Sequence[Request]) -> list[FrameResult]:
        """One-off images (no stream, so no hook) run on the calling thread: handing them to the two phase
        threads costs ~0.2 ms idle and ~1 ms on busy cores (bench_classify), for no overlap to gain."""
        if any(request.stream_id for request in requests):
            return self.submit(requests).result()
        self._check_open()
        return self._cascade.run(requests)

    def reload(self, config: CascadeConfig) -> list[ModelInfo]:
        fresh = Cascade(config)  # raises, and the running cascade stays, if it cannot load
        self._cascade = fresh  # one reference swapped: a batch already submitted keeps the cascade it took
        return list(fresh.models)

    def forget(self, stream_id: str) -> None:
        if self._hooks is not None:
            self._first.submit(self._hooks.forget, stream_id)  # on the thread that runs hooks, in order

    def close(self) -> None:
        self._closed = True
        self._first.shutdown(wait=True)
        self._second.shutdown(wait=True)
