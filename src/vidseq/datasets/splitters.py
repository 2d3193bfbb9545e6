"""Splitters that do not leak: whole groups to validation, or single items stratified by class."""

from __future__ import annotations

import random
from collections.abc import Sequence

from vidseq.datasets.items import Item, group_of, parent_label


class GroupSplitter:
    """Split whole groups into validation: a fastai splitter, ``GroupSplitter(0.2, seed=0)(items)``.

    Items are paths (group from :func:`group_of`, class from :func:`parent_label`) or :class:`Item`.
    In each class, ``round(valid_pct * groups)`` of its groups go to validation (at least one and never
    all of them when the class has two or more); items without a group count as a group of their own.
    Deterministic for a given seed. Returns (train_idxs, valid_idxs).
    """

    def __init__(self, valid_pct: float = 0.2, seed: int = 0):
        if not 0 <= valid_pct <= 1:
            raise ValueError(f"valid_pct must be between 0 and 1, got {valid_pct}")
        self.valid_pct, self.seed = valid_pct, seed

    def _group(self, item, i: int) -> str | None:
        return item.group if isinstance(item, Item) else group_of(item)

    def __call__(self, items: Sequence) -> tuple[list[int], list[int]]:
        keys, labels = [], []
        for i, it in enumerate(items):
            g = self._group(it, i)
            keys.append(g if g is not None else f"\0item{i}")
            labels.append(it.label if isinstance(it, Item) else parent_label(it))
        return split_groups(keys, labels, valid_pct=self.valid_pct, seed=self.seed)


class StratifiedSplitter(GroupSplitter):
    """Random split of single items, stratified by class (``valid_pct`` of each class to validation)."""

    def _group(self, item, i: int) -> str | None:
        return None


def split_groups(groups: Sequence[str], labels: Sequence[str], *, valid_pct: float = 0.2,
                 seed: int = 0) -> tuple[list[int], list[int]]:
    """(train_idxs, valid_idxs) that keep each group on one side, stratified by the group's class."""
    group_label: dict[str, str] = {}
    for g, lab in zip(groups, labels):
        group_label.setdefault(g, lab)
    by_label: dict[str, list[str]] = {}
    for g, lab in group_label.items():
        by_label.setdefault(lab, []).append(g)
    rng = random.Random(seed)
    chosen: set[str] = set()
    for lab in sorted(by_label):
        gs = sorted(by_label[lab])
        rng.shuffle(gs)
        k = round(valid_pct * len(gs))
        if valid_pct > 0 and len(gs) >= 2:
            k = max(k, 1)
        if valid_pct < 1:
            k = min(k, len(gs) - 1)
        chosen.update(gs[:k])
    valid = [i for i, g in enumerate(groups) if g in chosen]
    train = [i for i, g in enumerate(groups) if g not in chosen]
    return train, valid
