"""The storage as input: a full disk and a read-only destination end in one line naming the folder, leave nothing
half-written, and a rerun after freeing space completes to the same result as an uninterrupted run. Uses small
tmpfs mounts; skipped where this process may not mount (a user's machine without root)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TRAIN, digests
from vidseq.cli import main
from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.files import _umask
from vidseq.runs import read_metrics


def vidseq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidseq", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("storage")
    make_synth(root, SynthConfig(classes=2, groups=8, clips=1, frames=8, width=32, height=32))
    return root / "videos"


def test_extract_onto_a_full_disk_is_one_line_and_a_rerun_completes(videos, tmp_path, tmpfs):
    reference = tmp_path / "reference"
    assert vidseq("extract", videos, reference, "--workers", "1").returncode == 0
    disk = tmpfs(2048)  # the frames take about 600 KB of it (a 4 KB block a file); the filler leaves 100 KB
    filler = disk / "filler"
    filler.write_bytes(b"\0" * ((2048 - 100) * 1024))
    dest = disk / "frames"
    out = vidseq("extract", videos, dest, "--workers", "1")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[-1].startswith(f"vidseq: error: {dest}") and "no space left on the device" in lines[-1]
    assert "df -h" in lines[-1] and re.search(r"needs about [\d.]+ [KM]B for the \d+ videos left", lines[-1])
    assert not list(disk.rglob(".*.tmp-*")), "a temporary file was left behind"
    filler.unlink()
    again = vidseq("extract", videos, dest, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert digests(dest, skip=("failures.jsonl",)) == digests(reference, skip=("failures.jsonl",))


def test_extract_into_a_read_only_folder_is_one_line(videos, tmpfs):
    disk = tmpfs(256, read_only=True)
    out = vidseq("extract", videos, disk / "frames", "--workers", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Read-only file system" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_read_only_destination_that_exists_is_one_line(videos, tmp_path, tmpfs):
    disk = tmpfs(256)
    (disk / "frames").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    out = vidseq("extract", videos, disk / "frames", "--workers", "1")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{disk / 'frames'}: cannot be written to (Read-only file system)" in out.stderr


def test_a_second_run_on_one_destination_refuses_in_one_line_and_shards_run_side_by_side(videos, tmp_path):
    import os

    from vidseq.files import exclusive

    dest = tmp_path / "frames"
    with exclusive(dest, what="frames folder"):
        out = vidseq("extract", videos, dest, "--workers", "1")
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert f"is being written by another vidseq frames folder run (pid {os.getpid()})" in out.stderr
        assert not dest.exists()
        assert vidseq("extract", videos, dest, "--workers", "1", "--shard", "2/2").returncode == 0  # another key
    with exclusive(dest, what="frames folder", key="-shard-1-of-2"):
        assert vidseq("extract", videos, dest, "--workers", "1", "--shard", "1/2").returncode == 2
    assert vidseq("extract", videos, dest, "--workers", "1").returncode == 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".pid")]  # no holder left behind


def test_a_lock_dies_with_its_holder(videos, tmp_path):
    import signal
    import time

    dest = tmp_path / "frames"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from vidseq.files import exclusive\n"
                               f"with exclusive({str(dest)!r}, what='frames folder'):\n"
                               "    print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert vidseq("extract", videos, dest, "--workers", "1").returncode == 2
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        time.sleep(0.1)
        assert vidseq("extract", videos, dest, "--workers", "1").returncode == 0  # the OS released the lock
    finally:
        holder.kill()


def test_training_and_caching_into_a_folder_in_use_refuse_in_one_line(videos, tmp_path, capsys):
    from vidseq.cli import main
    from vidseq.files import exclusive

    run, cache = tmp_path / "run", tmp_path / "cache"
    with exclusive(run, what="training"), exclusive(cache, what="cache"):
        assert main(["train", str(videos), "--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained",
                     "--frames", "2", "--size", "32", "--epochs", "1", "--workers", "0", "--out", str(run)]) == 2
        assert "is being written by another vidseq training run" in capsys.readouterr().err
        assert main(["cache", str(videos), str(cache), "--workers", "1"]) == 2
        assert "is being written by another vidseq cache run" in capsys.readouterr().err


def fill(disk: Path, leave_kb: int) -> Path:
    """Fill `disk` but `leave_kb` KB with a file (returned, to free the space again by removing it)."""
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave_kb * 1024))
    return filler


def cli(capsys, *args) -> tuple[int, str]:
    """`vidseq ARGS` in this process (as the script runs it): exit code and stderr."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def full_disk_line(out: tuple[int, str], folder: Path, needs: str = r"needs about [\d.]+ [KM]B") -> str:
    """The one line of a run stopped by a full disk under `folder` (exit 1, no traceback), naming the folder and
    how much space was needed."""
    code, err = out
    assert code == 1 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"vidseq: error: {folder}") and "no space left on the device" in line, line
    assert re.search(needs, line), line
    return line


