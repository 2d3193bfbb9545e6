"""Writing outputs safely: folders that fail in one line, text files that are never seen half-written."""

from __future__ import annotations

import os
from pathlib import Path

from vidseq.errors import VidseqError


def output_folder(path: str | Path, *, what: str = "output folder") -> Path:
    """Create folder `path` (and its parents) for a command's output, or fail with one line when it cannot be
    one: an existing file at that path or above it, no permission."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VidseqError(f"{path}: is a file, not a folder; give a folder path for the {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidseqError(f"{path}: cannot create the {what} ({e.strerror or e})") from None
    return path


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a hidden temporary file in the same folder, renamed over `path`, so a
    reader (or a run killed half-way) never sees it half-written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)
