"""Specification of processing.build.splits: grouped, stratified, deterministic, leak-free."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from processing.build.splits import SCHEMES, assign_splits, split_names
from processing.errors import CovidxError, InvalidChoiceError


def _groups_per_split(groups, splits):
    seen: dict[str, set[str]] = defaultdict(set)
    for g, s in zip(groups, splits, strict=True):
        seen[g].add(s)
    return seen


def _random_inputs(rng: random.Random):
    n_groups = rng.randint(1, 60)
    classes = ["covid", "pneumonia", "normal", "other"][: rng.randint(1, 4)]
    groups, labels = [], []
    for g in range(n_groups):
        for _ in range(rng.choice([1, 1, 1, 2, 3, 7])):
            groups.append(f"p{g}")
            labels.append(rng.choice(classes))
    return groups, labels


@pytest.mark.parametrize("scheme,fold", [("default", None), ("none", None), ("kfold", None), ("kfold", 2)])
def test_no_group_is_in_two_splits_on_random_inputs(scheme, fold):
    rng = random.Random(1234)
    for trial in range(200):
        groups, labels = _random_inputs(rng)
        splits = assign_splits(groups, labels, scheme=scheme, seed=trial, fold=fold)
        assert len(splits) == len(groups)
        assert set(splits) <= set(split_names(scheme, fold=fold))
        assert all(len(s) == 1 for s in _groups_per_split(groups, splits).values())


def test_default_split_is_deterministic_for_a_seed_and_changes_with_it():
    groups, labels = _random_inputs(random.Random(7))
    groups, labels = [f"p{i}" for i in range(100)], [["covid", "normal"][i % 2] for i in range(100)]
    a = assign_splits(groups, labels, seed=1)
    assert a == assign_splits(list(groups), list(labels), seed=1)
    assert a != assign_splits(groups, labels, seed=2)


def test_default_split_sizes_and_class_balance_follow_70_15_15():
    # 200 single-clip patients, 3 classes of 100 / 60 / 40 clips.
    labels = ["covid"] * 100 + ["pneumonia"] * 60 + ["normal"] * 40
    groups = [f"p{i}" for i in range(len(labels))]
    splits = assign_splits(groups, labels, seed=0)
    per = Counter(zip(splits, labels, strict=True))
    for cls, total in Counter(labels).items():
        assert per[("train", cls)] == pytest.approx(0.70 * total, abs=1)
        assert per[("validation", cls)] == pytest.approx(0.15 * total, abs=1)
        assert per[("test", cls)] == pytest.approx(0.15 * total, abs=1)


def test_a_big_patient_stays_whole():
    groups = ["big"] * 10 + [f"p{i}" for i in range(30)]
    labels = ["covid"] * 40
    splits = assign_splits(groups, labels, seed=3)
    assert len(set(splits[:10])) == 1


def test_none_is_one_train_split():
    assert assign_splits(["a", "b"], ["x", "y"], scheme="none") == ["train", "train"]
    assert split_names("none") == ("train",)


def test_kfold_folds_partition_groups_and_are_balanced():
    labels = ["covid"] * 50 + ["normal"] * 50
    groups = [f"p{i}" for i in range(100)]
    splits = assign_splits(groups, labels, scheme="kfold", num_folds=5, seed=0)
    assert Counter(splits) == {f"fold{i}": 20 for i in range(5)}
    for i in range(5):
        assert Counter(lab for s, lab in zip(splits, labels, strict=True) if s == f"fold{i}") == {"covid": 10, "normal": 10}


def test_kfold_with_a_chosen_fold_is_train_and_test_of_that_fold():
    labels = ["covid"] * 50 + ["normal"] * 50
    groups = [f"p{i // 2}" for i in range(100)]
    folds = assign_splits(groups, labels, scheme="kfold", num_folds=5, seed=4)
    for i in range(5):
        tt = assign_splits(groups, labels, scheme="kfold", num_folds=5, fold=i, seed=4)
        assert [s == "test" for s in tt] == [f == f"fold{i}" for f in folds]
    assert split_names("kfold", 5, 1) == ("train", "test")
    assert split_names("kfold", 3) == ("fold0", "fold1", "fold2")


def test_bad_arguments_name_the_valid_values():
    with pytest.raises(InvalidChoiceError, match="default, none, kfold"):
        assign_splits(["a"], ["x"], scheme="random")
    with pytest.raises(InvalidChoiceError, match="fold 7"):
        assign_splits(["a"], ["x"], scheme="kfold", num_folds=5, fold=7)
    with pytest.raises(CovidxError, match="num_folds"):
        split_names("kfold", 1)
    with pytest.raises(CovidxError, match="2 groups but 1 labels"):
        assign_splits(["a", "b"], ["x"])
    assert SCHEMES == ("default", "none", "kfold")


def test_real_catalogue_default_split_has_no_leak(reference_release, tmp_path):
    catalogue_mod = pytest.importorskip("processing.release.catalogue")
    catalogue = catalogue_mod.load_catalogue("1.5", reference_release, cache_dir=tmp_path)
    for task in catalogue_mod.TASKS:
        videos = catalogue.filter(task=task).videos
        for scheme in SCHEMES:
            splits = assign_splits(
                [v.group for v in videos], [v.task_label(task) for v in videos], scheme=scheme, seed=0
            )
            by_id = {v.id: s for v, s in zip(videos, splits, strict=True)}
            assert len(by_id) == len(videos)  # every clip once
            assert all(len(s) == 1 for s in _groups_per_split([v.group for v in videos], splits).values())
            patients: dict[str, set[str]] = defaultdict(set)
            for v, s in zip(videos, splits, strict=True):
                if v.patient_id:
                    patients[v.patient_id].add(s)
            assert all(len(s) == 1 for s in patients.values())
            # The errata's duplicate clips (NOTES-upstream.md) share a split whenever both are in the task.
            for a, b in (("178_uf_other", "184_uf_pneumonia"), ("29_grepmed_covid", "55_pocusatlas_covid")):
                if a in by_id and b in by_id:
                    assert by_id[a] == by_id[b]
