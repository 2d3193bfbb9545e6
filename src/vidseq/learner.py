"""Training: a fastai Learner with the model's splitter, mixed precision, checkpoints and resume.

>>> result = train(TrainConfig(data="demo/frames", model="cnn_lstm", pretrained=False, out="runs/lstm"))
...                                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import fastai.callback.fp16  # noqa: F401 - patches Learner.to_fp16 / to_bf16
import fastai.callback.schedule  # noqa: F401 - patches Learner.fit_one_cycle / lr_find
import torch
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy, top_k_accuracy
from fastai.optimizer import OptimWrapper, detuplify_pg, pytorch_hp_map

from vidseq.errors import DatasetError, VidseqError
from vidseq.files import atomic_write_text, output_folder
from vidseq.models.weights import one_line
from vidseq.runs import (
    CHECKPOINT,
    CONFIG,
    WEIGHTS,
    library_versions,
    load_optimizer,
    load_weights,
    save_optimizer,
    save_weights,
)

#: Per model: (learning rate, epochs) used when not given. Pretrained backbones are fine-tuned
#: (one frozen epoch, then the given epochs unfrozen); models from scratch run one cycle.
RECIPES: dict[str, dict[str, Any]] = {
    "frame_avg": {"lr": 2e-3, "epochs": 8, "freeze_epochs": 1},
    "cnn_lstm": {"lr": 2e-3, "epochs": 8, "freeze_epochs": 1},
    "tsm": {"lr": 2e-3, "epochs": 8, "freeze_epochs": 1},
    "r2plus1d_18": {"lr": 1e-3, "epochs": 8, "freeze_epochs": 1},
    "timesformer": {"lr": 5e-4, "epochs": 12, "freeze_epochs": 0},
    "timesformer_lucidrains": {"lr": 5e-4, "epochs": 12, "freeze_epochs": 0},
}
DEFAULT_RECIPE = {"lr": 1e-3, "epochs": 8, "freeze_epochs": 1}


@dataclass
class TrainConfig:
    """Everything `train` needs; also what the CLI's `vidseq train` options fill in."""

    data: str
    model: str = "frame_avg"
    out: str | None = None
    frames: int = 5
    size: int = 64
    bs: int = 32
    epochs: int | None = None
    lr: float | str | None = None  # a float, "auto" (lr_find) or None (the model's recipe)
    sampler: str = "random"
    split: str = "auto"
    precision: str = "auto"  # auto, bf16, fp16, fp32
    pretrained: bool = True
    backbone: str | None = None
    workers: int | None = None
    cache: bool = False
    compile: bool = False
    resume: bool = False
    augment: bool = True
    flip: bool = False
    freeze_epochs: int | None = None
    seed: int = 0
    device: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sync_bn: bool = False
    verbose: bool = True
    #: the settings the user gave explicitly (the command line fills it in); None: those that differ from
    #: the defaults. A resumed run refuses a given setting that differs from the run's own.
    given: frozenset[str] | None = None


#: What `vidseq evaluate` writes into a run folder: a new training run in that folder removes them.
EVALUATION_FILES = ("confusion.png", "per_class.csv", "evaluation.json", "report.html")


@dataclass
class TrainResult:
    run: Path
    metrics: dict[str, float]
    epochs: int
    seconds: float


