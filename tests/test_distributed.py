"""Several processes: sharding, launch command, and real 2-process training on CPU (gloo on 127.0.0.1)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidseq.datasets.synth import SynthConfig, make_synth
from vidseq.errors import VidseqError
from vidseq.train import distributed

TRAIN = ["--model", "frame_avg", "--backbone", "resnet18", "--no-pretrained", "--size", "32", "--frames", "3",
         "--bs", "4", "--workers", "0"]
TIMEOUT = 240  # seconds for one 2-process run; the processes are killed after that

# A worker for torchrun: runs `vidseq <args>` and records every write, rename, removal or mkdir that this
# process makes under the run folder (Python audit events), so the test can tell which rank wrote what.
WORKER = r'''
import os, sys
run, log, args = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3:]
WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
seen = []

def inside(p):
    try:
        p = os.path.realpath(os.fsdecode(p))
    except TypeError:
        return None
    return p if p == run or p.startswith(run + os.sep) else None

def hook(event, a):
    if event == "open" and isinstance(a[2], int) and a[2] & WRITE or event in ("os.mkdir", "os.remove", "os.rmdir",
                                                                                 "shutil.rmtree"):
        p = inside(a[0])
    elif event == "os.rename":
        p = inside(a[1])
    else:
        return
    if p:
        seen.append(f"{event} {os.path.relpath(p, run)}")

sys.addaudithook(hook)
from vidseq.cli import main
code = main(args)
with open(log + "." + os.environ["RANK"], "w") as f:
    f.write("\n".join(seen))
sys.exit(code)
'''


def _run(cmd: list[str], *, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `cmd` in its own process group; on timeout kill that group (torchrun and its workers)."""
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", **(env or {})}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT"):
        env.pop(key, None)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... took over {TIMEOUT}s\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Tiny UCF-shaped data: 8 training and 27 validation clips (one test-list video removed, so the
    validation set does not split evenly over 2 processes and one rank's shard is padded)."""
    root = tmp_path_factory.mktemp("dist")
    make_synth(root, SynthConfig(classes=2, groups=9, clips=2, frames=8, width=32, height=32))
    (root / "videos" / "MoveLeft" / "v_MoveLeft_g01_c01.avi").unlink()
    return root / "videos"


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """Two CPU processes trained for 2 epochs under torchrun (gloo, rendezvous on 127.0.0.1)."""
    tmp = tmp_path_factory.mktemp("ddp")
    run, log, worker = tmp / "run", tmp / "writes", tmp / "worker.py"
    worker.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "--rdzv-id", "vidseq-test",
           "--local-addr", "127.0.0.1", str(worker), str(run), str(log),
           "train", str(data), *TRAIN, "--epochs", "2", "--out", str(run)]
    res = _run(cmd)
    assert res.returncode == 0, res.stderr[-4000:]
    return run, log, res


# ------------------------------------------------------------------------------------ two real processes
@pytest.mark.slow
def test_both_ranks_train_their_own_half_of_every_epoch(trained):
    _, _, res = trained
    for rank in (0, 1):  # 8 training clips, 4 per process and epoch
        assert f"vidseq: rank {rank} of 2 (cpu, gloo): trained 2 epoch(s) on 8 clips (4 per epoch)" in res.stderr
    assert res.stdout.count("run: ") == 1  # only rank 0 reports


@pytest.mark.slow
def test_only_rank0_writes_the_run_folder(trained):
    run, log, _ = trained
    rank0 = Path(f"{log}.0").read_text().splitlines()
    rank1 = Path(f"{log}.1").read_text().splitlines()
    assert rank1 == []
    written = {line.split()[1] for line in rank0}
    assert {"config.json", "model.safetensors", "metrics.csv", "history.png", "checkpoint/state.json",
            f"checkpoint/{'model.safetensors'}", "checkpoint/optimizer.safetensors"} <= written
    assert not list(run.rglob("*.tmp")) and not list(run.glob("*.pth"))
    assert [r["epoch"] for r in _metrics(run)] == ["1", "2"]


@pytest.mark.slow
def test_gathered_validation_equals_evaluating_the_saved_model_in_one_process(trained):
    from vidseq.evaluate import evaluate_run

    run, _, res = trained
    ev = evaluate_run(run, clips=1, device="cpu")
    assert len(ev.targets) == 27
    last = _metrics(run)[-1]
    loss = float(-np.log(ev.probs[np.arange(len(ev.targets)), ev.targets]).mean())
    # each of the 27 clips once: counting rank 1's padding clip twice would move both numbers
    assert float(last["accuracy"]) == pytest.approx(ev.top1, abs=1e-5)
    assert float(last["top5"]) == pytest.approx(ev.top5, abs=1e-5)
    assert float(last["valid_loss"]) == pytest.approx(loss, rel=1e-4)
    # the final learn.validate() (the table printed by rank 0) reports the same
    row = res.stdout.strip().splitlines()[-1].split()
    assert row[0] == "frame_avg" and float(row[2]) == pytest.approx(loss, abs=1e-4)
    assert row[3] == f"{ev.top1:.1%}"


