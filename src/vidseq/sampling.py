"""Frame-index samplers: pure functions of (frame count, clip length, random generator) -> indices.

Each returns a sorted int64 array of exactly `n` indices in ``[0, n_frames)``. A video shorter than the
clip is padded, never dropped: ``pad="repeat"`` repeats the last frame (indices stay sorted),
``pad="loop"`` starts again from the first frame. A video with no frames raises ``ValueError``.

>>> first(30, 5)
array([0, 1, 2, 3, 4])
>>> uniform(30, 5)                          # centre frame of 5 equal segments (TSN at test time)
array([ 3,  9, 15, 21, 27])
>>> random_segments(30, 5, np.random.default_rng(0)).shape  # one random frame per segment (TSN training)
(5,)
>>> first(3, 5), first(3, 5, pad="loop")
(array([0, 1, 2, 2, 2]), array([0, 1, 2, 0, 1]))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

Pad = Literal["repeat", "loop"]
Sampler = Callable[..., np.ndarray]


def _check(n_frames: int, n: int) -> None:
    if n < 1:
        raise ValueError(f"clip length must be at least 1, got {n}")
    if n_frames < 1:
        raise ValueError("the video has no frames")


def pad_indices(n_frames: int, n: int, *, pad: Pad = "repeat") -> np.ndarray:
    """All `n_frames` indices padded to `n` by repeating the last frame or looping from the first."""
    _check(n_frames, n)
    idx = np.arange(n, dtype=np.int64)
    if pad == "repeat":
        return np.minimum(idx, n_frames - 1)
    if pad == "loop":
        return idx % n_frames
    raise ValueError(f"pad must be 'repeat' or 'loop', got {pad!r}")


def first(n_frames: int, n: int, rng: np.random.Generator | None = None, *, pad: Pad = "repeat") -> np.ndarray:
    """The first `n` frames: the tutorial's `ImageTupleTfm`."""
    _check(n_frames, n)
    if n_frames < n:
        return pad_indices(n_frames, n, pad=pad)
    return np.arange(n, dtype=np.int64)


def uniform(n_frames: int, n: int, rng: np.random.Generator | None = None, *, pad: Pad = "repeat") -> np.ndarray:
    """The centre frame of each of `n` equal segments: the whole video, deterministically."""
    _check(n_frames, n)
    if n_frames < n:
        return pad_indices(n_frames, n, pad=pad)
    i = np.arange(n, dtype=np.int64)
    return (2 * i + 1) * n_frames // (2 * n)  # floor of each segment's centre, in exact integers


def random_segments(n_frames: int, n: int, rng: np.random.Generator | None = None, *,
                    pad: Pad = "repeat") -> np.ndarray:
    """A random frame in each of `n` equal segments (TSN's training sampler)."""
    _check(n_frames, n)
    if n_frames < n:
        return pad_indices(n_frames, n, pad=pad)
    rng = rng or np.random.default_rng()
    i = np.arange(n + 1, dtype=np.int64)
    edges = (i * n_frames + n - 1) // n  # ceil(i * n_frames / n) in exact integers: no float edge rounds up
    lo, hi = edges[:-1], np.maximum(edges[:-1] + 1, edges[1:])  # hi exclusive
    return rng.integers(lo, hi).astype(np.int64)


#: How far past a keyframe the ``random-key`` sampler draws: the keyframe and the frames just after it, each a
#: short decode run from a seek (1 to `KEY_REACH` frames).
KEY_REACH = 3


def random_key_segments(n_frames: int, n: int, rng: np.random.Generator | None = None, *,
                        keyframes: np.ndarray | None = None, reach: int = KEY_REACH,
                        pad: Pad = "repeat") -> np.ndarray:
    """TSN's random frame in each of `n` equal segments, drawn among the frames that cost least to decode: a
    keyframe or one of the ``reach - 1`` frames after it, where the segment holds one (any frame of it where it
    holds none). Without `keyframes` (frame folders, the cache: every frame is as cheap) it is `random_segments`.

    >>> random_key_segments(48, 4, np.random.default_rng(0), keyframes=np.array([0, 12, 24, 36]), reach=1)
    array([ 0, 12, 24, 36])
    """
    if keyframes is None or not len(keyframes) or n_frames < n:
        return random_segments(n_frames, n, rng, pad=pad)
    if reach < 1:
        raise ValueError(f"reach must be at least 1, got {reach}")
    rng = rng or np.random.default_rng()
    keys = np.asarray(keyframes, dtype=np.int64)
    i = np.arange(n + 1, dtype=np.int64)
    edges = (i * n_frames + n - 1) // n
    out = np.empty(n, dtype=np.int64)
    for j, (lo, hi) in enumerate(zip(edges[:-1], np.maximum(edges[:-1] + 1, edges[1:]))):
        near = keys[np.searchsorted(keys, lo - reach + 1):np.searchsorted(keys, hi)]  # keys reaching into [lo, hi)
        cheap = np.unique((near[:, None] + np.arange(reach)).ravel()) if len(near) else near
        cheap = cheap[(cheap >= lo) & (cheap < hi)]
        out[j] = rng.choice(cheap) if len(cheap) else rng.integers(lo, hi)
    return out