class FastaiAdamW(OptimWrapper):
    """fastai's default `Adam` on PyTorch's AdamW: the same update, fused into one kernel on GPUs.

    fastai's `Adam` (betas 0.9/0.99, eps 1e-5, decoupled weight decay 0.01 that spares normalisation layers
    and biases) runs several small tensor operations per parameter from Python; on an H200, frame_avg's
    Learner step with it (ResNet-34, 64 px, bs 32) took 34 ms, against 18 ms for the same model's plain
    PyTorch step with AdamW at twice the resolution. Here PyTorch's AdamW takes the step and the weight
    decay is applied just before it, to the parameters fastai marks for it (`do_wd`), as fastai does.
    fastai's schedules (one-cycle learning rate and momentum), `freeze` and discriminative learning rates
    work through `OptimWrapper`; `wd` is the fastai hyper-parameter name of the decay.
    """

    def __init__(self, params, *, lr: float = 1e-3, mom: float = 0.9, sqr_mom: float = 0.99, eps: float = 1e-5,
                 wd: float = 0.01, fused: bool = False) -> None:
        super().__init__(params, opt=torch.optim.AdamW, lr=lr, betas=(mom, sqr_mom), eps=eps, weight_decay=0.0,
                         fused=fused)
        for group in self.opt.param_groups:
            group["decoupled_wd"] = wd
        hp_map = {**pytorch_hp_map, "weight_decay": "torch_wd", "decoupled_wd": "wd"}
        self.fwd_map = {k: hp_map.get(k, k) for k in detuplify_pg(self.opt.param_groups[0])}
        self.bwd_map = {v: k for k, v in self.fwd_map.items()}
        self.opt.register_step_pre_hook(self._weight_decay)

    @torch.no_grad()
    def _weight_decay(self, opt, args, kwargs) -> None:
        for group in opt.param_groups:
            if group["decoupled_wd"]:
                decay = [p for p in group["params"] if p.grad is not None and self.state[p].get("do_wd", True)]
                if decay:
                    torch._foreach_mul_(decay, 1 - group["lr"] * group["decoupled_wd"])


def adamw(device: torch.device):
    """The optimiser function `train` gives fastai's Learner: `FastaiAdamW`, fused on GPUs."""
    return partial(FastaiAdamW, fused=device.type == "cuda")


def pick_device(device: str | None = None) -> torch.device:
    """The device to train on: `device` ("cpu", "cuda", "cuda:N"), or a GPU when there is one."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise VidseqError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise VidseqError(f"device {device}: vidseq trains on cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise VidseqError(f"device {device}: no CUDA GPU is usable here; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise VidseqError(f"device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU."""
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise VidseqError(f"unknown precision {precision!r}; choose auto, bf16, fp16 or fp32")
    if device.type != "cuda":
        return "fp32"  # fastai's mixed precision drives CUDA autocast only
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def top5_for(n_classes: int):
    k = min(5, n_classes)

    def top5(inp, targ):
        return top_k_accuracy(inp, targ, k=k)

    top5.__name__ = "top5"
    return top5


class LogProgress(Callback):
    """Training progress for a log (stdout not a terminal), in place of fastai's progress bars, whose
    carriage returns would fill the file: the epoch table on stdout as fastai prints it, and a line on
    stderr every `every` seconds (epoch, batch, clips/s, time left in the epoch)."""

    order = 60  # where fastai's ProgressCallback runs: after the Recorder has its names and values

    def __init__(self, every: float = 30.0) -> None:
        self.every = every

    def before_fit(self) -> None:
        from fastai.learner import noop  # what Learner.no_logging() puts in place

        self.last, self.old_logger = time.time(), None
        if self.learn.logger is noop:  # learn.validate() and other quiet loops: no table
            return
        self.old_logger, self.learn.logger = self.learn.logger, self._row
        self.widths: list[int] = []
        self._row(self.recorder.metric_names)

    def _row(self, log) -> None:
        cells = [f"{v:.6f}" if isinstance(v, float) else str(v) for v in log]
        if not self.widths:
            self.widths = [max(8, len(c)) for c in cells]
        print("  ".join(c.ljust(w) for c, w in zip(cells, self.widths)).rstrip(), flush=True)

    def before_train(self) -> None:
        self.start, self.clips = time.time(), 0

    def after_batch(self) -> None:
        if not self.training:
            return
        self.clips += len(self.learn.yb[0]) if self.learn.yb else 0
        now = time.time()
        if now - self.last >= self.every:
            done, total = self.iter + 1, self.n_iter
            took = now - self.start
            print(f"vidseq: epoch {self.epoch + 1}/{self.n_epoch}: batch {done}/{total}, "
                  f"{self.clips / max(took, 1e-9):.1f} clips/s, {took / done * (total - done):.0f} s left in the "
                  "epoch", file=sys.stderr, flush=True)
            self.last = now

    def after_fit(self) -> None:
        if self.old_logger is not None:
            self.learn.logger = self.old_logger


