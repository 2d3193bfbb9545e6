"""Decoding with torchcodec (``--decode-device``): the same frames as vidseq's own reads, clips and DataLoaders
through its frame source, and one line where it cannot be used. GPU decoding itself needs a GPU (benchmarks);
here torchcodec decodes on the CPU, through the same code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from test_seek import VIDEOS, encode
from vidseq.errors import TruncatedVideoError, VidseqError
from vidseq.io import read_frames
from vidseq.io.torchcodec import check_decode_device, read_frames_torchcodec, torchcodec_problem

needs_torchcodec = pytest.mark.skipif(torchcodec_problem() is not None,
                                      reason=f"torchcodec cannot decode here: {torchcodec_problem()}")
#: containers torchcodec's exact mode indexes as PyAV does (raw H.264 and a TS without an index are left out)
SAME = ["mpeg4-gop12.avi", "mpeg4-gop250.avi", "h264-bframes.mp4", "h264-vfr.mp4", "vp9.webm", "mjpeg.avi"]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tc")
    return {name: VIDEOS[name][0](folder / name) for name in [*SAME, "h264-open-gop.mkv"]}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-9))


@needs_torchcodec
@pytest.mark.parametrize("name", SAME)
def test_torchcodec_gives_the_frames_vidseq_reads(videos, name):
    path = videos[name]
    wanted = [0, 13, 7, 59, 30, 30]
    ours = read_frames(path, wanted)
    theirs = read_frames_torchcodec(path, wanted, device="cpu")
    assert isinstance(theirs, torch.Tensor) and theirs.dtype == torch.uint8 and theirs.shape == ours.shape
    for i in range(len(wanted)):  # the same frames: colour conversion may round differently, a shift would not
        assert psnr(theirs[i].numpy(), ours[i]) > 35, (name, wanted[i])


@needs_torchcodec
def test_a_file_torchcodec_cannot_decode_is_read_by_vidseq_instead(videos):
    from vidseq.clips.sources import TorchcodecSource
    from vidseq.errors import VideoError

    path = videos["h264-open-gop.mkv"]  # torchcodec 0.17's exact mode stops early in this open-GOP MKV
    wanted = [0, 13, 59]
    try:
        read_frames_torchcodec(path, wanted, device="cpu")
    except VideoError:
        pass
    frames = TorchcodecSource("cpu").read(path, wanted)
    assert isinstance(frames, torch.Tensor) and np.array_equal(frames.numpy(), read_frames(path, wanted))


@needs_torchcodec
def test_a_frame_past_the_end_is_a_truncated_video(videos):
    with pytest.raises(TruncatedVideoError) as e:
        read_frames_torchcodec(videos["mpeg4-gop12.avi"], [3, 60], device="cpu")
    assert (e.value.wanted, e.value.decoded) == (60, 60)


@needs_torchcodec
def test_dataloaders_decode_through_torchcodec(tmp_path):
    from vidseq.clips import get_action_dataloaders

    files = []
    for label in ("a", "b"):
        for g in range(1, 5):
            path = tmp_path / label / f"v_{label}_g{g:02d}_c01.mp4"
            path.parent.mkdir(exist_ok=True)
            files.append(encode(path, "libx264", {"g": "8"}, n=20))
    dls = get_action_dataloaders(files, bs=2, image_size=32, seq_len=4, workers=0, device="cpu",
                                 decode_device="cpu", val_idxs=[0, 4])
    x, y = dls.one_batch()
    assert x.shape == (2, 4, 3, 32, 32) and torch.isfinite(x).all()
    assert type(dls.train_ds.tfms[0][0].source).__name__ == "TorchcodecSource"


def test_decoding_on_a_gpu_that_is_not_there_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VidseqError, match="needs a CUDA GPU") as e:
        check_decode_device("cuda")
    assert str(e.value).startswith("decode_device='cuda' needs a CUDA GPU")
    with pytest.raises(VidseqError, match="must be cpu or cuda"):
        check_decode_device("meta")


def test_without_torchcodec_one_line_says_what_to_install(monkeypatch):
    import sys

    from vidseq.io import torchcodec as tc

    monkeypatch.setitem(sys.modules, "torchcodec", None)
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    tc.torchcodec_problem.cache_clear()
    try:
        with pytest.raises(VidseqError, match=r"pip install 'vidseq\[decode\]'"):
            check_decode_device("cpu")
    finally:
        tc.torchcodec_problem.cache_clear()
