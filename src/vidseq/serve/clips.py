"""An uploaded file made ready for the model: checked by FFmpeg's demuxer (not by its name), its clips read as the
run reads them for evaluation, with the sampled frames' indices, times and small JPEG thumbnails for the page."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidseq.errors import TruncatedVideoError, VideoError
from vidseq.evaluate import clip_indices, clip_tfm_for
from vidseq.io import VideoInfo, probe
from vidseq.runs import Run
from vidseq.serve.upload import UploadError

THUMB_HEIGHT = 72


@dataclass
class Prepared:
    """The views of an upload's clips, (clips x crops, T, C, S, S) uint8, and what the page shows of them."""

    views: torch.Tensor
    info: VideoInfo
    frames: list[dict] = field(default_factory=list)  # {"clip", "index", "time", "thumbnail"} per sampled frame


def check_video(path: Path) -> VideoInfo:
    """`path` probed by FFmpeg; 415 for what is not a video (text, images, archives, anything it cannot open)."""
    try:
        info = probe(path)
    except VideoError as e:
        raise UploadError(415, f"{e.reason}; upload a video file") from None
    if info.is_still_or_text:
        raise UploadError(415, f"not a video (FFmpeg reads it as '{info.container}', a still image or text); "
                          "upload a video file")
    return info


def thumbnail(frame: np.ndarray, height: int = THUMB_HEIGHT) -> str:
    """A frame (H, W, 3) uint8 as a small JPEG data URL."""
    from PIL import Image

    img = Image.fromarray(frame)
    img.thumbnail((max(1, round(height * img.width / img.height)), height))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def prepare(run: Run, path: Path, *, clips: int = 1, thumbs: bool = True) -> Prepared:
    """Check `path` and read its `clips` clips (spread over the video) through the run's validation transform;
    415 for a non-video, 422 for a video with no decodable frames."""
    info = check_video(path)
    tfm = clip_tfm_for(run.config)  # one per request: its frame-count memo dies with it
    try:
        try:
            picks = clip_indices(tfm, path, clips)
            frames = [tfm.read(path, idx) for idx in picks]
        except TruncatedVideoError:  # fewer frames than the container says: count what decodes, sample again
            tfm.frame_counts[str(path)] = tfm.source.exact_frames(path)
            picks = clip_indices(tfm, path, clips)
            frames = [tfm.read(path, idx) for idx in picks]
    except (VideoError, ValueError) as e:  # ValueError: the sampler's "the video has no frames"
        raise UploadError(422, f"the video cannot be decoded ({getattr(e, 'reason', None) or e}); the file may be "
                          "truncated or damaged") from None
    views = torch.cat([tfm.views(f, crops=1) for f in frames]).cpu()
    out = Prepared(views, info)
    for j, (idx, clip) in enumerate(zip(picks, frames)):
        clip = clip.cpu().numpy() if isinstance(clip, torch.Tensor) else np.asarray(clip)
        for i, frame in zip(idx, clip):
            out.frames.append({"clip": j, "index": int(i), "time": round(float(i) / info.fps, 3) if info.fps else None,
                               "thumbnail": thumbnail(frame) if thumbs else None})
    return out
