"""vidseq's error types: each carries one line meant for a person, and attributes for code.

Callers branch on the class (a `TruncatedVideoError` is a `VideoError` whose file ends early) and read the
attributes (`path`, `reason`, ...), never the text. A message may name a parameter as ``{name}``, given in
`params`: ``str(error)`` shows it as Python (``pretrained=False``); the command line shows it as its flag
(``--no-pretrained``) through `render`.

Problems with the data that vidseq works around (an unreadable item left out, split lists that name no item
here) are not errors: they are `DataWarning`s, raised with `warnings.warn`, so a notebook can silence or turn
them into errors with the standard filters, and the command line shows them as ``vidseq: warning: ...``.

>>> e = ModelError("no weights here: use {pretrained}", params={"pretrained": False})
>>> str(e)
'no weights here: use pretrained=False'
"""

from __future__ import annotations

import errno
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any


def python_name(name: str, value: Any) -> str:
    """A parameter as a Python keyword argument: ``pretrained=False``."""
    return f"{name}={value!r}"


class DataWarning(UserWarning):
    """A problem with the data that vidseq works around: an item left out, a split that leaks, a list unused."""


def warn_data(message: str, *, stacklevel: int = 2) -> None:
    """Warn about the data (a `DataWarning`), attributed to the caller of the function that calls this."""
    warnings.warn(message, DataWarning, stacklevel=stacklevel + 1)


class VidseqError(Exception):
    """Base of vidseq's errors. The message is one line that names the file and what to do.

    `path` is the file or folder concerned (None when none is), `reason` the message without the path in front,
    `params` the parameters the message names (``{name}`` in the text). Other keyword arguments become
    attributes. The command line prints the message without a traceback and exits with code 2.
    """

    def __init__(self, message: str | None = None, *, path: str | Path | None = None, reason: str | None = None,
                 params: dict[str, Any] | None = None, **attrs: Any):
        if message is None:
            message = f"{path}: {reason}" if path is not None else str(reason)
        if reason is None:
            prefix = f"{path}: "
            reason = message[len(prefix):] if path is not None and message.startswith(prefix) else message
        self.template, self.path, self.reason, self.params = message, path, reason, dict(params or {})
        for k, v in attrs.items():
            setattr(self, k, v)
        super().__init__(self.render())

    def render(self, name: Callable[[str, Any], str] = python_name, *, reason: bool = False) -> str:
        """The message (or only its reason) with each named parameter written by `name(param, value)`."""
        text = self.reason if reason else self.template
        if not self.params:
            return text
        pattern = "|".join(re.escape(k) for k in self.params)
        return re.sub(r"\{(" + pattern + r")\}", lambda m: name(m[1], self.params[m[1]]), text)

    def __str__(self) -> str:
        return self.render()


class VideoError(VidseqError):
    """A file that is not a video, has no video stream, or cannot be decoded."""


class TruncatedVideoError(VideoError):
    """A video that decodes fewer frames than asked for: `wanted` (the first frame missing) is past the
    `decoded` frames that came out."""


class DatasetError(VidseqError):
    """A dataset that is missing, empty, malformed or unusable as asked."""


class ArchiveError(VidseqError):
    """An archive that cannot be unpacked (truncated, corrupt, or no tool to read it)."""


class UnsafeArchiveError(ArchiveError):
    """An archive with members that would land outside the destination."""


class ModelError(VidseqError):
    """An unknown model, unusable weights, or a run folder that does not match its weights."""


#: What the system said, for the faults of the place an output goes, and what to do about each.
STORAGE_FAULTS = {
    errno.ENOSPC: ("no space left on the device", "free some space (df -h {folder}) and run the same command "
                   "again: finished work is kept"),
    errno.EDQUOT: ("disk quota exceeded", "free some space and run the same command again: finished work is kept"),
    errno.EROFS: ("read-only filesystem", "give a folder on a writable filesystem"),
    errno.EACCES: ("permission denied", "give a folder you can write to"),
    errno.EPERM: ("operation not permitted", "give a folder you can write to"),
}


def storage_fault(e: OSError) -> str | None:
    """One line for an OSError from the storage itself (full, read-only, not permitted), naming the folder and
    what to do; None for other errors."""
    if e.errno not in STORAGE_FAULTS:
        return None
    what, todo = STORAGE_FAULTS[e.errno]
    target = e.filename2 or e.filename
    if not target:
        return f"{what}; {todo.format(folder='.')}"
    path = Path(os.fsdecode(target))
    name = re.sub(r"^\.(.+)\.tmp-\d+.*$", r"\1", path.name)  # an atomic write's hidden temporary: its final name
    return f"{path.parent}: {what} (writing {name}{_space(e, path.parent)}); {todo.format(folder=path.parent)}"


def vanished(e: OSError) -> str | None:
    """One line for a write into a folder that was removed while vidseq ran (ENOENT, the file's folder gone),
    naming the topmost folder that is gone; None for other errors."""
    if e.errno != errno.ENOENT or not e.filename:
        return None
    folder = Path(os.fsdecode(e.filename)).parent
    if folder.exists():
        return None
    while not folder.parent.exists() and folder.parent != folder:
        folder = folder.parent
    return (f"{folder}: disappeared while vidseq was writing into it; make sure nothing else removes it and run the "
            "same command again")


def note_space(e: OSError, *, needed: int | None = None, written: int | None = None, what: str = "") -> OSError:
    """Tell `storage_fault` how much space a full disk would have taken: `needed` bytes still to write (for `what`,
    e.g. "the 12 videos left"), or where that is unknown, the `written` bytes of the failed file that fitted.
    Kept as attributes of the OSError, which survive pickling (a worker process sends it up whole)."""
    if needed is not None:
        e.needed, e.needed_for = int(needed), what
    if written is not None:
        e.written = int(written)
    return e


def _space(e: OSError, folder: Path) -> str:
    """``; needs about 12.3 MB for ..., 0.1 MB free`` for a full disk, from what `note_space` recorded."""
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
        return ""
    import shutil

    try:
        free = f", {_mb(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = ""
    needed, written = getattr(e, "needed", None), getattr(e, "written", None)
    if needed is not None:
        why = getattr(e, "needed_for", "")
        return f"; needs about {_mb(needed)}" + (f" for {why}" if why else "") + free
    if written is not None:
        return f"; {_mb(written)} of it fitted before the disk filled" + free
    return f"; {free[2:]}" if free else ""


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"
