"""Shared fixtures: tiny data built in tmp_path, so no test needs a network or a download."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.io import write_video

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def moving_square(n: int = 12, width: int = 64, height: int = 48, *, gray: bool = False, seed: int = 0):
    """Frames of a bright square moving right over a noisy background: each frame differs."""
    rng = np.random.default_rng(seed)
    bg = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    frames = []
    for t in range(n):
        f = bg.copy()
        x = (t * 3) % max(1, width - 12)
        f[height // 4: height // 4 + 12, x: x + 12] = (250, 200 - 10 * (t % 10), 40)
        frames.append(f[..., 0] if gray else f)
    return frames


def train_tiny_run(root: Path, model: str = "frame_avg") -> Path:
    """Tiny synth data in root/data and a run of `model` (resnet18 backbone, 3 frames of 32 px) trained one epoch
    on it in root/run; returns the run folder."""
    from vidseq.cli import main

    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32))
    assert main(["train", str(root / "data" / "videos"), "--model", model, "--backbone", "resnet18",
                 "--no-pretrained", "--size", "32", "--frames", "3", "--bs", "4", "--workers", "0", "--epochs", "1",
                 "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def make_video(tmp_path):
    """Write a small video: make_video(name, n=12, width=64, height=48, codec="mpeg4", seed=0, **kw) -> Path.

    Extra keyword arguments go to `vidseq.video.write_video` (pix_fmt, rotation, fps, ...)."""

    def make(name: str = "clip.avi", n: int = 12, width: int = 64, height: int = 48, codec: str = "mpeg4",
             gray: bool = False, seed: int = 0, **kw) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_video(path, moving_square(n, width, height, gray=gray, seed=seed), codec=codec, **kw)

    return make


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A tiny UCF101-shaped dataset (2 classes, 8 groups, 1 clip, 8 frames, 32x32), built once."""
    root = tmp_path_factory.mktemp("synth")
    make_synth(root, SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32))
    return root


#: `vidseq train` options for the smallest run that is a real one (a ResNet-18 frame average, one epoch).
TINY_TRAIN = ["--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--frames", "2", "--size", "32",
              "--epochs", "1", "--workers", "0"]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run trained (TINY_TRAIN) on tiny data of its own (tests add files to `tiny_synth`), built once; copy it
    before changing it."""
    from vidseq.cli import main

    root = tmp_path_factory.mktemp("tiny-run")
    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    assert main(["train", str(root / "data" / "videos"), *TINY_TRAIN, "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture
def shared_dir() -> Path:
    """../shared beside the checkout, or skip where it is absent (a user's clone)."""
    if not SHARED.is_dir():
        pytest.skip("../shared is not present beside this checkout")
    return SHARED


def wait_for_an_epoch(proc: subprocess.Popen, run: Path, timeout: float = 100) -> None:
    """Wait until training process `proc` has checkpointed an epoch into `run` (it fails if the process ends)."""
    state = run / "checkpoint" / "state.json"
    deadline = time.monotonic() + timeout
    while not (state.is_file() and json.loads(state.read_text())["epochs_done"] >= 1):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no epoch finished"
        time.sleep(0.01)


def digests(folder: Path, *, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under `folder` (hidden ones too: a leftover temporary shows), but those named in
    `skip`, by path relative to `folder`."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name not in skip}


def _mount(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return mount.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A function mounting a tmpfs of the given size under tmp_path; all unmounted at the end."""
    mounted = []

    def mount(size_kb: int, *, read_only: bool = False) -> Path:
        path = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        if not _mount(path, f"size={size_kb}k"):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        mounted.append(path)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
