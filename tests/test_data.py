import random
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from vidseq.clips import FILES, ClipTfm, ImageTuple, get_action_dataloaders, pins_batches
from vidseq.errors import DataWarning, VideoError
from vidseq.io import decode_image, list_frames, read_frames

matplotlib.use("Agg")


def frames_folder(video, dest, quality=95):
    dest.mkdir(parents=True)
    for i, a in enumerate(read_frames(video)):
        Image.fromarray(a).save(dest / f"{i}.jpg", quality=quality)
    return dest


@pytest.fixture
def dataset(tmp_path, make_video):
    """Two classes x 4 groups x 2 clips of videos, and the same as frame folders."""
    videos, folders = [], []
    for cls in ("Left", "Right"):
        for g in range(1, 5):
            for c in range(1, 3):
                name = f"v_{cls}_g{g:02d}_c{c:02d}"
                v = make_video(f"videos/{cls}/{name}.avi", n=10 + g, width=64, height=48)
                videos.append(v)
                folders.append(frames_folder(v, tmp_path / "frames" / cls / name))
    return videos, folders


def test_frames_sort_numerically(tmp_path):
    for i in (10, 2, 1, 0):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_frames(tmp_path)] == ["0.jpg", "1.jpg", "2.jpg", "10.jpg"]


def test_frame_folder_and_video_give_equal_clips(dataset):
    videos, folders = dataset
    tfm = ClipTfm(seq_len=4, image_size=32)
    idx = [0, 3, 5, 7]
    a = tfm.load(videos[0], indices=idx).float()
    b = tfm.load(folders[0], indices=idx).float()
    assert a.shape == b.shape == (4, 3, 32, 32)
    assert (a - b).abs().mean() < 8  # JPEG error and resampling on a noise background only
    other = tfm.load(folders[0], indices=[9, 9, 9, 9]).float()
    assert (a - other).abs().mean() > (a - b).abs().mean()


