"""vidseq's error types: each carries one line meant for a person."""

from __future__ import annotations


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

