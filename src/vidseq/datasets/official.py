"""Items matched to an official split by (class, file stem), through a compact index: a 64-bit hash of each
item's key with a few bytes of side and label (about 45 bytes an item while matching, 25 after), so
`load_items` and `vidseq info` match split lists of any length to a tree without an object per item or per list
entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidseq.datasets.items import Missing, _stem
from vidseq.datasets.splitlists import SplitLists, split_classes, split_entries

#: An item's side in `OfficialMatch.side`: in no list of the split, or listed for training, testing or neither.
UNLISTED, TRAIN, TEST, UNUSED = 0, 1, 2, 3
_SIDES = {"train": TRAIN, "test": TEST, "unused": UNUSED}
_CHUNK = 256


def item_key(label: str, path: str | Path) -> int:
    """The key an item is matched by: its class and file stem, case-insensitively, as a 64-bit hash (a collision
    among a million items has a chance near 10^-7)."""
    return hash((label.lower(), _stem(path).lower()))


@dataclass
class OfficialMatch:
    """Which items split `number` of `lists` names, and how.

    ``side[i]`` is UNLISTED, TRAIN, TEST or UNUSED for item i; ``label[i]`` indexes `labels`, the list's spelling
    of item i's class. Items sharing a key with an earlier one (a .avi beside a .mp4 of one name) stay unlisted
    and are counted in `duplicates`. `missing` counts listed (train/test) entries with no item
    and names the first `keep` of them.
    """

    side: np.ndarray
    label: np.ndarray
    labels: list[str]
    classes: list[str]  # the split's classes that have items, in the official order
    number: int
    duplicates: int = 0
    missing: Missing = field(default_factory=Missing)
    absent: list[str] = field(default_factory=list)  # the split's classes with no items here

    @property
    def chosen(self) -> np.ndarray:
        """Indices (ascending) of the items on the training or the test side."""
        return np.flatnonzero((self.side == TRAIN) | (self.side == TEST))

    @property
    def unlisted(self) -> int:
        return int(np.count_nonzero(self.side == UNLISTED)) - self.duplicates

    def warnings(self) -> list[str]:
        if not len(self.chosen):
            return []
        out = []
        if self.absent:
            out.append(f"{len(self.absent)} class(es) of the split lists have no items here and are left out "
                       f"({', '.join(self.absent[:5])}{', ...' if len(self.absent) > 5 else ''})")
        if self.unlisted:
            out.append(f"{self.unlisted} item(s) on disk are in no list of split {self.number} and are left out")
        if self.duplicates:
            out.append(f"{self.duplicates} item(s) share a class and name with another (e.g. .avi and .mp4); only "
                       "the first is used")
        return out


def match_official(keys: np.ndarray, lists: SplitLists, number: int, *, keep: int | None = None) -> OfficialMatch:
    """Match items, given by their `item_key` in an int64 array, to split `number` of `lists` (an entry listed
    twice takes its last side). `keep`: how many missing entries to name (None: all)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(len(keys), bool)
    first[1:] = ordered[1:] != ordered[:-1]
    unique, owner = ordered[first], order[first]  # each key once, with the first item that has it
    duplicates = int(len(keys) - first.sum())
    del order, ordered, first
    side = np.zeros(len(keys), np.int8)
    label = np.full(len(keys), -1, np.int32)
    labels: dict[str, int] = {}
    named: set[str] = set()  # every class an entry names
    match = OfficialMatch(side, label, [], [], number, duplicates=duplicates, missing=Missing(keep))
    classes = split_classes(lists, number)
    for chunk in _chunks(split_entries(lists, number, classes)):
        wanted = np.fromiter((hash(e.key) for e in chunk), np.int64, len(chunk))
        at = np.minimum(np.searchsorted(unique, wanted), max(len(unique) - 1, 0))
        found = unique[at] == wanted if len(unique) else np.zeros(len(chunk), bool)
        named.update(e.label for e in chunk)
        for e, j, ok in zip(chunk, owner[at] if len(unique) else at, found):
            if ok:
                side[j] = _SIDES[e.side]
                label[j] = labels.setdefault(e.label, len(labels))
            elif e.side != "unused":
                match.missing.add(f"{e.label}/{e.name}")
    match.labels = list(labels)
    present = {match.labels[i] for i in np.unique(label[match.chosen])}
    classes = classes or sorted(named)
    match.classes = [c for c in classes if c in present]
    match.absent = [c for c in classes if c not in present]
    return match


def _chunks(entries: Iterable) -> Iterable[list]:
    chunk = []
    for e in entries:
        chunk.append(e)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
