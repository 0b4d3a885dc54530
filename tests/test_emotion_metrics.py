"""Emotion metrics against values computed by hand (the working is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from robustmm.metrics.emotion import HIGHER_IS_BETTER, emotion_metrics, emotion_metrics_from_classes

# index:          0     1     2    3    4    5    6     7
Y_TRUE = [-2.0, -0.4, 0.0, 0.0, 0.6, 1.8, 2.6, -1.2]
Y_PRED = [-1.5, 0.2, 0.3, 0.1, 1.0, 2.2, 0.4, -2.9]


def test_regression_metrics_hand_computed() -> None:
    m = emotion_metrics(np.array(Y_PRED), np.array(Y_TRUE))
    # Has0: truth >=0 = F F T T T T T F, pred >=0 = F T T T T T T F -> wrong at 1: 7/8
    # (true zeros count as non-negative: with "> 0" samples 2 and 3 would be wrong too)
    assert m["Has0_acc_2"] == pytest.approx(0.875)
    # class non-neg (5 true): TP 5, FP 1, FN 0 -> 10/11; class neg (3 true): TP 2, FP 0, FN 1 -> 4/5
    # weighted (5*10/11 + 3*4/5) / 8 = 191/220
    assert m["Has0_F1"] == pytest.approx(191 / 220)
    # Non0 keeps 0,1,4,5,6,7: truth pos F F T T T F, pred >0 F T T T T F -> wrong at 1: 5/6
    assert m["Non0_acc_2"] == pytest.approx(5 / 6)
    # pos (3 true): TP 3, FP 1, FN 0 -> 6/7; neg (3 true): TP 2, FP 0, FN 1 -> 4/5; mean = 29/35
    assert m["Non0_F1"] == pytest.approx(29 / 35)
    # round(clip(.,-1,1)): truth -1 0 0 0 1 1 1 -1, pred -1 0 0 0 1 1 0 -1 -> 7/8
    assert m["Acc_3"] == pytest.approx(0.875)
    # F1 per class: -1 -> 1 (2 true); 0 -> TP3 FP1 FN0 = 6/7 (3 true); 1 -> TP2 FP0 FN1 = 4/5 (3 true)
    # weighted (2 + 18/7 + 12/5) / 8 = 61/70
    assert m["F1_3"] == pytest.approx(61 / 70)
    # round(clip(.,-2,2)): truth -2 0 0 0 1 2 2 -1, pred -2 (-1.5 rounds half to even) 0 0 0 1 2 0 -2 -> 6/8
    assert m["Acc_5"] == pytest.approx(0.75)
    # round(clip(.,-3,3)): truth -2 0 0 0 1 2 3 -1, pred -2 0 0 0 1 2 0 -3 -> 6/8
    assert m["Acc_7"] == pytest.approx(0.75)
    # |p - y| = .5 .6 .3 .1 .4 .4 2.2 1.7 -> 6.2 / 8
    assert m["MAE"] == pytest.approx(0.775)


def test_corr_hand_computed_and_degenerate() -> None:
    # deviations p: -1 0 1, y: -1 1 0 -> cov 1, var 2 and 2 -> 0.5
    assert emotion_metrics([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])["Corr"] == pytest.approx(0.5)
    assert emotion_metrics([1.0, 2.0, 3.0], [-2.0, -1.0, 0.0])["Corr"] == pytest.approx(1.0)
    assert math.isnan(emotion_metrics([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["Corr"])
    # all-neutral truth leaves nothing for Non0
    assert math.isnan(emotion_metrics([1.0, -1.0], [0.0, 0.0])["Non0_acc_2"])


def test_regression_accepts_tensors_and_column_vectors() -> None:
    a = emotion_metrics(torch.tensor(Y_PRED).view(-1, 1), torch.tensor(Y_TRUE))
    b = emotion_metrics(Y_PRED, Y_TRUE)
    assert a == pytest.approx(b)
    with pytest.raises(ValueError):
        emotion_metrics(Y_PRED[:-1], Y_TRUE)
    with pytest.raises(ValueError):
        emotion_metrics([float("nan")] * 8, Y_TRUE)


# 3-way head: truth sign classes 0 1 2 2 0 1
Y3 = [-1.0, 0.0, 2.0, 0.4, -0.2, 0.0]
P3 = [0, 1, 1, 2, 2, 1]
# scores with the same argmax as P3; row 2 (neutral wins) prefers positive over negative
S3 = np.array([[2, 1, 0], [0, 3, 1], [0.5, 2, 1.5], [0, 1, 2], [1, 0, 3], [0, 2, 1]], dtype=float)


def test_three_class_indices_hand_computed() -> None:
    m = emotion_metrics_from_classes(np.array(P3), np.array(Y3), num_classes=3)
    # match at 0 1 3 5 -> 4/6
    assert m["Acc_3"] == pytest.approx(2 / 3)
    # class 0: TP1 FP0 FN1 -> 2/3; class 1: TP2 FP1 FN0 -> 4/5; class 2: TP1 FP1 FN1 -> 1/2; 2 each
    assert m["F1_3"] == pytest.approx(59 / 90)
    # Has0: truth F T T T F T; pred class >= 1: F T T T T T -> 5/6
    assert m["Has0_acc_2"] == pytest.approx(5 / 6)
    # non-neg (4 true): TP4 FP1 FN0 -> 8/9; neg (2 true): TP1 FP0 FN1 -> 2/3 -> (32/9 + 4/3)/6
    assert m["Has0_F1"] == pytest.approx(22 / 27)
    # Non0 keeps 0 2 3 4: truth neg pos pos neg; pred neg, NEUTRAL (wrong), pos, pos -> 2/4
    assert m["Non0_acc_2"] == pytest.approx(0.5)
    # neg: TP1 FP0 FN1 -> 2/3 (2 true); pos: TP1 FP1 FN1 -> 1/2 (2 true); neutral: no true support
    assert m["Non0_F1"] == pytest.approx(7 / 12)
    assert "Acc_7" not in m and "MAE" not in m
    assert "Non0_acc_2_polar" not in m  # needs scores


def test_three_class_scores_reference_and_polar_variants() -> None:
    m = emotion_metrics_from_classes(S3, Y3, num_classes=3)
    # argmax classes equal P3, so the 3-way numbers and the reference Non0 are unchanged
    assert m["Acc_3"] == pytest.approx(2 / 3)
    assert m["Non0_acc_2"] == pytest.approx(0.5)
    assert m["Non0_F1"] == pytest.approx(7 / 12)
    # reference Has0, positive vs negative column: F T T T T T vs truth F T T T F T -> 5/6
    assert m["Has0_acc_2"] == pytest.approx(5 / 6)
    # the former robustmm Non0 (kept as _polar): row 2 now says positive (1.5 > 0.5):
    # pred_pos F T T T vs truth F T T F -> 3/4
    assert m["Non0_acc_2_polar"] == pytest.approx(0.75)
    # pos TP2 FP1 FN0 -> 4/5; neg TP1 FP0 FN1 -> 2/3; (4/5 + 2/3) / 2
    assert m["Non0_F1_polar"] == pytest.approx(11 / 15)
    # probabilities give the same answer as logits
    probs = torch.softmax(torch.tensor(S3), dim=1)
    assert emotion_metrics_from_classes(probs, Y3, num_classes=3) == pytest.approx(m)


def test_seven_class_indices_hand_computed() -> None:
    y = [-2.6, -0.4, 0.0, 1.2, 3.0, 0.6]  # 7-way truth 0 3 3 4 6 4
    pred = [1, 3, 4, 4, 6, 3]              # read as scores -2 0 1 1 3 0
    m = emotion_metrics_from_classes(pred, y, num_classes=7)
    assert m["Acc_7"] == pytest.approx(0.5)       # match at 1 3 4
    # round(clip(y,-1,1)) -1 0 0 1 1 1 vs clip(score) -1 0 1 1 1 0 -> 4/6
    assert m["Acc_3"] == pytest.approx(2 / 3)
    # round(clip(y,-2,2)) -2 0 0 1 2 1 vs -2 0 1 1 2 0 -> 4/6
    assert m["Acc_5"] == pytest.approx(2 / 3)
    # F1: -1 -> 1 (1 true); 0 -> TP1 FP1 FN1 = 1/2 (2 true); 1 -> TP2 FP1 FN1 = 2/3 (3 true) -> 4/6
    assert m["F1_3"] == pytest.approx(2 / 3)
    assert m["Has0_acc_2"] == pytest.approx(5 / 6)
    assert m["Has0_F1"] == pytest.approx(22 / 27)
    # Non0 keeps 0 1 3 4 5: truth pos F F T T T; scores -2, 0 (wrong), 1, 3, 0 (wrong) -> 3/5
    assert m["Non0_acc_2"] == pytest.approx(0.6)
    # neg TP1 FP0 FN1 -> 2/3 (2 true); pos TP2 FP0 FN1 -> 4/5 (3 true); neutral no support -> 56/75
    assert m["Non0_F1"] == pytest.approx(56 / 75)


def test_seven_class_scores_compare_best_negative_and_best_positive() -> None:
    y = [-1.0, 2.0]
    # row 0: neutral wins, best negative (0.9) beats best positive (0.5) -> negative (right)
    # row 1: neutral wins, best positive (0.8) beats best negative (0.1) -> positive (right)
    s = np.array([[0.1, 0.2, 0.9, 2.0, 0.5, 0.1, 0.0], [0.1, 0.0, 0.0, 2.0, 0.0, 0.8, 0.3]])
    m = emotion_metrics_from_classes(s, y, num_classes=7)
    assert m["Non0_acc_2_polar"] == pytest.approx(1.0)
    assert m["Non0_acc_2"] == pytest.approx(0.0)  # reference: the argmax (neutral) is wrong
    assert m["Acc_7"] == pytest.approx(0.0)  # both predicted class 3


def test_three_class_reference_non0_has0_hand_made() -> None:
    """CIDer's reference evaluation: Non0 = 3-way argmax on non-neutral samples, Has0 =
    argmax of the negative and positive columns; the earlier variants differ on this example."""
    y = [-1.0, -0.6, 0.0, 0.8, 1.4, 0.0, -2.0]
    s = np.array([[2, 1, 0],   # neg; polar neg          truth neg
                  [1, 3, 2],   # NEUTRAL; polar pos      truth neg
                  [3, 1, 2],   # neg; polar neg          truth neutral (non-negative)
                  [0, 1, 2],   # pos; polar pos          truth pos
                  [2, 3, 1],   # NEUTRAL; polar neg      truth pos
                  [0, 2, 1],   # neutral; polar pos      truth neutral
                  [1, 0, 3]],  # pos; polar pos          truth neg
                 dtype=float)
    m = emotion_metrics_from_classes(s, y, num_classes=3)
    # Non0 keeps 0 1 3 4 6: truth - - + + -, argmax sign - 0 + 0 + -> right at 0 and 3
    assert m["Non0_acc_2"] == pytest.approx(2 / 5)
    # neg: TP1 FP0 FN2 -> P 1, R 1/3, F1 1/2 (3 true); pos: TP1 FP1 FN1 -> 1/2 (2 true) -> 1/2
    assert m["Non0_F1"] == pytest.approx(0.5)
    # Has0: truth >= 0 F F T T T T F; positive column > negative column F T F T F T T -> 3/7
    assert m["Has0_acc_2"] == pytest.approx(3 / 7)
    # non-neg: TP2 FP2 FN2 -> 1/2 (4 true); neg: TP1 FP2 FN2 -> 1/3 (3 true) -> (2 + 1) / 7
    assert m["Has0_F1"] == pytest.approx(3 / 7)
    # earlier variants: polar Non0 F T T F T vs truth F F T T F -> 2/5, F1 2/5
    assert m["Non0_acc_2_polar"] == pytest.approx(2 / 5)
    assert m["Non0_F1_polar"] == pytest.approx(2 / 5)
    # argmax-class Has0: class >= neutral F T F T T T T vs truth F F T T T T F -> 4/7
    assert m["Has0_acc_2_argmax"] == pytest.approx(4 / 7)


def test_class_input_validation() -> None:
    with pytest.raises(ValueError):
        emotion_metrics_from_classes([0, 3], [0.0, 1.0], num_classes=3)
    with pytest.raises(ValueError):
        emotion_metrics_from_classes(np.zeros((2, 7)), [0.0, 1.0], num_classes=3)
    with pytest.raises(ValueError):
        emotion_metrics_from_classes([0, 1], [0.0, 1.0], num_classes=5)
    assert HIGHER_IS_BETTER["MAE"] is False and HIGHER_IS_BETTER["Non0_F1"] is True


def test_weighted_f1_gives_sklearns_numbers() -> None:
    # sklearn's f1_score was called per bootstrap resample and took most of an emotion study's evaluation
    # (about 3 minutes of 3.5 for studies/mosi_rmfm.yaml at one epoch); the numpy version must match it
    from sklearn.metrics import f1_score

    from robustmm.metrics.emotion import weighted_f1

    rng = np.random.default_rng(0)
    cases = [(rng.integers(0, k, n), rng.integers(0, j, n)) for n, k, j in ((50, 2, 2), (200, 3, 3), (30, 3, 1),
                                                                           (40, 1, 3), (7, 7, 7))]
    cases += [(rng.random(60) > 0.5, rng.random(60) > 0.3), (np.round(rng.normal(size=80)), np.zeros(80)),
              (np.array([1]), np.array([-1]))]
    for truth, pred in cases:
        assert weighted_f1(truth, pred) == f1_score(truth, pred, average="weighted", zero_division=0)
