"""Videos -> folders of JPEG frames (or re-encoded videos, `transcode_dataset`): parallel, atomic per video,
resumable, with a manifest.

Reliability:

* Atomic per video: frames go to ``.<stem>.tmp-<pid>/`` beside the final folder (hidden, so that nothing
  that walks DEST takes it for a frame folder), renamed into place when the video is finished. A frame
  folder exists only when complete, so a rerun skips the folders that exist, removes what killed runs
  left, and redoes everything else (``overwrite=True`` redoes all).
* A file that cannot be read (empty, not a video, corrupt) is recorded with its reason and skipped. A
  truncated file keeps the frames decoded before the damage and is marked ``partial``.
* Each worker is a process of its own (`vidseq.extract.pool`): one that dies (a decoder crash) or runs past
  the per-video timeout is recorded as a failure and replaced, and the run goes on.

Records (`vidseq.extract.records`): ``DEST/manifest.csv`` (one row per video) and ``DEST/failures.jsonl``,
or ``manifest-shard-i-of-n.csv`` and ``failures-shard-i-of-n.jsonl`` for a shard; :func:`read_manifest`
reads whichever are there.

>>> summary = extract_dataset("UCF101", "UCF101-frames", size=128)   # doctest: +SKIP
>>> summary.done, summary.failed, summary.frames                       # doctest: +SKIP
"""

from vidseq.extract.records import ExtractSummary, VideoRecord, output_names, read_manifest
from vidseq.extract.run import DEFAULT_TIMEOUT, SPLIT_FOLDERS, extract_dataset, find_videos, in_shard, parse_shard
from vidseq.extract.transcode import transcode_dataset, transcode_video
from vidseq.extract.video import extract_video
from vidseq.io import frame_files

__all__ = ["DEFAULT_TIMEOUT", "SPLIT_FOLDERS", "ExtractSummary",
           "VideoRecord", "extract_dataset", "extract_video", "find_videos", "frame_files", "in_shard",
           "output_names", "parse_shard", "read_manifest", "transcode_dataset", "transcode_video"]
