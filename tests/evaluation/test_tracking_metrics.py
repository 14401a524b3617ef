"""Identity metrics (IDF1, CLEAR MOT ID switches) on hand-made truth and predictions with known answers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from streamer.errors import ConfigError
from streamer.evaluation.tracking import Frame, identity_metrics

A = (0.0, 0.0, 10.0, 10.0)
B = (100.0, 0.0, 110.0, 10.0)
FAR = (500.0, 500.0, 510.0, 510.0)


def test_perfect_tracking_scores_one() -> None:
    truth = [[(1, A), (2, B)]] * 5
    predicted: list[Frame] = [[(7, A), (9, np.array(B))]] * 5
    m = identity_metrics(truth, predicted)
    assert (m.idf1, m.idp, m.idr, m.mota) == (1.0, 1.0, 1.0, 1.0)
    assert (m.idtp, m.id_switches, m.matches, m.misses, m.false_positives) == (10, 0, 10, 0, 0)
    assert m.id_pairs == {1: 7, 2: 9}


def test_an_id_change_halfway_halves_idf1_and_is_one_switch() -> None:
    truth = [[(1, A)]] * 4
    predicted = [[(10, A)], [(10, A)], [(11, A)], [(11, A)]]
    m = identity_metrics(truth, predicted)
    assert m.idtp == 2 and m.idf1 == pytest.approx(0.5)
    assert m.id_switches == 1 and m.matches == 4
    assert m.mota == pytest.approx(0.75)


def test_two_objects_swapping_ids_are_two_switches() -> None:
    truth = [[(1, A), (2, B)]] * 4
    predicted = [[(10, A), (11, B)]] * 2 + [[(10, B), (11, A)]] * 2
    m = identity_metrics(truth, predicted)
    assert m.idtp == 4 and m.idf1 == pytest.approx(0.5)
    assert m.id_switches == 2


def test_misses_and_false_positives() -> None:
    truth = [[(1, A)]] * 4
    predicted = [[(10, A), (20, FAR)], [(10, A)], [(10, A)], []]
    m = identity_metrics(truth, predicted)
    assert (m.truth_boxes, m.predicted_boxes, m.idtp) == (4, 4, 3)
    assert m.idf1 == pytest.approx(0.75) and m.idp == pytest.approx(0.75) and m.idr == pytest.approx(0.75)
    assert (m.misses, m.false_positives, m.id_switches) == (1, 1, 0)
    assert m.mota == pytest.approx(0.5)
    assert m.id_pairs == {1: 10}


def test_a_box_overlapping_less_than_the_threshold_does_not_count() -> None:
    shifted = (5.0, 0.0, 15.0, 10.0)  # IoU 1/3 with A
    m = identity_metrics([[(1, A)]] * 3, [[(10, shifted)]] * 3, iou_threshold=0.5)
    assert m.idtp == 0 and m.idf1 == 0.0 and m.matches == 0 and m.id_pairs == {}
    loose = identity_metrics([[(1, A)]] * 3, [[(10, shifted)]] * 3, iou_threshold=0.3)
    assert loose.idf1 == 1.0


def test_a_switch_is_counted_against_the_last_match_even_after_a_gap() -> None:
    truth = [[(1, A)]] * 5
    predicted = [[(10, A)], [(10, A)], [], [], [(11, A)]]
    m = identity_metrics(truth, predicted)
    assert m.id_switches == 1 and m.misses == 2
    assert m.idf1 == pytest.approx(2 * 2 / (5 + 3))


def test_clear_mot_keeps_last_frames_pair_while_it_still_overlaps() -> None:
    near = (0.0, 0.0, 10.0, 7.0)  # IoU 0.7 with A
    truth = [[(1, A)]] * 3
    predicted = [[(10, near)], [(10, near), (11, A)], [(10, near), (11, A)]]
    m = identity_metrics(truth, predicted)
    assert m.id_switches == 0 and m.false_positives == 2
    assert m.id_pairs == {1: 10}  # 3 frames with 10, 2 with 11


def test_global_pairing_beats_greedy() -> None:
    # Truth 1 agrees with 10 in 3 frames and 11 in 2; truth 2 agrees with 10 in 2 frames only.
    # Greedy (1 -> 10) gives IDTP 3; the optimum (1 -> 11, 2 -> 10) gives 4.
    truth = [[(1, A), (2, B)]] * 2 + [[(1, A)]] * 3
    predicted = [[(11, A), (10, B)]] * 2 + [[(10, A)]] * 3
    m = identity_metrics(truth, predicted)
    assert m.idtp == 4 and m.id_pairs == {1: 11, 2: 10}
    assert m.idf1 == pytest.approx(2 * 4 / (7 + 7))


def test_empty_runs() -> None:
    m = identity_metrics([[], []], [[], []])
    assert m.idf1 == 1.0 and m.truth_boxes == 0 and m.mota == 0.0
    only_truth = identity_metrics([[(1, A)]], [[]])
    assert only_truth.idf1 == 0.0 and only_truth.misses == 1


@pytest.mark.parametrize(
    ("truth", "predicted", "threshold", "message"),
    [
        ([[]], [[], []], 0.5, "truth has 1 frames but predicted has 2"),
        ([[(1, A), (1, B)]], [[]], 0.5, "truth frame 0 has the same id twice"),
        ([[]], [[(3, A), (3, B)]], 0.5, "predicted frame 0 has the same id twice"),
        ([[]], [[]], 0.0, "iou_threshold = 0.0; expected a number in (0, 1]"),
    ],
)
def test_bad_input_is_refused(truth: list[Frame], predicted: list[Frame], threshold: float, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        identity_metrics(truth, predicted, iou_threshold=threshold)