class RunCheckpoint(Callback):
    """After every completed epoch: weights, optimiser state and progress into ``checkpoint/``, the
    weights also as the run's ``model.safetensors``, and a row in ``metrics.csv``."""

    order = 65  # after the Recorder has logged the epoch

    def __init__(self, run: Path, *, epoch_offset: int, phase: str, rank0: bool = True):
        self.run, self.epoch_offset, self.phase = run, epoch_offset, phase
        self.rank0 = rank0
        self._skipped = False

    def before_epoch(self):
        self._skipped = False

    def after_cancel_epoch(self):
        self._skipped = True

    def after_epoch(self):
        if self._skipped or not self.rank0:
            return
        done = self.epoch_offset + self.epoch + 1
        ck = self.run / CHECKPOINT
        ck.mkdir(exist_ok=True)
        save_weights(self.learn.model, ck / WEIGHTS)
        save_optimizer(self.learn.opt, ck / "optimizer.safetensors")
        shutil.copyfile(ck / WEIGHTS, self.run / (WEIGHTS + ".tmp"))
        (self.run / (WEIGHTS + ".tmp")).replace(self.run / WEIGHTS)
        rec = self.learn.recorder
        names = [n for n in rec.metric_names if n != "epoch"]
        values = rec.log[1:] if len(rec.log) == len(rec.metric_names) else rec.log
        row = dict(zip(["epoch"] + names[: len(values)], [done] + list(values)))
        _append_metrics(self.run / "metrics.csv", row)
        # last: a run killed before this line redoes the epoch, so every epoch counted done is on record
        atomic_write_text(ck / "state.json", json.dumps({"epochs_done": done, "phase": self.phase}))


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) < int(row["epoch"])]
    rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def read_metrics(run: Path) -> list[dict[str, str]]:
    path = Path(run) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_history(run: Path) -> Path | None:
    """``history.png``: train and validation loss, and accuracy, per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run)
    if not rows:
        return None
    ep = [int(r["epoch"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, style in (("train_loss", "-o"), ("valid_loss", "-s")):
        if key in rows[0]:
            a.plot(ep, [float(r[key]) if r[key] not in ("", "None") else math.nan for r in rows], style, label=key)
    a.set_xlabel("epoch")
    a.set_title("loss")
    a.legend()
    for key in ("accuracy", "top5"):
        if key in rows[0]:
            b.plot(ep, [float(r[key]) for r in rows], "-o", label=key)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1.02)
    b.set_title("validation accuracy")
    b.legend()
    fig.tight_layout()
    out = Path(run) / "history.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def build_dataloaders(cfg: TrainConfig, itemset, *, device: torch.device, run: Path | None = None):
    """The run's DataLoaders: items and split from `itemset`, clip settings from `cfg`."""
    from vidseq.data import dataloaders_from_items
    from vidseq.distributed import is_rank0, rank0_first

    verbose = cfg.verbose and is_rank0()
    cache = None
    if cfg.cache:
        from vidseq.cache import build_cache

        cache_dir = Path(run or ".") / "cache"
        cache = rank0_first(lambda: build_cache([it.path for it in itemset.items], cache_dir,
                                                labels=[it.label for it in itemset.items],
                                                size=round(cfg.size * 1.15), workers=cfg.workers, progress=verbose))
    return dataloaders_from_items(itemset, bs=cfg.bs, image_size=cfg.size, seq_len=cfg.frames, sampler=cfg.sampler,
                                  augment=cfg.augment, flip=cfg.flip, workers=loader_workers(cfg.workers, device),
                                  device=device, seed=cfg.seed, cache=cache, verbose=verbose)


def loader_workers(workers: int | None, device: torch.device) -> int:
    """DataLoader worker processes when not given: one per core (at most 16) when a GPU computes.

    On a CPU the model's own threads need the cores: decoding in worker processes beside them
    oversubscribes a small machine (the compute threads then stall at every barrier), and decoding
    costs little next to the model there. So no workers up to 4 cores, then a quarter of them.
    """
    if workers is not None:
        return workers
    from vidseq.data import default_workers

    cores = default_workers()
    if device.type == "cuda":
        return cores
    return 0 if cores <= 4 else cores // 4


