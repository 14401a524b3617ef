"""The in-process backend on the real models: per-stream hooks, batches in flight, closing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from streamer.errors import ImageError, RunningModeError
from streamer.inference.backend import LocalBackend, Request
from streamer.inference.cascade import CascadeConfig, Hook, Tracked
from streamer.results import Category, Detections
from tests.media import photo

COLLAGE = photo("collage")


class Pick:
    """A stand-in tracker: lets the objects at ``chosen`` through to the classifier, numbers them, and records
    its calls."""

    def __init__(self, chosen: list[int], calls: list[tuple[str, tuple[int, ...], tuple[str, ...]]]) -> None:
        self.chosen = chosen
        self.calls = calls

    def before(self, request: Request, objects: Detections, eligible: np.ndarray) -> Tracked:
        self.calls.append((request.stream_id, request.image.shape, objects.names))
        ids = np.arange(1, len(objects) + 1)
        return Tracked(objects.with_tracks(ids), np.array(self.chosen, np.int64), {"zones": {}}, (99,))

    def after(self, tracked: Tracked, classes: Sequence[tuple[Category, ...]]) -> Detections:
        assert len(classes) == len(tracked.classify)
        return tracked.objects


class FirstOnly:
    """Builds the hooks: ``cam`` classifies only the best object, ``nothing`` none, ``plain`` has no hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...], tuple[str, ...]]] = []
        self.built: list[str] = []

    def factory(self, stream_id: str) -> Hook | None:
        self.built.append(stream_id)
        if stream_id == "plain":
            return None  # no hook for it: every eligible object is classified
        return Pick([] if stream_id == "nothing" else [0], self.calls if stream_id == "cam" else [])


@pytest.fixture(scope="module")
def first_only() -> Iterator[tuple[LocalBackend, FirstOnly]]:
    hooks = FirstOnly()
    backend = LocalBackend(CascadeConfig(stages="cascade", device="cpu", max_results=1), hooks=hooks.factory)
    yield backend, hooks
    backend.close()


def test_the_hook_of_each_stream_picks_the_crops_to_classify(first_only: tuple[LocalBackend, FirstOnly]) -> None:
    backend, hooks = first_only
    requests = [Request(stream, COLLAGE) for stream in ("cam", "nothing", "plain", "")]
    cam, nothing, plain, one_off = backend.submit(requests).result(timeout=60)
    assert len(cam.objects) >= 3, "the hook chooses what is classified, never what is detected"
    assert [bool(o.classes) for o in cam.objects] == [True] + [False] * (len(cam.objects) - 1)
    assert [o.track_id for o in cam.objects] == list(range(1, len(cam.objects) + 1)), "the hook's ids reach the result"
    assert cam.ended == (99,) and cam.counts == {"zones": {}}
    assert not any(o.classes for o in nothing.objects)
    describable = [o.name != "person" for o in plain.objects]  # ImageNet has no person: never cascaded
    assert [bool(o.classes) for o in plain.objects] == describable and any(describable)
    assert [bool(o.classes) for o in one_off.objects] == describable
    assert hooks.calls == [("cam", COLLAGE.shape, tuple(o.name for o in cam.objects))]
    assert hooks.built == ["cam", "nothing", "plain"], "one hook per stream, none for one-off images"
    backend.forget("cam")
    backend.submit([Request("cam", COLLAGE)]).result(timeout=60)
    assert hooks.built[-1] == "cam", "a forgotten stream's next frame builds a new hook"


def test_batches_in_flight_come_back_in_order(first_only: tuple[LocalBackend, FirstOnly]) -> None:
    backend, _ = first_only
    images = [COLLAGE, np.ascontiguousarray(COLLAGE[:, ::-1]), COLLAGE[: COLLAGE.shape[0] // 2]]
    futures = [backend.submit([Request("", image)]) for image in images]  # all submitted before any is awaited
    results = [future.result(timeout=60)[0] for future in futures]
    assert [(r.width, r.height) for r in results] == [image.shape[1::-1] for image in images]
    assert all(
        r.models == {"detector": results[0].models["detector"], "classifier": results[0].models["classifier"]}
        for r in results
    )


def test_bad_images_are_refused_before_a_batch_and_a_closed_backend_says_so() -> None:
    with pytest.raises(ImageError, match=r"got shape \[0, 5, 3\] uint8"):
        Request("", np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ImageError, match=r"got shape \[4, 4\] float64"):
        Request("", np.zeros((4, 4)))
    with LocalBackendClosing(CascadeConfig(device="cpu")) as backend:
        [good] = backend.submit([Request("", photo("coffee"))]).result(timeout=60)
        [same] = backend.run([Request("", photo("coffee"))])  # one-off images: on the calling thread
        assert good.classes and same.classes == good.classes
    for closed in (backend.submit, backend.run):
        with pytest.raises(RunningModeError, match="this inference backend is closed"):
            closed([Request("", photo("coffee"))])


class LocalBackendClosing(LocalBackend):
    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_whole_image_requests_skip_the_detector_in_a_mixed_batch(first_only: tuple[LocalBackend, FirstOnly]) -> None:
    backend, _ = first_only
    detected, whole = backend.submit([Request("", COLLAGE), Request("", COLLAGE, whole=True)]).result(timeout=60)
    assert len(detected.objects) >= 3 and detected.classes == ()
    assert len(whole.objects) == 0 and len(whole.classes) == 1, "the classifier labels the whole collage"


def test_on_the_cpu_one_batch_is_in_flight_at_a_time() -> None:
    """Both phases would run their sessions on the same cores: overlapping two batches only slows each."""
    backend = LocalBackend(CascadeConfig(stages="classify", device="cpu"))
    try:
        assert backend.provider == "CPUExecutionProvider" and backend.in_flight == 1
    finally:
        backend.close()
