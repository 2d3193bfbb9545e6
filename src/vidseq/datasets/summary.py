"""`summarize`: what ``vidseq info`` reports about a dataset. Where the split is written down (a CSV manifest's
split column, official split lists beside a tree) it is counted while the rows are read, so memory does not grow
with their number: per-class counts, the sides of each group and, for split lists, a compact index of the items on
disk (`vidseq.datasets.official`, about 45 bytes an item). Splits that must see every item to choose (group,
random) go through `load_items`, which holds them all.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidseq.datasets.annotations import is_ssv2
from vidseq.datasets.items import LABEL_SEP, Tally, group_of, walk_tree
from vidseq.datasets.load import (
    _need_two_classes,
    annotation_reader,
    check_sides,
    leak_warnings,
    load_items,
    parse_split,
    resolve_data,
)
from vidseq.datasets.manifest import CsvRows, read_manifest_csv
from vidseq.datasets.official import TEST, item_key, match_official
from vidseq.datasets.splitlists import find_split_lists

#: How many entries with no file a summary names (all are counted).
KEEP_MISSING = 100


def summarize(data: str | Path, *, split: str = "auto", valid_pct: float = 0.2, seed: int = 0) -> dict:
    """`load_items(data, ...).summary()`, counted as it is read where the split allows (see the module)."""
    mode, number = parse_split(split, valid_pct)
    root = resolve_data(data)
    summary = None
    if root.is_file() and mode in ("auto", "csv") and annotation_reader(root) is read_manifest_csv:
        summary = _csv_summary(root)
    elif root.is_dir() and mode in ("auto", "official") and not is_ssv2(root):
        summary = _official_summary(root, mode, number)
    return summary or load_items(root, split=split, valid_pct=valid_pct, seed=seed).summary(keep=KEEP_MISSING)


def _csv_summary(path: Path) -> dict | None:
    """The summary of a CSV manifest with a split column; None without one (its split is then chosen)."""
    rows = CsvRows(path, keep=KEEP_MISSING)
    tally = Tally()
    multi_label = False
    for item, side in rows:
        if side is None:
            return None
        multi_label |= LABEL_SEP in item.label
        tally.add(item.label, item.group, side)
    kind = rows.finish()
    tally.missing = rows.missing
    return _finish(path, tally, "csv", kind=kind, classes=sorted(tally.per_class), multi_label=multi_label)


def _official_summary(root: Path, mode: str, number: int) -> dict | None:
    """The summary of a tree matched to its official split lists; None where there are none, or where
    `load_items` has something to say about the tree (no items, two kinds, one class, a multi-label name)."""
    lists = find_split_lists(root)
    if lists is None:
        return None
    keys, groups = array("q"), array("i")
    group_ids: dict[str, int] = {}
    kinds, labels = [0, 0], set()
    for path, is_frames in walk_tree(root):
        kinds[is_frames] += 1
        labels.add(path.parent.name)
        keys.append(item_key(path.parent.name, path))
        group = group_of(path)
        groups.append(group_ids.setdefault(group, len(group_ids)) if group else -1)
    one_kind = any(kinds) and not all(kinds)
    if not one_kind or len(labels) < 2 or any(LABEL_SEP in c for c in labels):
        return None
    match = match_official(np.frombuffer(keys, np.int64), lists, lists.splits[0] if mode == "auto" else number,
                           keep=KEEP_MISSING)
    if not len(match.chosen):
        return None
    names = list(group_ids)
    tally = Tally()
    for i in match.chosen:
        tally.add(match.labels[match.label[i]], names[groups[i]] if groups[i] >= 0 else None,
                  bool(match.side[i] == TEST))
    tally.missing = match.missing
    return _finish(root, tally, f"official:{match.number}", kind="frames" if kinds[1] else "video",
                   classes=match.classes, multi_label=False, lists=lists.folder, unlisted=match.unlisted,
                   warnings=match.warnings())


def _finish(root: Path, tally: Tally, mode: str, *, classes: list[str], warnings: Sequence[str] = (),
            **fields) -> dict:
    _need_two_classes(root, set(classes))
    check_sides(root, mode, sum(tally.sides), tally.sides[1])
    warnings = [*warnings, *leak_warnings(mode, tally.leaked_groups, len(tally.group_sides)),
                *tally.class_warnings(mode)]
    return tally.summary(root=root, split=mode, classes=classes, warnings=warnings, **fields)


def format_summary(s: dict, *, max_missing: int = 5) -> str:
    """The text that ``vidseq info`` prints for :meth:`ItemSet.summary`."""
    c = s["counts"]
    lines = [f"{s['root']}: {c['total']} {'videos' if s['kind'] == 'video' else 'frame folders'}, "
             f"{len(s['classes'])} classes" + (" (multi-label: counts are items with each label)"
                                               if s.get("multi_label") else ""),
             f"split: {s['split']}" + (f" (lists in {s['lists']})" if s["lists"] else "")
             + f"; train {c['train']}, valid {c['valid']}"]
    width = max(12, *(len(k) for k in s["per_class"]))
    lines.append(f"  {'class':<{width}}  {'train':>6}  {'valid':>6}")
    for cls, n in s["per_class"].items():
        lines.append(f"  {cls:<{width}}  {n['train']:>6}  {n['valid']:>6}")
    lines.append(f"groups: {s['groups']}" + (f" ({s['leaked_groups']} on both sides)" if s["groups"] else
                                              " (no UCF-style _gNN_ names)"))
    if s["missing"]:
        ex = s["missing_entries"][:max_missing]
        lines.append(f"missing: {s['missing']} listed entr{'y has' if s['missing'] == 1 else 'ies have'} no file, "
                     f"e.g. {', '.join(ex)}")
    if s["unlisted"]:
        lines.append(f"unlisted: {s['unlisted']} item(s) on disk in no split list")
    lines += [f"warning: {w}" for w in s["warnings"]]
    return "\n".join(lines)