def data_source(data: str | Path) -> str:
    """How a run records its data: an absolute path (so the run can be evaluated from anywhere), or the
    dataset's name (ucf101, hmdb51)."""
    return str(Path(data).resolve()) if Path(data).exists() else str(data)


def resume_state(run: Path) -> tuple[dict[str, Any], int]:
    """The saved config and the epochs done of an interrupted run, or one line saying why it cannot resume."""
    state_file = run / CHECKPOINT / "state.json"
    if not state_file.is_file():
        raise VidseqError(f"{run}: nothing to resume (no {CHECKPOINT}/state.json); train without --resume")
    again = "train without --resume to start over"
    for needed in (run / CONFIG, run / CHECKPOINT / WEIGHTS, run / CHECKPOINT / "optimizer.safetensors"):
        if not needed.is_file():
            raise VidseqError(f"{run}: cannot resume, {needed.relative_to(run)} is missing; {again}")
    try:
        saved = json.loads((run / CONFIG).read_text())
        done = json.loads(state_file.read_text())["epochs_done"]
    except (ValueError, KeyError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise VidseqError(f"{run}: cannot resume, its {CONFIG} or {CHECKPOINT}/state.json is damaged "
                          f"({one_line(e)}); {again}") from None
    missing = [k for k in ("model", "data", "clip", "train") if not isinstance(saved, dict)
               or not isinstance(saved.get(k), dict)]
    if missing:
        raise VidseqError(f"{run}: cannot resume, its {CONFIG} lacks {', '.join(missing)}; {again}")
    total = saved["train"].get("freeze_epochs", 0) + saved["train"].get("epochs", 0)
    if not isinstance(done, int) or not 0 <= done <= total:
        raise VidseqError(f"{run}: cannot resume, {CHECKPOINT}/state.json has no usable epoch count; {again}")
    if done == total:
        raise VidseqError(f"{run}: finished all its {total} epochs, nothing to resume; train without --resume "
                          "to train it again")
    return saved, done


def resumed_config(cfg: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """`cfg` with the interrupted run's own settings: a run resumes as it started. A setting given on the
    command line that differs from the run's (and from the default) is refused, not silently dropped."""
    model = saved["model"]
    ours = {"model": model["name"], "frames": saved["clip"]["frames"], "size": saved["clip"]["size"],
            "sampler": saved["clip"]["sampler"], "bs": saved["train"]["bs"],
            "pretrained": saved["train"]["pretrained"], "augment": saved["train"].get("augment", True),
            "flip": saved["train"].get("flip", False), "seed": saved["train"].get("seed", 0),
            "precision": saved["train"].get("precision", "auto"), "split": saved["data"].get("split", "auto"),
            "backbone": model.get("backbone")}
    options = {k: v for k, v in model.items() if k not in ("name", "n_classes", "seq_len", "image_size", "backbone")}
    checked = {**ours, "lr": saved["train"].get("lr"), "epochs": saved["train"].get("epochs")}
    defaults = TrainConfig(data="")
    given = cfg.given if cfg.given is not None else {  # the precision is kept resolved: "auto" never clashes
        k for k in checked if k != "precision" and getattr(cfg, k) != getattr(defaults, k)}
    clash = [f"--{k.replace('_', '-')} {getattr(cfg, k)} (the run's: {v})" for k, v in checked.items()
             if k in given and getattr(cfg, k) != v]
    clash += [f"-o {k}={v!r} (the run's: {options.get(k)!r})" for k, v in cfg.model_kwargs.items()
              if options.get(k) != v]
    if data_source(cfg.data) != data_source(saved["data"]["source"]):
        clash.append(f"data {cfg.data} (the run's: {saved['data']['source']})")
    if clash:
        raise VidseqError(f"cannot resume with other settings than the run's: {'; '.join(clash)}; drop them, or "
                          "train without --resume to start over")
    return dataclasses.replace(cfg, **ours, model_kwargs=options)


def run_config(cfg: TrainConfig, model: torch.nn.Module, itemset, recipe: dict[str, Any]) -> dict[str, Any]:
    from vidseq.runs import unwrap

    return {
        "model": unwrap(model).vidseq_config,
        "classes": list(itemset.classes),
        "data": {"source": data_source(cfg.data), "root": str(Path(itemset.root).resolve()), "kind": itemset.kind,
                 "split": itemset.split,
                 "train": len(itemset.train_items()), "valid": len(itemset.valid_items())},
        "clip": {"frames": cfg.frames, "size": cfg.size, "sampler": cfg.sampler, "pad": "repeat",
                 "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
        "train": {"bs": cfg.bs, "epochs": recipe["epochs"], "freeze_epochs": recipe["freeze_epochs"],
                  "lr": recipe["lr"], "precision": recipe["precision"], "pretrained": cfg.pretrained,
                  "augment": cfg.augment, "flip": cfg.flip, "seed": cfg.seed, "compile": cfg.compile},
        "versions": library_versions(),
    }


def train(cfg: TrainConfig) -> TrainResult:
    """Train a model on a dataset and write a run folder (see `vidseq.runs`); resumable."""
    from fastai.torch_core import set_seed

    from vidseq.datasets import load_items
    from vidseq.distributed import is_rank0, on_rank0, rank_info, setup, sync_batchnorm
    from vidseq.models import create_model, list_models, splitter

    if cfg.model not in list_models():
        raise VidseqError(f"unknown model {cfg.model!r}; choose one of {', '.join(list_models())}")
    device = pick_device(cfg.device)
    dist = rank_info()
    if dist.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    setup(device)  # joins torchrun's process group (nccl on GPUs, gloo on CPU); nothing in one process
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch of a run has one clip shape
    precision = resolve_precision(cfg.precision, device)
    if isinstance(cfg.lr, float) and not 0 < cfg.lr < math.inf:
        raise VidseqError(f"learning rate must be positive, got {cfg.lr}")
    run = Path(cfg.out or f"runs/{cfg.model}")
    if cfg.resume:
        saved, done = resume_state(run)
        cfg = resumed_config(cfg, saved)
    else:
        saved, done = None, 0
    set_seed(cfg.seed)
    itemset = load_items(cfg.data, split=cfg.split, seed=cfg.seed)
    if len(itemset.classes) < 2:
        raise DatasetError(f"{cfg.data}: needs at least two classes, found {len(itemset.classes)}")
    if not itemset.valid_items():
        raise DatasetError(f"{cfg.data}: the validation split is empty (split {itemset.split})")
    if cfg.verbose and is_rank0():
        for w in itemset.warnings:
            print(f"vidseq: warning: {w}", file=sys.stderr)

    base = RECIPES.get(cfg.model, DEFAULT_RECIPE)
    from_scratch = not cfg.pretrained
    recipe = {
        "epochs": cfg.epochs if cfg.epochs is not None else base["epochs"],
        "freeze_epochs": 0 if from_scratch else (cfg.freeze_epochs if cfg.freeze_epochs is not None
                                                  else base["freeze_epochs"]),
        "lr": cfg.lr if isinstance(cfg.lr, float) else base["lr"],
        "precision": precision,
    }
    if saved is not None:  # a resumed run keeps its own schedule
        recipe.update({k: saved["train"][k] for k in ("epochs", "freeze_epochs", "lr")})

    model_kwargs = dict(cfg.model_kwargs)
    if saved is not None:
        model = create_model(**{**saved["model"], "pretrained": False})
    else:
        model = create_model(cfg.model, len(itemset.classes), seq_len=cfg.frames, image_size=cfg.size,
                             backbone=cfg.backbone, pretrained=cfg.pretrained, **model_kwargs)
    if is_rank0():  # only now: a run that cannot start (bad data or option, no weights) changes no folder
        output_folder(run, what="run folder")
        if saved is None and (run / CONFIG).is_file():  # a new run over an old one: its results would stay
            shutil.rmtree(run / CHECKPOINT, ignore_errors=True)
            for stale in ("metrics.csv", *EVALUATION_FILES):
                (run / stale).unlink(missing_ok=True)
    dls = build_dataloaders(cfg, itemset, device=device, run=run)
    if cfg.sync_bn and dist.world_size > 1:
        model = sync_batchnorm(model, device)
    learn = Learner(dls, model, loss_func=CrossEntropyLossFlat(), metrics=[accuracy, top5_for(len(itemset.classes))],
                    splitter=splitter, opt_func=adamw(device), path=run, model_dir=".")
    if precision in ("bf16", "fp16"):
        learn.to_bf16() if precision == "bf16" else learn.to_fp16()
    bars = [cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"]
    if not cfg.verbose or not is_rank0():
        learn.remove_cbs(bars)
        learn.logger = _quiet
    elif not sys.stdout.isatty():  # a log file or a pipe: lines, not bars
        learn.remove_cbs(bars)
        learn.add_cb(LogProgress())

    if saved is None and cfg.lr == "auto":
        recipe["lr"] = on_rank0(lambda: _find_lr(learn, run, freeze=recipe["freeze_epochs"] > 0))
    config = run_config(cfg, model, itemset, recipe)
    if is_rank0():
        atomic_write_text(run / CONFIG, json.dumps(config, indent=2) + "\n")
    if cfg.compile:
        learn.model = torch.compile(learn.model)

    total = recipe["freeze_epochs"] + recipe["epochs"]
    start = time.time()
    ctx = dist.context(learn, verbose=cfg.verbose) if dist.world_size > 1 else contextlib.nullcontext(learn)
    with ctx:
        _fit(learn, run, recipe, done=done, resume=saved is not None, device=device, rank0=is_rank0())
        seconds = time.time() - start
        values = learn.validate()  # under several processes: gathered over all ranks, each clip once
    names = ["valid_loss", "accuracy", "top5"]
    metrics = {k: float(v) for k, v in zip(names, values)}
    if is_rank0():
        plot_history(run)
        save_weights(learn.model, run / WEIGHTS)
    return TrainResult(run, metrics, total, seconds)


def _quiet(*args, **kwargs) -> None:
    """A logger that drops fastai's per-epoch lines (quiet runs and ranks other than 0)."""


def _fit(learn: Learner, run: Path, recipe: dict[str, Any], *, done: int, resume: bool, device, rank0: bool) -> None:
    """Freeze phase (pretrained backbones) then the main one-cycle phase, skipping epochs already done."""
    fe, ep, lr = recipe["freeze_epochs"], recipe["epochs"], recipe["lr"]
    ck = run / CHECKPOINT

    def restore(phase_done: int):
        if resume and phase_done > 0:
            load_weights(learn.model, ck / WEIGHTS)
            load_optimizer(learn.opt, ck / "optimizer.safetensors", device)

    if fe and done < fe:
        learn.freeze()
        restore(done)
        learn.fit_one_cycle(fe, slice(lr), pct_start=0.99, start_epoch=done,
                            cbs=RunCheckpoint(run, epoch_offset=0, phase="frozen", rank0=rank0))
        resume = False
    if ep and done < fe + ep:
        phase_done = max(0, done - fe)
        if fe:
            learn.unfreeze()
            lrs = slice(lr / 2 / 100, lr / 2)
            div = 5.0
        else:
            learn.create_opt()
            lrs, div = lr, 25.0
        if resume and phase_done == 0 and done == fe and fe:
            load_weights(learn.model, ck / WEIGHTS)  # the frozen phase ended; its optimiser state is not carried
        else:
            restore(phase_done)
        learn.fit_one_cycle(ep, lrs, div=div, pct_start=0.3 if fe else 0.25, start_epoch=phase_done,
                            cbs=RunCheckpoint(run, epoch_offset=fe, phase="main", rank0=rank0))


def _find_lr(learn: Learner, run: Path, *, freeze: bool) -> float:
    """Run fastai's `lr_find`, save its plot as ``lr_find.png`` and return the valley suggestion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fastai.callback.schedule import valley

    if freeze:
        learn.freeze()
    res = learn.lr_find(suggest_funcs=(valley,), show_plot=True)
    plt.savefig(run / "lr_find.png", dpi=90)
    plt.close("all")
    if freeze:
        learn.unfreeze()
    learn.opt = None
    return float(res.valley)
