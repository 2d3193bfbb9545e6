"""Destinations that cannot be written (read-only filesystems, folders without write permission, a destination
removed while a run writes into it) and inputs that cannot be read: one line each, and a batch goes on past the
one file it cannot read. Permission checks need a process without root's override: as root, the commands run
under `setpriv` with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (skipped where setpriv is missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TRAIN, digests
from vidseq.cli import main
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.errors import DatasetError
from vidseq.extract import extract_dataset


def unprivileged(*args) -> subprocess.CompletedProcess:
    """`vidseq ARGS` in a process that file permissions apply to (root without its override capabilities)."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: file permissions do not apply")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-m", "vidseq", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_run) -> tuple[Path, Path]:
    """Videos (one of them unreadable: mode 000) and a run to predict with."""
    root = tmp_path_factory.mktemp("perm")
    make_synth(root / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    videos = root / "data" / "videos"
    (videos / "MoveLeft" / "v_MoveLeft_g02_c01.avi").chmod(0)
    return videos, tiny_run


def test_one_unreadable_input_file_is_a_failure_of_its_own_and_the_batch_goes_on(data, tmp_path):
    videos, run = data
    locked = videos / "MoveLeft" / "v_MoveLeft_g02_c01.avi"
    tmp_path.chmod(0o777)
    out = unprivileged("extract", videos, tmp_path / "frames", "--workers", "1")
    assert out.returncode == 0 and "15 videos" in out.stdout and "1 failed" in out.stdout, out.stderr
    failures = [json.loads(x) for x in (tmp_path / "frames" / "failures.jsonl").read_text().splitlines()]
    assert failures == [{"video": "MoveLeft/v_MoveLeft_g02_c01.avi", "status": "failed",
                         "reason": "not a readable video (Permission denied)"}]
    out = unprivileged("cache", videos, tmp_path / "cache", "--workers", "1", "--size", "32")
    assert out.returncode == 0 and "cached 15 of 16 items" in out.stdout and "left out 1" in out.stdout, out.stderr
    out = unprivileged("predict", run, locked, videos / "MoveLeft" / "v_MoveLeft_g01_c01.avi")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines()[-1] == f"vidseq: error: {locked}: not a readable video (Permission denied)"
    assert out.stdout.splitlines()[0] == str(videos / "MoveLeft" / "v_MoveLeft_g01_c01.avi")


def _commands(videos: Path, run: Path, dest: Path) -> dict[str, list[str]]:
    return {"synth": ["synth", str(dest / "synth"), "--preset", "tiny"],
            "extract": ["extract", str(videos), str(dest / "frames"), "--workers", "1"],
            "transcode": ["transcode", str(videos), str(dest / "mp4"), "--workers", "1"],
            "cache": ["cache", str(videos), str(dest / "cache"), "--workers", "1"],
            "train": ["train", str(videos), *TINY_TRAIN, "--out", str(dest / "run")],
            "evaluate": ["evaluate", str(dest)],
            "export": ["export", str(run), str(dest / "model.onnx"), "--format", "onnx"]}


@pytest.mark.parametrize("command", ["synth", "extract", "transcode", "cache", "train", "evaluate", "export"])
def test_every_writing_command_on_a_read_only_filesystem_is_one_line(data, command, tmp_path, capsys):
    videos, run = data
    if command == "export":
        pytest.importorskip("onnxruntime")
    disk = tmp_path / "ro"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        if command == "evaluate":  # evaluate writes its report into the run folder: the run is on the mount
            for name in ("config.json", "model.safetensors", "metrics.csv"):
                shutil.copyfile(run / name, disk / name)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        code = main(_commands(videos, run, disk)[command])
        err = capsys.readouterr().err
        lines = [x for x in err.splitlines() if not x.startswith("vidseq: warning:")]
        assert code in (1, 2) and len(lines) == 1 and "Traceback" not in err, err
        assert lines[0].startswith(f"vidseq: error: {disk}") and "Read-only file system" in lines[0].replace(
            "read-only filesystem", "Read-only file system"), lines
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_folder_without_write_permission_is_one_line(data, tmp_path):
    videos, run = data
    dest = tmp_path / "locked"
    dest.mkdir(mode=0o555)
    dest.chmod(0o555)
    out = unprivileged(*_commands(videos, run, dest)["extract"])  # all commands check it as the read-only ones
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith(f"vidseq: error: {dest}") and "Permission denied" in out.stderr


def remove_the_destination(path: Path) -> None:
    """A worker hook: the destination is removed (by someone else) as the fourth video starts."""
    if path.name == "v_MoveRight_g01_c01.avi":
        shutil.rmtree(Path(os.environ["VIDSEQ_TEST_DEST"]), ignore_errors=True)


def test_a_run_folder_removed_while_training_is_one_line(data, tmp_path, monkeypatch, capsys):
    """Removed between two epochs (by a clean-up script, a user): one line, not a FileNotFoundError traceback."""
    from vidseq.train.callbacks import RunCheckpoint

    videos, _ = data
    run = tmp_path / "run"
    save = RunCheckpoint._save

    def remove_before_the_second(self, done):
        if done == 2:
            shutil.rmtree(self.run)
        return save(self, done)

    monkeypatch.setattr(RunCheckpoint, "_save", remove_before_the_second)
    assert main(["train", str(videos), *TINY_TRAIN, "--epochs", "2", "--out", str(run)]) == 2
    assert capsys.readouterr().err.splitlines()[-1:] == [
        f"vidseq: error: {run}: disappeared while training (at epoch 2); make sure nothing else removes it and train "
        "again: what it held is gone"]


def test_a_destination_removed_mid_run_is_one_line_and_a_rerun_redoes_it(data, tmp_path, monkeypatch):
    videos, _ = data
    reference, dest = tmp_path / "reference", tmp_path / "frames"
    extract_dataset(videos, reference, workers=1)
    monkeypatch.setenv("VIDSEQ_TEST_DEST", str(dest))
    with pytest.raises(DatasetError) as e:
        extract_dataset(videos, dest, workers=1, worker_hook=remove_the_destination)
    assert e.value.path == dest and "disappeared while being written" in str(e.value)
    assert not (dest / "manifest.csv").exists()  # no manifest claims the videos that went with it
    extract_dataset(videos, dest, workers=1)
    assert digests(dest) == digests(reference)
