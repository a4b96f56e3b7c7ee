"""The segment diagnostics on inputs whose answers are known."""

import numpy as np
import pytest

from mixreorg_mmseg.apis.segment_diagnostics import (
    confusion_miou,
    image_measures,
    summarize,
)

# a 4x4 image: background (0) on the left half, class 1 top right, class 2
# bottom right; 255 ignored in one corner
LABEL = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [0, 0, 2, 2],
        [255, 0, 2, 2],
    ]
)


def test_pure_segments_recognised_right():
    final = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])
    stage1 = np.arange(16).reshape(4, 4) % 5
    # prompted classes 1 and 2 (background not prompted)
    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    m = image_measures(
        [stage1, final], LABEL, np.array([0.1, 0.3]), probs, True
    )
    assert m['image_hit']  # class 2 is present
    assert m['segments'] == 3 and m['purity'] == [1.0, 1.0, 1.0]
    assert m['fg_hit'] == [True, True]
    assert m['bg_score'] == [0.6] and m['fg_score'] == [0.9, 0.8]
    # the ignored pixel does not count: stage 1 uses 5 groups elsewhere
    assert m['groups_used'] == [5, 3]


def test_collapsed_grouping_and_wrong_classes():
    one = np.zeros((4, 4), dtype=int)
    probs = np.array([[0.3, 0.7]])
    m = image_measures([one, one], LABEL, np.array([0.0, 0.0]), probs, True)
    # argmax of equal scores is class 1: present
    assert m['image_hit']
    assert m['segments'] == 1 and m['groups_used'] == [1, 1]
    # 7 background pixels of 15 valid ones: background is the majority
    assert m['purity'] == [pytest.approx(7 / 15)]
    assert m['bg_score'] == [0.7] and m['fg_hit'] == []

    summary = summarize([m, m])
    assert summary['num_images'] == 2
    assert summary['segments_per_image'] == 1.0
    assert summary['groups_used'] == [1.0, 1.0]
    assert np.isnan(summary['fg_segment_acc'])


def test_without_background_every_class_is_prompted():
    final = np.array([[0, 0, 1, 1]] * 4)
    label = np.array([[0, 0, 1, 1]] * 4)
    probs = np.array([[0.8, 0.2], [0.7, 0.3]])
    m = image_measures(
        [final, final], label, np.array([1.0, 0.0]), probs, False
    )
    assert m['fg_hit'] == [True, False] and m['bg_score'] == []
    assert m['image_hit']


def test_grouping_bound_names_each_segment_by_its_majority():
    final = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2]])
    probs = np.full((3, 2), 0.5)
    pure = image_measures(
        [final], LABEL, np.zeros(2), probs, True, num_classes=3
    )
    # every valid pixel lands on its own class: the ignored one is left out
    np.testing.assert_array_equal(
        pure['bound_confusion'], np.diag([7, 4, 4])
    )
    assert summarize([pure, pure])['grouping_bound'] == pytest.approx(100)

    one = np.zeros((4, 4), dtype=int)
    collapsed = image_measures(
        [one], LABEL, np.zeros(2), probs[:1], True, num_classes=3
    )
    # one segment, majority background: IoU 7/15 for background, 0 for the
    # two objects, whose 8 pixels all go to background
    assert collapsed['bound_confusion'][1:, 0].tolist() == [4, 4]
    summary = summarize([collapsed])
    assert summary['grouping_bound'] == pytest.approx(100 * (7 / 15) / 3)
    # a mix with results that carry no confusion gives no bound
    without = image_measures([one], LABEL, np.zeros(2), probs[:1], True)
    assert np.isnan(summarize([collapsed, without])['grouping_bound'])


def test_confusion_miou_leaves_out_classes_that_never_occur():
    # class 2 is neither labelled nor predicted: its IoU is not a zero
    confusion = np.array([[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    assert confusion_miou(confusion) == pytest.approx(100 * 3 / 5)
    assert np.isnan(confusion_miou(np.zeros((2, 2), dtype=int)))


def test_a_label_outside_the_classes_is_an_error():
    label = LABEL.copy()
    label[0, 0] = 7
    with pytest.raises(ValueError, match='label value 7 outside the 3'):
        image_measures(
            [np.zeros((4, 4), dtype=int)],
            label,
            np.zeros(2),
            np.full((1, 2), 0.5),
            True,
            num_classes=3,
        )
