"""Several processes, one per GPU: PyTorch DDP through fastai's distributed support, started by torchrun.

`torchrun --nproc_per_node N -m vidseq train ...` (or ``vidseq train --gpus N``, which runs that for you)
starts N processes; each reads its place from the launcher's environment (`rank_info`), joins the process
group (`setup`: nccl on GPUs, gloo on CPU) and trains inside `RankInfo.context`, fastai's
`DistributedTrainer` (DistributedDataParallel through HF accelerate) with these changes:

- every epoch the training set is shuffled on rank 0 and dealt out in equal shards, cut (not padded) to a
  multiple of the number of processes, so no clip is seen twice in an epoch;
- the validation set is padded to a multiple of the number of processes (fastai's `DistributedDL`) and
  predictions and targets of all ranks are gathered with the padding removed, so the loss and metrics
  count every validation clip exactly once;
- before validation the model's buffers (batch-norm statistics) are copied from rank 0, so every rank
  scores the model that rank 0 saves.
"""

from __future__ import annotations

import datetime
import functools
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from vidseq.errors import VidseqError
from vidseq.models import unwrap

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a rank waits for the others at a collective (rank 0 may build a clip cache or run lr_find alone).
TIMEOUT = datetime.timedelta(minutes=60)

_owned_group = False  # True when `setup` created the process group (and `teardown` should end it)


@dataclass(frozen=True)
class RankInfo:
    rank: int
    local_rank: int
    world_size: int

    def context(self, learn, *, sync_bn: bool = False, verbose: bool = True):
        """Train `learn` as one of `world_size` processes: DistributedDataParallel model, each rank its
        shard of every epoch, validation gathered over all ranks (see the module's docstring)."""
        return distributed_context(learn, sync_bn=sync_bn, verbose=verbose)


def rank_info() -> RankInfo:
    """This process's place among the training processes, from the launcher's environment variables."""
    env = os.environ
    return RankInfo(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))


def is_rank0() -> bool:
    """True in the process that writes the run folder (the only one without a launcher)."""
    return rank_info().rank == 0


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


# ------------------------------------------------------------------------------------------ process group
def setup(device: torch.device | str | None = None) -> RankInfo:
    """Join the launcher's process group: nccl when this process trains on a GPU, gloo otherwise.

    Does nothing in a single process or when the group exists already; on a GPU it also makes
    ``cuda:LOCAL_RANK`` this process's current device.
    """
    global _owned_group
    info = rank_info()
    if info.world_size <= 1 or torch.distributed.is_initialized():
        return info
    for key in ("MASTER_ADDR", "MASTER_PORT"):
        if key not in os.environ:
            raise VidseqError(f"WORLD_SIZE={info.world_size} but {key} is not set; start vidseq with torchrun "
                              "(torchrun --nproc_per_node N -m vidseq train ...) or vidseq train --gpus N")
    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise VidseqError(f"rank {info.rank} wants GPU {info.local_rank} but this machine has "
                              f"{torch.cuda.device_count()}; start at most that many processes per node")
        cuda = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(cuda)
        torch.distributed.init_process_group("nccl", timeout=TIMEOUT, device_id=cuda)
    else:
        torch.distributed.init_process_group("gloo", timeout=TIMEOUT)
    _owned_group = True
    return info


def teardown() -> None:
    """End the process group that `setup` created (one made by someone else is left alone)."""
    global _owned_group
    if _owned_group and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _owned_group = False


def barrier() -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if is_distributed():
        torch.distributed.barrier()


def broadcast_object(obj: T, *, src: int = 0) -> T:
    """`obj` as rank `src` has it, in every process (picklable objects)."""
    if not is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