def stride(n_frames: int, n: int, rng: np.random.Generator | None = None, *, step: int = 2,
           start: Literal["random", "center"] = "random", pad: Pad = "repeat") -> np.ndarray:
    """`n` frames `step` apart, from a random start (training) or centred in the video (test).

    When the video is too short for the stride, the step shrinks to fit before any padding happens.
    """
    _check(n_frames, n)
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    if n_frames < n:
        return pad_indices(n_frames, n, pad=pad)
    step = min(step, (n_frames - 1) // max(1, n - 1)) if n > 1 else step
    step = max(step, 1)
    span = (n - 1) * step + 1
    slack = n_frames - span
    if start == "center":
        s = slack // 2
    elif start == "random":
        s = int((rng or np.random.default_rng()).integers(0, slack + 1))
    else:
        raise ValueError(f"start must be 'random' or 'center', got {start!r}")
    return s + np.arange(n, dtype=np.int64) * step


def multi_clip(n_frames: int, n: int, k: int, *, step: int | None = None, pad: Pad = "repeat") -> list[np.ndarray]:
    """`k` clips spread evenly over the video for test-time averaging.

    With `step=None` each clip takes one frame per segment, the clips' frames offset from each other
    inside the segments (clip 0 is ``uniform`` when k = 1). With a `step`, each clip is `n` frames
    `step` apart and the clips' starts are spread evenly from the first to the last possible start.
    """
    _check(n_frames, n)
    if k < 1:
        raise ValueError(f"number of clips must be at least 1, got {k}")
    if n_frames < n:
        return [pad_indices(n_frames, n, pad=pad) for _ in range(k)]
    if step is None:
        seg = n_frames / n
        out = []
        for j in range(k):
            offset = (j + 0.5) / k  # position inside each segment
            idx = np.floor((np.arange(n) + offset) * seg).astype(np.int64)
            out.append(np.clip(idx, 0, n_frames - 1))
        return out
    step = max(1, min(step, (n_frames - 1) // max(1, n - 1))) if n > 1 else max(1, step)
    span = (n - 1) * step + 1
    starts = np.linspace(0, n_frames - span, k).round().astype(np.int64)
    return [s + np.arange(n, dtype=np.int64) * step for s in starts]


#: The default clip sampler everywhere (ClipTfm, the DataLoaders builders, runs): TSN's random segments in
#: training, their centres when validating. The tutorial's sampler is `first`.
DEFAULT_SAMPLER = "random"

#: Samplers by name, for options and configs. Training and test use can differ (see `test_sampler`).
SAMPLERS: dict[str, Sampler] = {
    "first": first,
    "uniform": uniform,
    "random": random_segments,
    "random-key": random_key_segments,
    "stride": stride,
}


def get_sampler(name: str) -> Sampler:
    """The sampler called `name` (first, uniform, random, random-key, stride)."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}") from None


def sample(name: str, n_frames: int, n: int, *, train: bool, rng: np.random.Generator | None = None,
           pad: Pad = "repeat", step: int = 2, keyframes: np.ndarray | None = None) -> np.ndarray:
    """Indices for one clip with the sampler called `name`, in its training or its test form.

    Random samplers become deterministic at test time (TSN's rule): ``random`` and ``random-key`` segments
    validate with ``uniform`` (the segment centres), and ``stride`` starts in the centre instead of at a random
    frame. `keyframes` (the video's, where reading costs depend on them) is what ``random-key`` draws near.
    """
    sampler = get_sampler(name)
    if name == "stride":
        return stride(n_frames, n, rng, step=step, start="random" if train else "center", pad=pad)
    if name in ("random", "random-key") and not train:
        sampler = uniform
    elif name == "random-key":
        return random_key_segments(n_frames, n, rng, keyframes=keyframes, pad=pad)
    return sampler(n_frames, n, rng, pad=pad)
