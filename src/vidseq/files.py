"""Writing outputs safely: folders that fail in one line, files that are never seen half-written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vidseq.errors import VidseqError


def output_folder(path: str | Path, *, what: str = "output folder") -> Path:
    """Create folder `path` (and its parents) for a command's output, or fail with one line when it cannot be
    one: an existing file at that path or above it, no permission."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VidseqError(path=path, reason=f"is a file, not a folder; give a folder path for the {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidseqError(path=path, reason=f"cannot create the {what} ({e.strerror or e})") from None
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A hidden temporary path beside `path` to write to; renamed over `path` when the block ends without an
    error, removed when it raises. A reader (or a run killed half-way) never sees `path` half-written.

    >>> with atomic_path("model.safetensors") as tmp:          # doctest: +SKIP
    ...     save_file(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a failed write() names no file: name the one being written
            e.filename = str(path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
