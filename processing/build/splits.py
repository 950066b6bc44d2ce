"""Leak-free split assignment of clips: grouped by patient, stratified by class, deterministic for a seed.

Works on plain lists (one group key and one class label per clip) so it is testable without a catalogue; the builder
passes ``Video.group`` (patient, or the shared key the errata give to clips known to be the same) and the task label.
Every clip of a group lands in the same split, so no patient and no clip is in two splits.

Schemes:
- ``"default"``: ``train`` / ``validation`` / ``test`` with fractions 0.70 / 0.15 / 0.15 of the clips.
- ``"none"``: one split, ``train``, holding every clip (as the release ships).
- ``"kfold"``: ``num_folds`` folds (5 by default, the POCOVID practice). With ``fold=None`` the split names are
  ``fold0`` .. ``fold{k-1}`` (train on all but one, test on the held-out one); with ``fold=i`` the splits are
  ``train`` (every other fold) and ``test`` (fold ``i``).

This module must not read files, know ``datasets`` or look at pixels.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from processing.errors import CovidxError, check_choice

SCHEMES = ("default", "none", "kfold")
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.70, "validation": 0.15, "test": 0.15}
DEFAULT_NUM_FOLDS = 5


def split_names(scheme: str, num_folds: int = DEFAULT_NUM_FOLDS, fold: int | None = None) -> tuple[str, ...]:
    """The split names a scheme produces, in order."""
    check_choice("split scheme", scheme, SCHEMES)
    if scheme == "none":
        return ("train",)
    if scheme == "default":
        return tuple(DEFAULT_FRACTIONS)
    _check_folds(num_folds, fold)
    if fold is None:
        return tuple(f"fold{i}" for i in range(num_folds))
    return ("train", "test")


def _check_folds(num_folds: int, fold: int | None) -> None:
    if not isinstance(num_folds, int) or num_folds < 2:
        raise CovidxError(f"invalid num_folds {num_folds!r}; valid values: an integer >= 2")
    if fold is not None:
        check_choice("fold", fold, range(num_folds))


def _greedy_assign(
    groups: Sequence[str], labels: Sequence[str], weights: dict[str, float], seed: int
) -> dict[str, str]:
    """Assign each group to a bin so that every bin's class counts come close to its weight times the class totals.

    Groups are visited largest first (ties in a seeded random order); each goes to the bin whose squared distance to
    its per-class targets shrinks most. Deterministic for a seed.
    """
    classes = sorted(set(labels))
    per_group: dict[str, Counter[str]] = {}
    for group, label in zip(groups, labels, strict=True):
        per_group.setdefault(group, Counter())[label] += 1
    totals = Counter(labels)
    total_weight = sum(weights.values())
    targets = {b: {c: totals[c] * w / total_weight for c in classes} for b, w in weights.items()}
    counts = {b: dict.fromkeys(classes, 0) for b in weights}

    order = sorted(per_group)
    random.Random(seed).shuffle(order)
    # Large groups first: placing them late would overshoot a bin; rarer classes first among equals.
    order.sort(key=lambda g: (-sum(per_group[g].values()), min(totals[c] for c in per_group[g])))

    assignment: dict[str, str] = {}
    for group in order:
        members = per_group[group]

        def gain(b: str, members: Counter[str] = members) -> float:
            # Reduction of squared error to the targets if the group joins bin b (higher is better).
            return sum(
                (targets[b][c] - counts[b][c]) ** 2 - (targets[b][c] - counts[b][c] - n) ** 2
                for c, n in members.items()
            )

        best = max(weights, key=lambda b: (gain(b), weights[b]))
        assignment[group] = best
        for c, n in members.items():
            counts[best][c] += n
    return assignment


def assign_splits(
    groups: Sequence[str],
    labels: Sequence[str],
    *,
    scheme: str = "default",
    seed: int = 0,
    num_folds: int = DEFAULT_NUM_FOLDS,
    fold: int | None = None,
) -> list[str]:
    """Return the split name of each clip, in input order.

    ``groups[i]`` is clip i's group key (clips sharing a key always share a split); ``labels[i]`` its class, used to
    stratify. Raises :class:`CovidxError` on mismatched lengths and an :class:`InvalidChoiceError` on a bad scheme
    or fold.
    """
    check_choice("split scheme", scheme, SCHEMES)
    if len(groups) != len(labels):
        raise CovidxError(f"assign_splits: {len(groups)} groups but {len(labels)} labels")
    names = split_names(scheme, num_folds, fold)
    if scheme == "none":
        return ["train"] * len(groups)
    if scheme == "default":
        assignment = _greedy_assign(groups, labels, DEFAULT_FRACTIONS, seed)
        return [assignment[g] for g in groups]
    fold_names = [f"fold{i}" for i in range(num_folds)]
    assignment = _greedy_assign(groups, labels, dict.fromkeys(fold_names, 1.0), seed)
    if fold is None:
        return [assignment[g] for g in groups]
    held_out = fold_names[fold]
    assert names == ("train", "test")
    return ["test" if assignment[g] == held_out else "train" for g in groups]