def no_leftovers(disk: Path) -> None:
    assert not [p for p in disk.rglob("*") if re.search(r"\.tmp(-\d+)?", p.name)], "a temporary file was left"


def test_synth_and_transcode_onto_a_full_disk_are_one_line_and_reruns_complete(videos, tmp_path, tmpfs, capsys):
    def synth(dest):
        return cli(capsys, "synth", dest, "--classes", "2", "--groups", "8", "--clips", "1", "--frames", "8", "--size",
                   "64x48")

    def transcode(dest):
        return cli(capsys, "transcode", videos, dest, "--workers", "1", "--size", "32")

    assert synth(tmp_path / "synth")[0] == 0 and transcode(tmp_path / "mp4")[0] == 0
    disk = tmpfs(1024)
    filler = fill(disk, 40)
    full_disk_line(synth(disk / "synth"), disk / "synth", r"needs about [\d.]+ [KM]B for the \d+ videos left")
    full_disk_line(transcode(disk / "mp4"), disk / "mp4", r"needs about [\d.]+ [KM]B for the (split lists|\d+ videos)")
    no_leftovers(disk)
    filler.unlink()
    for command, name in ((synth, "synth"), (transcode, "mp4")):
        assert command(disk / name)[0] == 0
        assert digests(disk / name) == digests(tmp_path / name)


def test_a_cache_onto_a_full_disk_reserves_its_size_first_and_a_rerun_completes(videos, tmp_path, tmpfs, capsys):
    assert cli(capsys, "cache", videos, tmp_path / "cache", "--workers", "1", "--size", "32")[0] == 0
    disk = tmpfs(1024)
    filler = fill(disk, 100)  # less than the frames (8x16 frames of 32x32x3: 393 KB)
    out = cli(capsys, "cache", videos, disk / "cache", "--workers", "1", "--size", "32")
    full_disk_line(out, disk / "cache", r"needs about 0.4 MB for the cache's frames")
    no_leftovers(disk)
    assert not (disk / "cache" / "frames.u8").exists()  # before: a worker died of SIGBUS writing into a sparse file
    filler.unlink()
    assert cli(capsys, "cache", videos, disk / "cache", "--workers", "1", "--size", "32")[0] == 0
    assert digests(disk / "cache") == digests(tmp_path / "cache")


def test_training_onto_a_full_disk_is_one_line_with_the_weights_size_and_no_weights(videos, tmpfs, tmp_path,
                                                                                     capsys):
    """Then, with room again, the same command trains the run an uninterrupted one does: every file byte for
    byte (CPU, one seed, no workers), but metrics.csv's times."""
    roomy = tmp_path / "run"
    assert cli(capsys, "train", videos, *TINY_TRAIN, "--out", roomy)[0] == 0
    disk = tmpfs(256 * 1024)  # room for a run: its weights twice and the optimiser's state, 190 MB
    filler = fill(disk, 200)
    out = cli(capsys, "train", videos, *TINY_TRAIN, "--out", disk / "run")
    full_disk_line(out, disk / "run" / "checkpoint", r"writing model.safetensors; needs about 4\d\.\d MB")
    no_leftovers(disk)
    assert not (disk / "run" / "model.safetensors").exists()
    filler.unlink()
    again = cli(capsys, "train", videos, *TINY_TRAIN, "--out", disk / "run")
    assert again[0] == 0, again  # no epoch was done: not refused
    assert digests(disk / "run", skip=("metrics.csv",)) == digests(roomy, skip=("metrics.csv",))
    untimed = [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(disk / "run")]
    assert untimed == [{k: v for k, v in row.items() if k != "time"} for row in read_metrics(roomy)]