@pytest.mark.slow
def test_gpus_option_launches_torchrun_and_resume_continues(trained, data, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    ck = run / "checkpoint" / "state.json"  # as if stopped after epoch 1 of 2
    ck.write_text(json.dumps({**json.loads(ck.read_text()), "epochs_done": 1}))
    first = (run / "metrics.csv").read_text().splitlines()[:2]
    (run / "metrics.csv").write_text("\n".join(first) + "\n")
    res = _run([sys.executable, "-m", "vidseq", "train", str(data), *TRAIN, "--gpus", "2", "--device", "cpu",
                "--out", str(run), "--resume"])
    assert res.returncode == 0, res.stderr[-4000:]
    for rank in (0, 1):
        assert f"vidseq: rank {rank} of 2 (cpu, gloo): trained 1 epoch(s) on 4 clips" in res.stderr
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[:2] == first
    assert json.loads(ck.read_text())["epochs_done"] == 2


# ------------------------------------------------------------------------------------------- in process
@pytest.fixture
def one_process_group(tmp_path, monkeypatch):
    """A gloo process group of one process over a file store (no network), for the sharding logic."""
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    yield
    torch.distributed.destroy_process_group()


def _dl(n: int, *, bs: int, shuffle: bool, drop_last: bool = False):
    from fastai.data.core import TfmdDL

    return TfmdDL(list(range(n)), bs=bs, shuffle=shuffle, drop_last=drop_last, num_workers=0)


def _items(dl) -> list[int]:
    return [int(x) for b in dl for x in b]


@pytest.mark.parametrize("n, world, bs", [(35, 2, 4), (36, 3, 5), (7, 4, 1), (100, 3, 8)])
def test_training_shards_are_disjoint_equal_and_cover_all_but_the_remainder(one_process_group, n, world, bs):
    ShardedDL = distributed.sharded_dl_class()
    dl = _dl(n, bs=bs, shuffle=True, drop_last=False)
    shards = [ShardedDL(dl, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        dl.rng.seed(epoch)
        seen = []
        for s in shards:
            dl.rng.seed(epoch)  # every rank gets the same order (rank 0's, broadcast in a real group)
            items = _items(s)
            assert len(items) == n // world and len(s) == math.ceil(n // world / bs)
            seen += items
        assert len(seen) == len(set(seen)) == n // world * world  # no clip twice in an epoch
    assert len({tuple(_items(shards[0])) for _ in range(3)}) > 1  # reshuffled each epoch


def test_validation_shards_pad_to_equal_length_and_cover_everything(one_process_group):
    ShardedDL = distributed.sharded_dl_class()
    dl = _dl(27, bs=4, shuffle=False)
    shards = [ShardedDL(dl, rank=r, world_size=2) for r in range(2)]
    parts = [_items(s) for s in shards]
    assert [len(p) for p in parts] == [14, 14] and [len(s) for s in shards] == [4, 4]
    assert parts[0] + parts[1] == list(range(27)) + [0]  # the one padding clip repeats the first


def test_a_shard_smaller_than_a_batch_is_a_clear_error(one_process_group):
    ShardedDL = distributed.sharded_dl_class()
    with pytest.raises(VidseqError, match="lower bs=4 or use fewer processes"):
        ShardedDL(_dl(10, bs=4, shuffle=True, drop_last=True), rank=0, world_size=3)


# -------------------------------------------------------------------------------------- launch and setup
def test_rank_info_reads_the_launcher_environment(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed.rank_info() == distributed.RankInfo(3, 1, 4)
    assert not distributed.is_rank0()
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key)
    assert distributed.rank_info() == distributed.RankInfo(0, 0, 1) and distributed.is_rank0()


def test_torchrun_command_drops_gpus_and_stays_on_loopback():
    cmd = distributed.torchrun_command(4, ["train", "d", "--gpus", "4", "--bs", "8", "--gpus=4", "--out", "r"])
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "4"
    assert cmd[cmd.index("--rdzv-endpoint") + 1] == "127.0.0.1:0"
    assert cmd[cmd.index("-m", 3):] == ["-m", "vidseq", "train", "d", "--bs", "8", "--out", "r"]


def test_launch_refuses_more_gpus_than_the_machine_has(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(VidseqError, match="has 1 GPU"):
        distributed.launch(2, ["train", "d", "--gpus", "2"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(VidseqError, match="leave out gpus=2"):
        distributed.launch(2, ["train", "d", "--gpus", "2", "--device", "cpu"])


def test_setup_outside_a_launcher_explains(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(VidseqError, match="torchrun"):
        distributed.setup("cpu")
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.setup("cpu").world_size == 1 and not torch.distributed.is_initialized()


def test_sync_batchnorm_is_for_gpus():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(VidseqError, match="sync_bn=True needs GPUs"):
        distributed.sync_batchnorm(model, "cpu")
    synced = distributed.sync_batchnorm(model, "cuda")  # conversion itself needs no GPU
    assert isinstance(synced[1], torch.nn.SyncBatchNorm) and synced[1].weight is model[1].weight


def test_helpers_are_plain_calls_in_one_process():
    assert distributed.broadcast_object({"lr": 1e-3}) == {"lr": 1e-3}
    assert distributed.on_rank0(lambda: 7) == 7 and distributed.rank0_first(lambda: 8) == 8
    distributed.barrier()
