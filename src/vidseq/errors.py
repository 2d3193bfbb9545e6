"""vidseq's error types: each carries one line meant for a person."""

from __future__ import annotations

from pathlib import Path


class VidseqError(Exception):
    """Base of vidseq's errors. The message is one line that names the file and what to do.

    The command line prints it without a traceback and exits with code 2.
    """


class VideoError(VidseqError):
    """A file that is not a video, has no video stream, or cannot be decoded."""


class DatasetError(VidseqError):
    """A dataset that is missing, empty, malformed or unusable as asked."""


class ArchiveError(VidseqError):
    """An archive that cannot be unpacked (truncated, corrupt, or no tool to read it)."""


class UnsafeArchiveError(ArchiveError):
    """An archive with members that would land outside the destination."""


class ModelError(VidseqError):
    """An unknown model, unusable weights, or a run folder that does not match its weights."""


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
