"""Real processes stopped at spread points: `vidseq extract` killed again and again (SIGKILL of its whole process
group, as an out-of-memory killer or a preempted node would, and SIGTERM of the main process, as `kill PID` or a
scheduler would) and then rerun gives every output file of an uninterrupted run, byte for byte; SIGTERM stops a
command as Ctrl-C does (one line, the resume hint, exit 143)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import digests, wait_for_an_epoch
from vidseq.cli import main
from vidseq.extract import extract_dataset
from vidseq.io import write_video

CLI = [sys.executable, "-m", "vidseq"]


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, Path]:
    """Videos of noise (slow to encode as JPEG: about a second of work) and their uninterrupted extraction."""
    src = tmp_path_factory.mktemp("kill-src")
    (src / "C").mkdir()
    for i in range(8):
        rng = np.random.default_rng(i)
        write_video(src / "C" / f"v{i}.avi", (rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(90)),
                    codec="mpeg4")
    reference = tmp_path_factory.mktemp("kill-reference") / "frames"
    assert extract_dataset(src, reference, workers=1).done == 8
    return src, reference


def _start(args: list[str]) -> subprocess.Popen:
    # its own session: a kill -9 of the group takes its workers too; Ctrl-C and SIGTERM handling as from a shell
    return subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _in_progress(dest: Path) -> set[str]:
    try:
        return {n for n in os.listdir(dest / "C") if re.fullmatch(r"\.v\d\.tmp-\d+", n)}
    except FileNotFoundError:
        return set()


def _working(dest: Path, proc: subprocess.Popen, before: set[str]) -> bool:
    """Wait until a video is in progress under `dest` (True), or the run ended first (False); `before`: the
    temporary folders that killed runs left, which are not this run's work."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if _in_progress(dest) - before:
            return True
        time.sleep(0.002)
    raise AssertionError("no video was ever in progress")


@pytest.mark.slow
def test_extract_killed_and_terminated_at_spread_points_then_rerun_gives_the_uninterrupted_files(job, tmp_path):
    src, reference = job
    dest = tmp_path / "frames"
    stopped = 0
    for sig, delay in [(signal.SIGKILL, 0.0), (signal.SIGTERM, 0.02), (signal.SIGKILL, 0.08), (signal.SIGTERM, 0.2),
                       (signal.SIGKILL, 0.4)]:
        before = _in_progress(dest)
        proc = _start(["extract", str(src), str(dest), "--workers", "1"])
        try:
            if _working(dest, proc, before):
                time.sleep(delay)
                if sig == signal.SIGKILL:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode == 0 or out.startswith("extracted"):
            continue  # it finished before the signal (or it came as Python was exiting): nothing to check but the end
        stopped += 1
        if sig == signal.SIGTERM:  # a clean stop: one line, no traceback, what it had half-done removed
            assert proc.returncode == 143 and err.splitlines() == ["vidseq: stopped by SIGTERM"], err
            assert not list(dest.rglob("*.tmp-*"))
        else:
            assert proc.returncode == -signal.SIGKILL
        for folder in (dest / "C").iterdir():  # what is there under a real name is whole
            if not folder.name.startswith("."):
                assert sorted(os.listdir(folder)) == sorted(os.listdir(reference / "C" / folder.name))
    assert stopped >= 2, "the runs ended before most signals: the job is too small for this machine"
    assert main(["extract", str(src), str(dest), "--workers", "1"]) == 0
    assert digests(dest) == digests(reference)


@pytest.mark.slow
def test_sigterm_stops_training_like_ctrl_c_with_the_resume_hint(tmp_path):
    from vidseq.datasets.synth import SynthConfig, make_synth

    make_synth(tmp_path / "data", SynthConfig(classes=2, groups=8, clips=1, frames=6, width=32, height=32))
    run, data = tmp_path / "run", tmp_path / "data" / "videos"
    args = ["train", str(data), "--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--size", "32",
            "--frames", "2", "--bs", "4", "--workers", "0", "--epochs", "3", "--out", str(run)]
    proc = _start(args)
    state = run / "checkpoint" / "state.json"
    try:
        wait_for_an_epoch(proc, run)
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode == 0:
        pytest.skip("training finished before SIGTERM arrived")
    hint = f"vidseq: stopped by SIGTERM; continue with: vidseq train {data} --out {run} --resume"
    assert proc.returncode == 143 and err.splitlines()[-1] == hint and "Traceback" not in err, err
    assert main(["train", str(data), "--out", str(run), "--resume"]) == 0
    assert json.loads(state.read_text())["epochs_done"] == 3
