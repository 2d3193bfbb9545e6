"""Decoding with torchcodec (PyTorch's decoder), on the CPU or on an NVIDIA GPU (NVDEC): the option for machines
that have a GPU to spare for decoding (``vidseq train --decode-device cuda``). On the CPU it is no faster than
vidseq's own seeking reads (BENCHMARKS.md), so PyAV stays the default; torchcodec is optional
(``pip install 'vidseq[decode]'``) and needs FFmpeg's shared libraries (Debian/Ubuntu: ``apt-get install ffmpeg``).

>>> frames = read_frames_torchcodec("v_Jump_g01_c01.avi", [0, 8, 16], device="cuda")   # doctest: +SKIP
>>> frames.shape, frames.device                     # (torch.Size([3, 240, 320, 3]), device(type='cuda', index=0))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import torch

from vidseq.errors import TruncatedVideoError, VideoError, VidseqError

INSTALL = ("decoding with torchcodec needs torchcodec and FFmpeg's libraries: pip install 'vidseq[decode]' "
           "(and apt-get install ffmpeg on Debian/Ubuntu)")


@functools.cache
def torchcodec_problem() -> str | None:
    """Why torchcodec cannot decode here (not installed, FFmpeg's libraries missing), or None."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except (ImportError, OSError, RuntimeError) as e:
        return f"{INSTALL} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    return None


def check_decode_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device torchcodec can decode on here, or one line saying what is missing."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise VidseqError(f"{{decode_device}} must be cpu or cuda, got {device!r} ({e})",
                          params={"decode_device": str(device)}) from None
    if device.type not in ("cpu", "cuda"):
        raise VidseqError(f"{{decode_device}} must be cpu or cuda, got {device}", params={"decode_device": str(device)})
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VidseqError("{decode_device} needs a CUDA GPU, and torch sees none here; decode on the CPU instead",
                          params={"decode_device": "cuda"})
    problem = torchcodec_problem()
    if problem:
        raise VidseqError(problem)
    return device


def read_frames_torchcodec(path: str | Path, indices: Sequence[int], *, device: str | torch.device = "cpu",
                           threads: int = 1) -> torch.Tensor:
    """Frames `indices` of video `path` as a (T, H, W, 3) uint8 tensor on `device`, decoded by torchcodec (exact
    seek mode: frame-exact indices). A file that ends before a wanted frame raises `TruncatedVideoError`."""
    from torchcodec.decoders import VideoDecoder

    path = Path(path)
    wanted = [int(i) for i in indices]
    try:
        decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, device=device,
                               seek_mode="exact")
    except (RuntimeError, ValueError) as e:
        raise VideoError(path=path, reason=f"torchcodec cannot open it ({str(e).splitlines()[0]})") from None
    n = len(decoder)
    if wanted and max(wanted) >= n:
        missing = min(i for i in wanted if i >= n)
        raise TruncatedVideoError(path=path, reason=f"frame {missing} asked for, but only {n} frames decode",
                                  wanted=missing, decoded=n)
    try:
        return decoder.get_frames_at(wanted).data
    except (RuntimeError, IndexError) as e:
        raise VideoError(path=path, reason=f"torchcodec cannot decode it ({str(e).splitlines()[0]})") from None
