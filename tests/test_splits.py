"""Subject-level splits: a subject count too small for the split settings is a DataError naming
the count, the settings and the fix (it was sklearn's raw ValueError); stratification is dropped
only where sklearn could not stratify."""

from __future__ import annotations

import numpy as np
import pytest

from robustmm.config.schema import SplitConfig
from robustmm.data.datamodule import subject_splits
from robustmm.errors import DataError


class Subjects:
    """The three methods subject_splits reads: one item per subject, optional class labels."""

    def __init__(self, n: int, labels: list[int] | None = None) -> None:
        self.n, self.labels = n, labels

    def predefined_splits(self):
        return None

    def subject_ids(self) -> list[str]:
        return [f"s{i:03d}" for i in range(self.n)]

    def stratify_labels(self):
        return None if self.labels is None else np.asarray(self.labels)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_subjects_name_the_count_and_the_fractions(n: int) -> None:
    with pytest.raises(DataError) as err:
        subject_splits(Subjects(n), SplitConfig(val_fraction=0.15, test_fraction=0.25), seed=0)
    msg = str(err.value)
    subjects = "1 subject" if n == 1 else f"{n} subjects"
    assert f"the data have {subjects}, too few" in msg
    assert "split.val_fraction=0.15" in msg and "split.test_fraction=0.25" in msg
    assert "at least 3 subjects" in msg


def test_fractions_that_leave_no_training_subject_say_to_lower_them() -> None:
    # 4 subjects: test takes ceil(0.55*4)=3, the one left goes to validation
    with pytest.raises(DataError, match=r"4 subjects.*lower split.val_fraction / split.test_fraction"):
        subject_splits(Subjects(4), SplitConfig(val_fraction=0.4, test_fraction=0.55), seed=0)


def test_sizes_are_counted_the_way_sklearn_rounds() -> None:
    # 20 subjects, test 0.5: 10 left; validation takes ceil(0.9 * 10) = 9 and leaves 1 to train (sklearn's
    # n - ceil(t * n), where floor((1 - t) * n) gave 0 and refused a split sklearn makes)
    splits = subject_splits(Subjects(20), SplitConfig(val_fraction=0.45, test_fraction=0.5), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1, 9, 10)


def test_three_subjects_are_enough_for_the_default_fractions() -> None:
    splits = subject_splits(Subjects(3), SplitConfig(val_fraction=0.15, test_fraction=0.25), seed=0)
    assert sorted(np.concatenate([splits.train, splits.val, splits.test]).tolist()) == [0, 1, 2]
    assert min(len(splits.train), len(splits.val), len(splits.test)) == 1


def test_fewer_subjects_than_folds() -> None:
    with pytest.raises(DataError, match=r"4 subjects, too few for split.folds=5.*at most 4"):
        subject_splits(Subjects(4), SplitConfig(folds=5, fold=0), seed=0)


def test_folds_that_leave_no_training_subject() -> None:
    # 3 subjects, 3 folds: one tests, two are left; val_fraction 0.4 of 2/3 of them takes both
    with pytest.raises(DataError, match=r"3 subjects.*split.folds=3 and split.val_fraction=0.4"):
        subject_splits(Subjects(3), SplitConfig(folds=3, fold=0, val_fraction=0.4), seed=0)


def test_more_classes_than_test_subjects_split_unstratified() -> None:
    # 4 classes of 3 subjects: a 0.25 test split has 3 subjects, fewer than the classes
    labels = [c for c in range(4) for _ in range(3)]
    splits = subject_splits(Subjects(12, labels), SplitConfig(val_fraction=0.15, test_fraction=0.25), seed=0)
    assert sorted(np.concatenate([splits.train, splits.val, splits.test]).tolist()) == list(range(12))


def test_classes_smaller_than_the_folds_split_unstratified() -> None:
    labels = [c for c in range(2) for _ in range(4)]  # 4 per class, 5 folds: no class fills every fold
    splits = subject_splits(Subjects(8, labels), SplitConfig(folds=5, fold=1), seed=0)
    assert sorted(np.concatenate([splits.train, splits.val, splits.test]).tolist()) == list(range(8))


def test_stratified_splits_are_unchanged_where_sklearn_could_stratify() -> None:
    labels = [i % 2 for i in range(40)]
    splits = subject_splits(Subjects(40, labels), SplitConfig(val_fraction=0.15, test_fraction=0.25), seed=3)
    from sklearn.model_selection import train_test_split

    tv, test = train_test_split(np.arange(40), test_size=0.25, stratify=np.asarray(labels), random_state=3)
    assert splits.test.tolist() == sorted(test.tolist())
    assert np.bincount(np.asarray(labels)[splits.test]).tolist() == [5, 5]
