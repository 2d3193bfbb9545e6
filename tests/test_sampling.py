import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidseq.sampling import (
    KEY_REACH,
    first,
    multi_clip,
    pad_indices,
    random_key_segments,
    random_segments,
    sample,
    stride,
    uniform,
)

counts = st.integers(min_value=1, max_value=400)
lengths = st.integers(min_value=1, max_value=40)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _check(idx, n_frames, n, *, sorted_=True):
    assert idx.dtype == np.int64 and idx.shape == (n,)
    assert idx.min() >= 0 and idx.max() < n_frames
    if sorted_:
        assert np.all(np.diff(idx) >= 0)


@settings(max_examples=200, deadline=None)
@given(n_frames=counts, n=lengths, seed=seeds)
def test_every_sampler_gives_n_sorted_indices_in_range(n_frames, n, seed):
    rng = np.random.default_rng(seed)
    for f in (first, uniform, random_segments, stride):
        _check(f(n_frames, n, rng), n_frames, n)
    for clip in multi_clip(n_frames, n, 3):
        _check(clip, n_frames, n)
    for clip in multi_clip(n_frames, n, 2, step=3):
        _check(clip, n_frames, n)


@settings(max_examples=100, deadline=None)
@given(n_frames=counts, n=lengths, seed=seeds)
def test_no_repeats_when_the_video_is_long_enough(n_frames, n, seed):
    if n_frames < n:
        return
    rng = np.random.default_rng(seed)
    for f in (first, uniform, random_segments, stride):
        idx = f(n_frames, n, rng)
        assert len(set(idx.tolist())) == n


@settings(max_examples=100, deadline=None)
@given(n_frames=counts, n=lengths, seed=seeds)
def test_random_segments_picks_one_frame_in_each_segment(n_frames, n, seed):
    if n_frames < n:
        return
    idx = random_segments(n_frames, n, np.random.default_rng(seed))
    seg = np.floor(idx * n / n_frames).astype(int)
    assert seg.tolist() == list(range(n))


@settings(max_examples=200, deadline=None)
@given(n_frames=counts, n=lengths, seed=seeds, gop=st.integers(min_value=1, max_value=300))
def test_random_key_draws_near_a_keyframe_in_each_segment_that_holds_one(n_frames, n, seed, gop):
    keys = np.arange(0, n_frames, gop)
    idx = random_key_segments(n_frames, n, np.random.default_rng(seed), keyframes=keys)
    _check(idx, n_frames, n)
    if n_frames < n:
        return
    edges = [(-(-i * n_frames // n)) for i in range(n + 1)]  # the segments of random_segments
    for j, f in enumerate(idx.tolist()):
        lo, hi = edges[j], max(edges[j] + 1, edges[j + 1])
        assert lo <= f < hi
        cheap = [c for c in range(lo, hi) if c - keys[keys <= c].max() < KEY_REACH]
        if cheap:  # the segment holds a keyframe or a frame just after one: the draw is among those
            assert f in cheap


def test_random_key_without_keyframes_is_random_and_validates_at_the_centres():
    a = random_key_segments(100, 5, np.random.default_rng(3))
    assert a.tolist() == random_segments(100, 5, np.random.default_rng(3)).tolist()
    keys = np.arange(0, 100, 12)
    assert sample("random-key", 100, 5, train=False, keyframes=keys).tolist() == uniform(100, 5).tolist()
    draws = {tuple(sample("random-key", 100, 5, train=True, keyframes=keys, rng=np.random.default_rng(s)))
             for s in range(30)}
    assert len(draws) > 10  # still random: several cheap frames per segment
    assert all((f - keys[keys <= f].max()) < KEY_REACH for d in draws for f in d)


def test_uniform_takes_segment_centres():
    assert uniform(30, 5).tolist() == [3, 9, 15, 21, 27]
    assert uniform(5, 5).tolist() == [0, 1, 2, 3, 4]


def test_short_videos_are_padded_by_repeat_or_loop():
    assert first(3, 5).tolist() == [0, 1, 2, 2, 2]
    assert first(3, 5, pad="loop").tolist() == [0, 1, 2, 0, 1]
    assert uniform(2, 4, pad="loop").tolist() == [0, 1, 0, 1]
    assert pad_indices(1, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError):
        pad_indices(3, 5, pad="mirror")


def test_zero_frames_is_an_error_not_a_silent_drop():
    for f in (first, uniform, random_segments, random_key_segments, stride):
        with pytest.raises(ValueError, match="no frames"):
            f(0, 5)


def test_random_samplers_are_deterministic_at_test_time():
    rng = np.random.default_rng(0)
    a = {tuple(sample("random", 100, 5, train=True, rng=rng)) for _ in range(20)}
    assert len(a) > 1
    assert sample("random", 100, 5, train=False).tolist() == uniform(100, 5).tolist()
    assert sample("stride", 100, 5, train=False, step=4).tolist() == stride(100, 5, step=4, start="center").tolist()


def test_stride_step_and_start():
    idx = stride(100, 5, step=4, start="center")
    assert np.all(np.diff(idx) == 4) and idx[0] == (100 - 17) // 2
    # too short for the stride: the step shrinks before padding kicks in
    assert stride(9, 5, step=4, start="center").tolist() == [0, 2, 4, 6, 8]


def test_multi_clip_spreads_clips_over_the_video():
    clips = multi_clip(100, 4, 3)
    assert len(clips) == 3 and len({tuple(c) for c in clips}) == 3
    stepped = multi_clip(100, 5, 3, step=2)
    assert stepped[0][0] == 0 and stepped[-1][-1] == 99


def test_unknown_sampler_name():
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("fancy", 10, 2, train=True)