@contextmanager
def alone() -> Iterator[None]:
    """Run fastai code in this process only: fastai reads WORLD_SIZE to decide on barriers and gathers."""
    old = os.environ.get("WORLD_SIZE")
    os.environ["WORLD_SIZE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = old


def on_rank0(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0 alone (as if it were the only process) and give its result to every rank.

    For work that must not run N times at once, e.g. fastai's `lr_find`, which saves and reloads the
    model in the run folder.
    """
    if not is_distributed():
        return fn()
    result = None
    if is_rank0():
        with alone():
            result = fn()
    return broadcast_object(result)


def rank0_first(fn: Callable[[], T]) -> T:
    """Run `fn` on rank 0, then on the first process of each other node, then on the rest.

    For files that later calls reuse, e.g. a clip cache: rank 0 writes it; on a shared filesystem the
    others find it complete, and on per-node disks each node writes its own copy once.
    """
    if not is_distributed():
        return fn()
    info = rank_info()
    result = fn() if info.rank == 0 else None
    barrier()
    if info.rank != 0 and info.local_rank == 0:
        result = fn()
    barrier()
    if info.local_rank != 0:
        result = fn()
    return result


def sync_batchnorm(model: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Batch norm synchronised across the processes (`nn.SyncBatchNorm`), which PyTorch has for GPUs only."""
    if torch.device(device).type != "cuda":
        raise VidseqError("{sync_bn} needs GPUs (PyTorch's SyncBatchNorm does not run on CPU); leave it out "
                          "on CPU, where each process keeps its own batch-norm statistics", params={"sync_bn": True})
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)


# ------------------------------------------------------------------------------------------------ launch
def strip_gpus(argv: Sequence[str]) -> list[str]:
    """`argv` without its ``--gpus N`` / ``--gpus=N`` options."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--gpus":
            skip = True
        elif not a.startswith("--gpus="):
            out.append(a)
    return out


def _device_option(argv: Sequence[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--device" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--device="):
            return a.split("=", 1)[1]
    return None


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The command `launch` runs: torchrun on this machine, `nproc` processes of ``vidseq <argv>``.

    The rendezvous is a c10d store on a free port of 127.0.0.1 (as ``--standalone``, kept to loopback).
    """
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:0", "--rdzv-id", uuid.uuid4().hex,
            "--local-addr", "127.0.0.1", "-m", "vidseq", *strip_gpus(argv)]


