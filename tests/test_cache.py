import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TRAIN
from vidseq.cli import main
from vidseq.clips import ClipCache, build_cache, get_action_dataloaders
from vidseq.errors import DatasetError, VidseqError


@pytest.fixture
def videos(make_video):
    return [make_video(f"{cls}/v_{cls}_g0{g}_c01.avi", n=8 + g, seed=g) for cls in ("A", "B") for g in (1, 2, 3)]


def test_cache_holds_frames_spread_over_each_video(videos, tmp_path):
    dest = build_cache(videos, tmp_path / "cache", size=24, frames=6, workers=1, progress=False)
    cache = ClipCache(dest)
    assert cache.size == 24 and all(cache.count(v) == 6 for v in videos)
    clip = cache.read(videos[0], [0, 5])
    assert clip.shape == (2, 24, 24, 3) and clip.dtype == np.uint8
    assert not np.array_equal(clip[0], clip[1])
    assert sorted(p.name for p in dest.iterdir()) == ["frames.u8", "index.json"]  # nothing temporary left


def test_dataloaders_from_cache_match_direct_decoding(videos, tmp_path):
    dest = build_cache(videos, tmp_path / "cache", size=32, frames=64, workers=1, progress=False)
    val = [0, 3]
    kw = dict(bs=2, image_size=32, seq_len=4, val_idxs=val, workers=0, sampler="uniform")
    direct = get_action_dataloaders(videos, **kw)
    cached = get_action_dataloaders(videos, cache=dest, **kw)
    a, _ = direct.valid.one_batch()
    b, _ = cached.valid.one_batch()
    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=0.35)  # one extra resampling step in the cache, nothing else


def test_complete_cache_is_reused_and_interrupted_build_resumes(videos, tmp_path, monkeypatch):
    dest = tmp_path / "cache"
    build_cache(videos, dest, size=16, frames=4, workers=1, progress=False)
    stamp = (dest / "frames.u8").stat().st_mtime_ns
    build_cache(videos, dest, size=16, frames=4, workers=1, progress=False)
    assert (dest / "frames.u8").stat().st_mtime_ns == stamp

    # an interrupted build: temporary files and a progress log naming the first two items as done
    other = tmp_path / "cache2"
    build_cache(videos, other, size=16, frames=4, workers=1, progress=False)
    (other / "frames.u8").rename(other / "frames.u8.tmp")
    (other / "index.json").rename(other / "index.json.tmp")
    (other / "progress.jsonl").write_text("0\n1\n")
    build_cache(videos, other, size=16, frames=4, workers=1, progress=False)
    assert json.loads((other / "index.json").read_text())["items"] == json.loads(
        (dest / "index.json").read_text())["items"]
    assert (other / "frames.u8").read_bytes() == (dest / "frames.u8").read_bytes()


def test_not_a_cache(tmp_path):
    with pytest.raises(DatasetError, match="not a clip cache"):
        ClipCache(tmp_path)


def test_cache_serves_any_working_folder_and_path_spelling(videos, tmp_path, monkeypatch):
    monkeypatch.chdir(videos[0].parent.parent)
    relative = [v.relative_to(videos[0].parent.parent) for v in videos]
    dest = build_cache(relative, tmp_path / "cache", size=16, frames=4, workers=1, progress=False)
    monkeypatch.chdir(tmp_path)
    cache = ClipCache(dest)
    assert all(v in cache and cache.count(v) == 4 for v in videos)  # absolute now
    assert videos[0].parent / ".." / videos[0].parent.name / videos[0].name in cache


def test_unreadable_items_are_reported_and_do_not_force_a_rebuild(videos, tmp_path, monkeypatch):
    broken = videos[0].parent / "v_A_g09_c01.avi"
    broken.write_bytes(b"not a video")
    dest = build_cache([*videos, broken], tmp_path / "cache", size=16, frames=4, workers=1, progress=False)
    cache = ClipCache(dest)
    assert len(cache.entries) == len(videos) and list(cache.failures) == [str(broken)]
    from vidseq.clips import FILES

    monkeypatch.setattr(FILES, "n_frames", lambda p: pytest.fail("rebuilt a complete cache"))
    assert build_cache([*videos, broken], dest, size=16, frames=4, workers=1, progress=False) == dest


def test_cache_workers_leave_ctrl_c_to_the_main_process():
    import signal

    from vidseq.clips.cache import _init_worker

    before = signal.getsignal(signal.SIGINT)
    threads = torch.get_num_threads()
    try:
        _init_worker()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
        torch.set_num_threads(threads)


