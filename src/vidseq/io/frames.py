"""The frame-folder format, one rule for every module: which files are frames, in what order, and how they
are read.

A frame folder is ``<Class>/<video>/`` holding images named by their frame number (``0.jpg``, ``12.jpg``,
``frame_0012.png``); `vidseq extract` writes exactly ``0.jpg .. N-1.jpg`` (`frame_files`). Other images
beside them (a cover, "3 copy.jpg") are not frames.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

from vidseq.errors import VideoError
from vidseq.io.video import MAX_PIXELS

#: Image files that count as frames of a frame folder, when named like 12.jpg, frame_0012.jpg, img12.png.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
_FRAME_STEM = re.compile(r"^[A-Za-z_\-]*\d+$")
_NUM = re.compile(r"(\d+)")
_EXTRACTED = re.compile(r"^(\d+)\.jpg$")


def is_frame_name(name: str) -> bool:
    """Whether file `name` is a frame: an image named by its number, with an optional letters prefix."""
    stem, ext = os.path.splitext(name)
    return ext.lower() in IMAGE_EXTENSIONS and bool(_FRAME_STEM.match(stem))


def is_frame_folder(path: str | Path) -> bool:
    """True for a folder that holds image files named by frame number (``0.jpg``, ``frame_0001.png``)."""
    try:
        with os.scandir(path) as it:
            return any(e.is_file() and is_frame_name(e.name) for e in it)
    except OSError:
        return False


def frame_number(path: Path) -> int:
    """The frame number in a file name such as ``12.jpg`` or ``frame_0012.png`` (the last number in it)."""
    nums = _NUM.findall(path.stem)
    return int(nums[-1]) if nums else -1


def list_frames(folder: str | Path) -> list[Path]:
    """The frames of a frame folder, sorted by frame number (10.jpg after 9.jpg): images named by their
    number (`is_frame_name`), so a cover image or a "3 copy.jpg" beside them is not taken for a frame."""
    folder = Path(folder)
    files = [folder / f for f in os.listdir(folder) if is_frame_name(f)]
    return sorted(files, key=lambda p: (frame_number(p), p.name))


@functools.lru_cache(maxsize=65536)
def _listing(folder: str) -> tuple[Path, ...]:
    """`list_frames`, remembered: a training run reads each folder every epoch."""
    return tuple(list_frames(folder))


def decode_image(path: Path, min_side: int | None = None, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, decoded at reduced size when its short side can shrink to
    no less than `min_side` (JPEG DCT scaling: 1/2, 1/4, 1/8). Oversized images are refused."""
    data = path.read_bytes()
    if data[:2] == b"\xff\xd8":
        try:
            h, w, _, _ = simplejpeg.decode_jpeg_header(data)
        except ValueError as e:
            raise VideoError(path=path, reason=f"not a readable JPEG ({e})") from None
        if h * w > max_pixels:
            raise VideoError(path=path, reason=f"image of {w}x{h} exceeds the limit of {max_pixels} pixels")
        if min_side:
            s = min(h, w)
            scale = 1
            while scale < 8 and s // (scale * 2) >= min_side:
                scale *= 2
            mh, mw = math.ceil(h / scale), math.ceil(w / scale)
        else:
            mh = mw = 0
        try:
            return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=mh, min_width=mw)
        except ValueError:
            pass  # e.g. CMYK or a progressive oddity: PIL below
    try:
        im = Image.open(path)
    except (OSError, Image.DecompressionBombError) as e:  # not an image (UnidentifiedImageError), or a bomb
        raise VideoError(path=path, reason=f"not a readable image ({e})") from None
    with im:
        if im.width * im.height > max_pixels:
            raise VideoError(path=path,
                             reason=f"image of {im.width}x{im.height} exceeds the limit of {max_pixels} pixels")
        if min_side:
            im.draft("RGB", (min_side, min_side))
        try:
            return np.asarray(im.convert("RGB"))
        except (OSError, Image.DecompressionBombError) as e:
            raise VideoError(path=path, reason=f"cannot decode image ({e})") from None


def frame_files(folder: str | Path) -> list[Path]:
    """The frames of a folder written by `vidseq extract`, exactly ``0.jpg .. N-1.jpg``, in numeric order."""
    folder = Path(folder)
    found = []
    for name in os.listdir(folder):
        m = _EXTRACTED.match(name)
        if m:
            found.append((int(m.group(1)), folder / name))
    return [p for _, p in sorted(found)]


def read_folder_frames(folder: str | Path, indices: Sequence[int], *, min_side: int | None = None) -> np.ndarray:
    """Frames `indices` of a frame folder as (T, H, W, 3) uint8, decoded no smaller than `min_side` where the
    JPEG allows (frames of mixed sizes are brought to the first one's)."""
    files = _listing(str(folder))
    cache: dict[int, np.ndarray] = {}
    out = []
    for i in indices:
        if i not in cache:
            cache[i] = decode_image(files[i], min_side)
        out.append(cache[i])
    shapes = {a.shape for a in out}
    if len(shapes) > 1:  # frames of mixed sizes: bring them to the first one's
        h, w = out[0].shape[:2]
        out = [a if a.shape[:2] == (h, w) else np.asarray(Image.fromarray(a).resize((w, h))) for a in out]
    return np.stack(out)