def launch(gpus: int, argv: Sequence[str]) -> int:
    """Run ``vidseq <argv>`` (``--gpus`` removed) as `gpus` processes under torchrun; returns its exit code.

    One process per GPU of this machine; with ``--device cpu`` in `argv`, that many CPU processes (gloo).
    """
    if gpus < 1:
        raise VidseqError("{gpus}: give a number of GPUs of at least 1", params={"gpus": gpus})
    if rank_info().world_size > 1:
        raise VidseqError("already one of several processes (WORLD_SIZE is set); leave out {gpus} under torchrun",
                          params={"gpus": gpus})
    device = _device_option(argv)
    if device is None or torch.device(device).type == "cuda":
        have = torch.cuda.device_count()
        if have < gpus:
            raise VidseqError(f"{{gpus}}: this machine has {have} GPU(s); ask for at most {have}, or add "
                              "{device} to train that many CPU processes", params={"gpus": gpus, "device": "cpu"})
    env = dict(os.environ)
    if sys.platform.startswith("linux") and os.path.isdir("/sys/class/net/lo"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo talks over loopback
    try:
        return subprocess.call(torchrun_command(gpus, argv), env=env)
    except KeyboardInterrupt:
        return 130


# ------------------------------------------------------------------------------------- fastai integration
def _fastai():
    """fastai's distributed module (it imports HF accelerate), loaded when first needed."""
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise VidseqError("training on several processes needs HF accelerate: pip install accelerate") from None
    from fastai import distributed

    return distributed


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


@functools.cache
def sharded_dl_class():
    """`ShardedDL`: fastai's `DistributedDL` with an exact shard size, no repeats in training, and a
    broadcast that works with gloo as well as nccl."""
    fd = _fastai()

    class ShardedDL(fd.DistributedDL):
        """One rank's part of a fastai DataLoader.

        Shuffled (training) loaders: rank 0's order, cut to a multiple of the world size, so no item comes
        twice in an epoch (at most world_size - 1 items sit out, a different few each epoch). Others
        (validation): fastai's padding by repeats, removed again by `to_detach` when gathering.
        """

        def __init__(self, dl, rank: int | None = None, world_size: int | None = None, device=None):
            super().__init__(dl, rank=rank, world_size=world_size, device=device)
            self.for_training = bool(getattr(dl, "shuffle", False))
            if self.for_training and len(self) == 0:
                per = (self.dl.n or 0) // self.world_size
                raise VidseqError(f"{self.dl.n} training clips give each of {self.world_size} processes {per}, "
                                  f"fewer than one batch of {self.dl.bs}; lower {{bs}} or use fewer processes",
                                  params={"bs": self.dl.bs})

        def _broadcast(self, t, rank):
            on_gpu = torch.distributed.get_backend() == "nccl"
            t = torch.tensor(t, dtype=torch.long, device="cuda" if on_gpu else "cpu")
            torch.distributed.broadcast(t, rank)
            return t.cpu().tolist()

        def _per_rank(self) -> int:
            n = self.dl.n or 0
            return n // self.world_size if self.for_training else _round_up(n, self.world_size) // self.world_size

        def __len__(self) -> int:
            per, bs = self._per_rank(), self.dl.bs
            if not bs:
                return per
            return per // bs + (0 if self.dl.drop_last or per % bs == 0 else 1)

        def get_idxs(self):
            if not self.for_training:
                return super().get_idxs()
            idxs = self._broadcast(list(self.dl.get_idxs()), 0)  # rank 0's shuffle for everyone
            per = len(idxs) // self.world_size
            self.n = self.n_padded = per * self.world_size
            return idxs[self.rank * per:(self.rank + 1) * per]

    return ShardedDL


def _set(cb, name: str, value) -> None:
    """Set a callback's attribute that shares its name with one of the Learner's (fastai warns otherwise)."""
    object.__setattr__(cb, name, value)


@functools.cache
def _trainer_class():
    fd = _fastai()
    from fastai.learner import AvgLoss, AvgMetric
    from fastai.metrics import AccumMetric
    from fastai.torch_core import find_bs

    ShardedDL = sharded_dl_class()

    class GatheredLoss(AccumMetric):
        """The validation loss over every clip once: the loss function on all ranks' gathered predictions."""

        def __init__(self, loss_func):
            def loss(preds, targs):
                return loss_func(preds.float(), targs)

            super().__init__(loss, flatten=False, name="loss")

    class DDPTrainer(fd.DistributedTrainer):
        """fastai's DistributedTrainer with `ShardedDL` loaders, exact gathered validation metrics and
        rank 0's buffers for validation; it counts what this rank trained on."""

        def __init__(self, sync_bn: bool = False, cpu: bool = False, **kwargs):
            super().__init__(sync_bn=sync_bn, cpu=cpu, mixed_precision="no", **kwargs)  # fastai does precision
            self.clips = self.epochs = 0
            self._saved = None

        def exact_metrics(self):
            """Average-per-batch metrics and loss become gathered ones (each validation clip counted once)."""
            learn = self.learn
            if self._saved is not None:
                return
            self._saved = (learn.metrics, learn.recorder.loss)
            learn.metrics = [AccumMetric(m.func, flatten=False, name=m.name) if type(m) is AvgMetric else m
                             for m in learn.metrics]
            if type(learn.recorder.loss) is AvgLoss:
                _set(learn.recorder, "loss", GatheredLoss(learn.loss_func))

        def restore_metrics(self):
            if self._saved is not None:
                self.learn.metrics = self._saved[0]
                _set(self.learn.recorder, "loss", self._saved[1])
                self._saved = None

        def _wrap_dl(self, dl):
            return dl if isinstance(dl, ShardedDL) else ShardedDL(dl)

        def before_validate(self):
            super().before_validate()
            for b in unwrap(self.learn.model).buffers():  # batch-norm statistics as rank 0 has them
                torch.distributed.broadcast(b.data, 0)

        def after_batch(self):
            if self.training:
                self.clips += find_bs(self.learn.yb)

        def after_train(self):
            self.epochs += 1

    return DDPTrainer


@contextmanager
def distributed_context(learn, *, sync_bn: bool = False, verbose: bool = True) -> Iterator[Any]:
    """Adapt `learn` to train as one of several processes (see the module's docstring); undone on exit,
    which also ends the process group that `setup` created. Outside a launcher it changes nothing."""
    dls_device = getattr(learn.dls, "device", None)
    info = setup(dls_device)
    if info.world_size <= 1:
        yield learn
        return
    device = torch.device(dls_device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cb = _trainer_class()(sync_bn=sync_bn, cpu=device.type != "cuda")
    learn.add_cb(cb)
    cb.exact_metrics()
    try:
        yield learn
        if verbose:
            per = f" ({cb.clips // cb.epochs} per epoch)" if cb.epochs else ""
            log.info("rank %d of %d (%s, %s): trained %d epoch(s) on %d clips%s", info.rank, info.world_size,
                     device.type, torch.distributed.get_backend(), cb.epochs, cb.clips, per)
    finally:
        cb.restore_metrics()
        learn.remove_cb(cb)
        teardown()