def test_evaluating_and_exporting_onto_a_full_disk_leave_no_half_written_file(tiny_run, tmpfs, tmp_path, capsys):
    """Then, with room again, the same commands write the bytes of an evaluation and an export on a roomy disk."""
    copies = []
    for parent in (tmp_path / "roomy", tmpfs(128 * 1024)):  # the weights twice: 94 MB
        (parent / "run").mkdir(parents=True)  # one name for both: the report and the export name their run
        for name in ("config.json", "model.safetensors", "metrics.csv"):
            shutil.copyfile(tiny_run / name, parent / "run" / name)
        copies.append(parent)
    roomy, disk = copies
    onnx = pytest.importorskip("onnxruntime") is not None
    assert cli(capsys, "evaluate", roomy / "run")[0] == 0
    assert not onnx or cli(capsys, "export", roomy / "run", roomy / "model.onnx", "--format", "onnx")[0] == 0
    target = disk / "run"
    filler = fill(disk, 8)
    out = cli(capsys, "evaluate", target)
    full_disk_line(out, target, r"needs about [\d.]+ [KM]B")
    no_leftovers(disk)
    assert not [n for n in ("confusion.png", "per_class.csv", "evaluation.json", "report.html")
                if (target / n).exists() and (target / n).stat().st_size == 0]  # no empty, half-written report
    out = cli(capsys, "export", target, disk / "model.onnx", "--format", "onnx")
    full_disk_line(out, disk, r"writing model.onnx; needs about 4\d\.\d MB for the model's weights")
    assert not (disk / "model.onnx").exists()
    no_leftovers(disk)
    filler.unlink()
    assert cli(capsys, "evaluate", target)[0] == 0
    assert cli(capsys, "export", target, disk / "model.onnx", "--format", "onnx")[0] == 0
    assert digests(disk) == digests(roomy)  # every file of the run's report, and the ONNX file


def test_exporting_a_hugging_face_folder_onto_a_full_disk_is_one_line_and_a_rerun_completes(tmp_path, tmpfs,
                                                                                           capsys):
    """`export --format hf` writes its folder through a hidden temporary folder; a full disk there is the one line
    of the ONNX export (the weights' size), and once there is room the same command writes the roomy disk's bytes."""
    pytest.importorskip("transformers")
    from hf_tiny import train_tiny_hf_run

    run = train_tiny_hf_run(tmp_path).run  # from a tiny VideoMAE checkpoint written here: no download
    assert cli(capsys, "export", run, tmp_path / "reference", "--format", "hf")[0] == 0
    disk = tmpfs(1024)
    filler = fill(disk, 8)  # the weights take 0.1 MB
    dest = disk / "hf"
    out = cli(capsys, "export", run, dest, "--format", "hf")
    line = full_disk_line(out, disk, r"\(writing hf; needs about 0\.1 MB for the model's weights, \d+ KB free\)")
    assert out[1].splitlines() == [line], out[1]  # before: a SafetensorError traceback, after a progress bar
    no_leftovers(disk)
    assert [p.name for p in disk.iterdir()] == ["filler"]  # no dest, no hidden temporary folder
    filler.unlink()
    assert cli(capsys, "export", run, dest, "--format", "hf")[0] == 0
    assert digests(dest) == digests(tmp_path / "reference")  # config, processor config and weights, byte for byte
    assert {p.stat().st_mode & 0o777 for p in dest.iterdir()} == {0o666 & ~_umask()}  # the weights not 0600


def test_a_lock_kept_by_the_worker_of_a_killed_run_says_so(videos, tmp_path):
    """The main process killed alone (kill -9 PID): a worker it forked keeps the lock until its current video is
    done; the next run says that, not that a dead pid is writing."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    dest = tmp_path / "frames"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path\n"
                               "from vidseq.files import exclusive\n"
                               f"with exclusive({str(dest)!r}, what='frames folder'):\n"
                               f"    Path({str(tmp_path / '.frames.lock.pid')!r}).write_text('{dead.pid}')\n"
                               "    print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        out = vidseq("extract", videos, dest, "--workers", "1")
        assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
        assert f"is still locked by a worker of vidseq frames folder run {dead.pid}, which was killed" in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_a_full_disk_met_appending_to_the_manifest_names_its_folder(tmp_path, monkeypatch):
    """A patched writer: the manifest's append (a write to an open file names no file of its own) hits ENOSPC."""
    import errno

    from vidseq.errors import storage_fault
    from vidseq.extract.records import Journal, VideoRecord

    journal = Journal(tmp_path / "manifest.csv", [])

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal._file, "flush", full)
    with pytest.raises(OSError) as e:
        journal.append(VideoRecord("C/a.avi", "C", 3, 25.0, 32, 32, "done", "C/a"))
    assert storage_fault(e.value).startswith(f"{tmp_path}: no space left on the device (writing manifest.csv; ")