def test_cache_refuses_bad_settings_and_a_file_as_its_folder(videos, tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        build_cache(videos, tmp_path / "c", size=0, progress=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(VidseqError, match="is a file, not a folder"):
        build_cache(videos, tmp_path / "afile", size=16, frames=2, workers=1, progress=False)


def test_cache_workers_ignore_ctrl_c_from_their_start():
    import subprocess
    import sys

    # the state checked is set up first: a suite started from a shell that ignores SIGINT (`make test &`,
    # nohup) hands that on, and Python then installs no handler of its own
    script = ("import multiprocessing, signal\n"
              "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
              "from vidseq.clips.cache import _start_forkserver_ignoring_ctrl_c\n"
              "_start_forkserver_ignoring_ctrl_c()\n"
              "with multiprocessing.get_context('forkserver').Pool(1) as pool:\n"
              "    print(pool.apply(signal.getsignal, (signal.SIGINT,)) is signal.SIG_IGN)\n"
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "True"], out.stderr  # the workers ignore it; this process does not


def test_train_loads_clips_from_a_cache_built_by_the_cache_command(tmp_path, monkeypatch, capsys):
    from vidseq.clips.sources import FileSource
    from vidseq.datasets.synth import PRESETS, make_synth

    videos = make_synth(tmp_path / "data", PRESETS["tiny"]).root / "videos"
    assert main(["cache", str(videos), str(tmp_path / "cache"), "--size", "36", "--frames", "8", "--workers", "1"]) == 0
    decoded = []
    real_read = FileSource.read

    def read(self, path, indices, **kw):  # the decoder: every clip it is asked for is counted
        decoded.append(path)
        return real_read(self, path, indices, **kw)

    monkeypatch.setattr(FileSource, "read", read)
    capsys.readouterr()
    train = ["train", str(videos), *TINY_TRAIN, "--out", str(tmp_path / "run")]
    assert main([*train, "--cache-dir", str(tmp_path / "cache")]) == 0
    out, err = capsys.readouterr()
    assert f"vidseq: clips of 16 of 16 items from the cache {tmp_path / 'cache'}" in err.splitlines(), err
    assert "run: " in out and decoded == []  # every clip (training and validation) came from the cache
    assert not (tmp_path / "run" / "cache").exists()  # no cache of its own in the run folder

    # a cache of one class only: the other's clips are decoded from their files, and train says so
    build_cache(sorted((videos / "MoveLeft").glob("*.avi")), tmp_path / "half", size=36, frames=8, workers=1,
                progress=False)
    capsys.readouterr()
    assert main([*train, "--overwrite", "--cache-dir", str(tmp_path / "half")]) == 0
    err = capsys.readouterr().err
    assert (f"vidseq: clips of 8 of 16 items from the cache {tmp_path / 'half'}; the other 8 are decoded from their "
            "files") in err.splitlines(), err
    assert decoded and all(p.parent.name == "MoveRight" for p in map(Path, decoded))


def test_train_from_a_cache_of_other_data_or_no_cache_is_one_line(tmp_path, videos, capsys):
    build_cache(videos, tmp_path / "cache", size=16, frames=4, workers=1, progress=False)
    data = tmp_path / "copy"
    for v in videos:  # the same videos elsewhere: a cache is keyed by absolute path
        (data / v.parent.name).mkdir(parents=True, exist_ok=True)
        (data / v.parent.name / v.name).write_bytes(v.read_bytes())
    train = ["train", str(data), *TINY_TRAIN, "--split", "group", "--out", str(tmp_path / "run")]
    for cache, expected in ((tmp_path / "cache", f"{tmp_path / 'cache'}: holds none of the 6 items of {data}"),
                            (tmp_path / "nothing", f"{tmp_path / 'nothing'}: not a clip cache (no index.json)")):
        capsys.readouterr()
        assert main([*train, "--cache-dir", str(cache)]) == 2
        err = capsys.readouterr().err
        [line] = [x for x in err.splitlines() if x.startswith("vidseq: error")]
        assert "Traceback" not in err and line.startswith(f"vidseq: error: {expected}"), line
        assert not (tmp_path / "run").exists()
    assert main([*train, "--cache", "--cache-dir", str(tmp_path / "cache")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "vidseq: error: choose --cache (build a cache in the run folder) or --cache-dir DEST (load clips from one "
        "built by 'vidseq cache'), not both"]
