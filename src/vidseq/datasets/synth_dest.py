"""Where a synth dataset goes: a new or empty folder, or the same dataset again (a finished or interrupted run of
the same settings, which the rerun completes); anything else is refused in one line unless `overwrite`, which
removes the old dataset first.

Each kind of synth dataset (trimmed, multi-label, long) records its settings in ``DEST/synth.json``, written last.
A folder without it holds an interrupted run when every file in it is one the asked dataset writes too (the rerun
replaces each of them); hidden files (an encoder's temporary, ``.DS_Store``) are not counted.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidseq.errors import DatasetError
from vidseq.files import atomic_write_text, output_folder

MARK = "synth.json"
#: what a synth dataset of any kind is made of: what `overwrite` removes (other files of DEST stay)
LAYOUT = ("videos", "ucfTrainTestlist", "long", "segments.csv", "labels.csv", MARK)


def synth_folder(dest: str | Path, settings: dict[str, Any], expected: Iterable[str], *,
                 overwrite: bool = False) -> Path:
    """Folder `dest`, ready for the synth dataset `settings` (its ``kind`` included) that writes the files
    `expected` (paths relative to `dest`); a DatasetError naming `dest` and what differs when it holds something
    else, unless `overwrite`."""
    root = output_folder(dest, what="dataset")
    if overwrite:
        for name in LAYOUT:
            path = root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        return root
    problem = _conflict(root, _plain(settings), set(expected))
    if problem:
        raise DatasetError(path=root, reason=problem, params={"overwrite": True})
    return root


def write_mark(root: Path, settings: dict[str, Any]) -> None:
    """``synth.json``: the settings of the finished dataset (written last)."""
    atomic_write_text(root / MARK, json.dumps(_plain(settings), indent=2) + "\n")


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` as JSON reads them back (tuples as lists), so a finished dataset's mark compares equal."""
    return json.loads(json.dumps(settings))


def _conflict(root: Path, settings: dict[str, Any], expected: set[str]) -> str | None:
    """Why `root` cannot take the dataset `settings` (and what to do), or None when it is empty or holds this very
    dataset, finished or not."""
    mark = root / MARK
    if mark.is_file():
        try:
            old = json.loads(mark.read_text())
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            return f"holds a {MARK} that vidseq cannot read; give another folder, or {{overwrite}} to replace it"
        old.setdefault("kind", "trimmed")  # written before synth.json named its kind
        if old == settings:
            return None
        return f"{_differences(old, settings)}; give another folder, or {{overwrite}} to replace it"
    for path in _files(root):
        rel = path.relative_to(root).as_posix()
        if rel not in expected:
            return (f"is not empty and holds no vidseq synth dataset of these settings (e.g. {rel}); give a new or "
                    "empty folder, or {overwrite} to write it there (a synth dataset's folders and files there are "
                    "replaced, others stay)")
    return None


def _files(root: Path):
    """The files under `root`, hidden ones (and hidden folders) left out."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        yield from (Path(folder) / f for f in files if not f.startswith("."))


def _differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``holds a synth dataset of other settings (there: classes=4 groups=12; asked: classes=2 groups=8)``."""
    a, b = _flat(old), _flat(new)
    if a.get("kind") != b.get("kind"):
        return f"holds a {a.get('kind')} synth dataset, not a {b.get('kind')} one"
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)]
    return (f"holds a synth dataset of other settings (there: {' '.join(f'{k}={a.get(k)}' for k in keys)}; "
            f"asked: {' '.join(f'{k}={b.get(k)}' for k in keys)})")


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v) if isinstance(v, dict) else {k: v})
    return out