def test_reduced_size_decode_keeps_short_side_at_least_target(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(tmp_path / "0.jpg")
    assert decode_image(tmp_path / "0.jpg", 64).shape == (120, 160, 3)  # 1/2 scale: 120 >= 64 but 60 < 64
    assert decode_image(tmp_path / "0.jpg", 31).shape == (60, 80, 3)
    assert decode_image(tmp_path / "0.jpg", 30).shape == (30, 40, 3)
    assert decode_image(tmp_path / "0.jpg").shape == (240, 320, 3)


def test_oversized_image_is_refused(tmp_path):
    Image.new("RGB", (300, 200)).save(tmp_path / "0.jpg")
    with pytest.raises(VideoError, match="exceeds the limit"):
        decode_image(tmp_path / "0.jpg", max_pixels=100 * 100)


def test_every_frame_of_a_clip_gets_the_same_crop(tmp_path, make_video):
    still = make_video("still.avi", n=1)
    frames = np.repeat(read_frames(still), 6, axis=0)  # six identical frames
    tfm = ClipTfm(seq_len=6, image_size=24, augment=True, flip=True, scale=(0.1, 0.5))
    crops = set()
    for seed in range(8):
        clip = tfm.resize(frames, train=True, rng=random.Random(seed))
        assert all(torch.equal(clip[0], clip[t]) for t in range(6))
        crops.add(clip[0].float().sum().item())
    assert len(crops) > 1  # the crop does change from clip to clip


def test_validation_clips_are_deterministic(dataset):
    videos, _ = dataset
    tfm = ClipTfm(seq_len=4, image_size=32, sampler="random", augment=True)
    a, b = tfm.load(videos[0], train=False), tfm.load(videos[0], train=False)
    assert torch.equal(a, b)


def test_short_video_is_padded(make_video):
    short = make_video("short.avi", n=2)
    clip = ClipTfm(seq_len=5, image_size=16, sampler="uniform").load(short)
    assert clip.shape == (5, 3, 16, 16)
    assert torch.equal(clip[1], clip[4])  # the last frame repeated


@pytest.mark.parametrize("source", ["videos", "frames"])
def test_dataloaders_batches_have_documented_shape_and_dtype(dataset, source):
    videos, folders = dataset
    items = videos if source == "videos" else folders
    val = [i for i, p in enumerate(items) if "_g01_" in p.name]
    dls = get_action_dataloaders(items, bs=4, image_size=32, seq_len=5, val_idxs=val, workers=0,
                                 sampler="random", augment=True)
    assert list(dls.vocab) == ["Left", "Right"]
    assert len(dls.train_ds) == 12 and len(dls.valid_ds) == 4
    raw = dls.train.create_batch([dls.train.create_item(i) for i in range(4)])
    assert isinstance(raw[0], ImageTuple) and raw[0].dtype == torch.uint8 and raw[0].shape == (4, 5, 3, 32, 32)
    x, y = dls.one_batch()
    assert x.shape == (4, 5, 3, 32, 32) and x.dtype == torch.float32
    assert -3 < x.mean() < 3 and y.shape == (4,)


def test_dataloaders_with_worker_processes(dataset):
    videos, _ = dataset
    val = [i for i, p in enumerate(videos) if "_g01_" in p.name]
    dls = get_action_dataloaders(videos, bs=4, image_size=32, seq_len=3, val_idxs=val, workers=2)
    n = sum(len(x) for x, _ in dls.valid)
    assert n == 4


def test_unreadable_and_empty_items_are_left_out_and_reported(dataset, tmp_path):
    videos, folders = dataset
    (tmp_path / "frames" / "Left" / "v_Left_g09_c01").mkdir()  # no frames
    empty = tmp_path / "videos" / "Left" / "v_Left_g09_c02.avi"
    empty.write_bytes(b"")
    items = folders + [tmp_path / "frames" / "Left" / "v_Left_g09_c01", empty]
    with pytest.warns(DataWarning, match="leaving out 2 unreadable or empty item") as caught:
        dls = get_action_dataloaders(items, bs=4, image_size=32, seq_len=3, val_idxs=[0], workers=0)
    assert len(dls.train_ds) + len(dls.valid_ds) == len(folders)
    assert len(dls.skipped) == 2 and len(caught) == 1
    assert caught[0].filename == __file__  # attributed to the caller's line, not to vidseq's
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a notebook user can make them errors with the usual filters
        with pytest.raises(DataWarning):
            get_action_dataloaders(items, bs=4, image_size=32, seq_len=3, val_idxs=[0], workers=0)


def test_show_batch_and_show_results_draw(dataset, tmp_path):
    import matplotlib.pyplot as plt

    videos, _ = dataset
    val = [i for i, p in enumerate(videos) if "_g01_" in p.name]
    dls = get_action_dataloaders(videos, bs=4, image_size=32, seq_len=5, val_idxs=val, workers=0)
    dls.show_batch(max_n=4)
    plt.savefig(tmp_path / "batch.png")
    x, y = dls.valid.one_batch()
    dls.valid.show_results((x, y), torch.nn.functional.one_hot(y, 2).float(), max_n=4)
    plt.savefig(tmp_path / "results.png")
    plt.close("all")
    assert (tmp_path / "batch.png").stat().st_size > 1000


def test_image_tuple_create_and_show(tmp_path):
    files = []
    for i in range(5):
        Image.new("RGB", (16, 12), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
        files.append(tmp_path / f"{i}.png")
    clip = ImageTuple.create(files)
    assert clip.shape == (5, 3, 12, 16)
    ax = clip.show()
    assert ax is not None
    strip = ax.get_images()[0].get_array()
    assert strip.shape[1] == 3 * 16 + 2 * 2  # first, middle, last with two separators


def test_read_clip_repeats_are_decoded_once(dataset):
    _, folders = dataset
    clip = FILES.read(folders[0], [0, 0, 1])
    assert clip.shape[0] == 3 and np.array_equal(clip[0], clip[1])


def test_clip_block_in_a_fastai_datablock(dataset):
    from fastai.data.block import CategoryBlock, DataBlock
    from fastai.data.transforms import FuncSplitter, parent_label

    from vidseq.clips import ClipBlock

    videos, _ = dataset
    block = DataBlock(blocks=(ClipBlock(4, 32, sampler="uniform"), CategoryBlock), get_y=parent_label,
                      splitter=FuncSplitter(lambda p: "_g01_" in p.name))
    dls = block.dataloaders(videos, bs=4, num_workers=0)
    x, y = dls.one_batch()
    assert x.shape == (4, 4, 3, 32, 32) and x.dtype == torch.float32
    assert list(dls.vocab) == ["Left", "Right"] and len(dls.valid_ds) == 4


def test_batches_are_pinned_for_a_cuda_device_only(dataset):
    folders = dataset[1]
    val = [i for i, p in enumerate(folders) if "_g01_" in p.name]
    common = dict(bs=4, image_size=32, seq_len=3, val_idxs=val, workers=0)
    assert not get_action_dataloaders(folders, **common).train.fake_l.pin_memory
    assert get_action_dataloaders(folders, pin_memory=True, **common).train.fake_l.pin_memory
    assert pins_batches("cuda") and pins_batches(torch.device("cuda", 1))
    assert not pins_batches("cpu") and not pins_batches(None)


def test_list_frames_takes_only_images_named_by_their_number(tmp_path):

    for name in ("10.jpg", "2.jpg", "frame_0001.jpg", "poster.jpg", "3 copy.jpg", "notes.txt", "img3.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == ["frame_0001.jpg", "2.jpg", "img3.png", "10.jpg"]


def test_fastai_num_workers_is_taken_as_workers(dataset):
    videos, _ = dataset
    dls = get_action_dataloaders(videos, bs=2, image_size=32, seq_len=3, num_workers=0, device="cpu")
    assert dls.train.fake_l.num_workers == 0 and dls.one_batch()[0].shape == (2, 3, 3, 32, 32)
    with pytest.raises(ValueError, match="disagree"):
        get_action_dataloaders(videos, bs=2, image_size=32, seq_len=3, workers=1, num_workers=0, device="cpu")


class _CountingSource:
    """A frame source that counts reads: clip transforms read through any source of the protocol."""

    def __init__(self):
        self.reads = 0

    def n_frames(self, path):
        return 7

    def exact_frames(self, path):
        return 7

    def read(self, path, indices, *, min_side=None):
        self.reads += 1
        return np.full((len(indices), 40, 40, 3), 9 * len(self.__dict__), np.uint8)


def test_clip_transform_reads_through_any_frame_source():
    from vidseq.clips import FrameSource

    source = _CountingSource()
    assert isinstance(source, FrameSource)
    clip = ClipTfm(seq_len=4, image_size=16, sampler="uniform", source=source).load(Path("any/item"))
    assert clip.shape == (4, 3, 16, 16) and source.reads == 1


def test_a_truncated_video_is_recounted_by_its_error_class_not_its_text(tmp_path, make_video):
    from vidseq.errors import TruncatedVideoError

    path = make_video("v.avi", n=6)
    with pytest.raises(TruncatedVideoError) as info:
        read_frames(path, [0, 9])
    assert (info.value.wanted, info.value.decoded, info.value.path) == (9, 6, path)

    class Lying(type(FILES)):  # declares twice the frames that decode, as damaged files do
        def n_frames(self, p):
            return 12

    clip = ClipTfm(seq_len=4, image_size=16, sampler="uniform", source=Lying()).load(path)
    assert clip.shape == (4, 3, 16, 16)


def test_random_key_sampling_reads_through_a_source_without_keyframes():
    from vidseq.clips import KeyframeSource

    source = _CountingSource()  # no keyframes: every frame equally cheap, so random-key is TSN's random
    assert not isinstance(source, KeyframeSource) and isinstance(FILES, KeyframeSource)
    tfm = ClipTfm(seq_len=4, image_size=16, sampler="random-key", source=source)
    idx = tfm.indices(Path("any/item"), train=True, rng=np.random.default_rng(0))
    assert len(idx) == 4 and all(0 <= i < 7 for i in idx)
