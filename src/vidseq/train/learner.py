"""Training: a fastai Learner with the model's splitter, mixed precision, checkpoints and resume.

>>> result = train(TrainConfig(data="demo/frames", model="cnn_lstm", pretrained=False, out="runs/lstm"))
...                                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import fastai.callback.fp16  # noqa: F401 - patches Learner.to_fp16 / to_bf16
import fastai.callback.schedule  # noqa: F401 - patches Learner.fit_one_cycle / lr_find
import torch
from fastai.learner import Learner
from fastprogress.fastprogress import IN_NOTEBOOK

from vidseq.clips import ClipCache, build_cache, dataloaders_from_items, default_workers
from vidseq.datasets import load_items
from vidseq.errors import DatasetError, VidseqError, warn_data
from vidseq.files import exclusive, output_folder, save_figure
from vidseq.models import Recipe, create_model, input_stats, is_model, model_recipe, splitter, unwrap
from vidseq.runs import (
    CHECKPOINT,
    CONFIG,
    EVALUATION_FILES,
    METRICS,
    WEIGHTS,
    ClipConfig,
    DataConfig,
    RunConfig,
    TrainSettings,
    data_source,
    library_versions,
    load_optimizer,
    load_weights,
    plot_history,
    save_weights,
    write_config,
)
from vidseq.scores import best_threshold
from vidseq.train.callbacks import EpochTable, LogProgress, RunCheckpoint
from vidseq.train.config import TrainConfig, TrainResult
from vidseq.train.distributed import (
    broadcast_object,
    is_rank0,
    on_rank0,
    rank0_first,
    rank_info,
    setup,
    sync_batchnorm,
)
from vidseq.train.folder import run_folder
from vidseq.train.optim import adamw, pick_device, resolve_precision, task_for
from vidseq.train.resume import resume_state, resumed_config
from vidseq.train.tracking import check_tracker, log_summary, tracking_callbacks

log = logging.getLogger(__name__)


def build_dataloaders(cfg: TrainConfig, itemset, *, device: torch.device, run: Path | None = None,
                      recipe: Recipe = Recipe()):
    """The run's DataLoaders: items and split from `itemset`, clip settings from `cfg`, the input statistics
    and evaluation crop from the model's `recipe`."""

    verbose = cfg.verbose and is_rank0()
    cache = None
    if cfg.cache_dir is not None:
        cache = Path(cfg.cache_dir)  # checked by `existing_cache` before the run folder changed
    elif cfg.cache:
        cache_dir = Path(run or ".") / "cache"
        cache = rank0_first(lambda: build_cache([it.path for it in itemset.items], cache_dir,
                                                labels=[it.label for it in itemset.items],
                                                size=round(cfg.size * 1.15), workers=cfg.workers, progress=verbose))
    return dataloaders_from_items(itemset, bs=cfg.bs, image_size=cfg.size, seq_len=cfg.frames, sampler=cfg.sampler,
                                  augment=cfg.augment, flip=cfg.flip, workers=loader_workers(cfg.workers, device),
                                  device=device, seed=cfg.seed, cache=cache, verbose=verbose,
                                  normalize=recipe.stats, crop_pct=recipe.crop_pct, decode_device=cfg.decode_device)


def existing_cache(folder: str | Path, itemset, *, size: int, verbose: bool = True) -> Path:
    """Cache folder `folder` (built by `build_cache`, ``vidseq cache``) for the items of `itemset`: it must hold some
    of them (a cache is keyed by the items' absolute paths); those it lacks are decoded from their files, and said
    so, as is a cache of frames smaller than the training `size`."""
    try:
        cache = ClipCache(folder)  # one line when it is not a cache
    except (ValueError, KeyError, TypeError) as e:  # a damaged index.json
        raise DatasetError(path=folder, reason=f"not a readable clip cache ({e}); build it again with 'vidseq "
                           "cache'") from None
    paths = [it.path for it in itemset.items]
    held = sum(p in cache for p in paths)
    if not held:
        raise DatasetError(path=folder, reason=f"holds none of the {len(paths)} items of {itemset.root} (a cache is "
                           "keyed by the items' absolute paths); build one for this data with 'vidseq cache DATA "
                           "DEST'")
    if verbose:
        log.info("clips of %d of %d items from the cache %s%s", held, len(paths), folder,
                 f"; the other {len(paths) - held} are decoded from their files" if held < len(paths) else "")
        if cache.size < size:
            warn_data(f"{folder}: its frames are {cache.size} px, smaller than the training size {size}: clips are "
                      f"scaled up; build it with --size {round(size * 1.15)} for sharp clips")
    return Path(folder)


def loader_workers(workers: int | None, device: torch.device) -> int:
    """DataLoader worker processes when not given: one per core (at most 16) when a GPU computes.

    On a CPU the model's own threads need the cores: decoding in worker processes beside them
    oversubscribes a small machine (the compute threads then stall at every barrier), and decoding
    costs little next to the model there. So no workers up to 4 cores, then a quarter of them.
    """
    if workers is not None:
        return workers
    cores = default_workers()
    if device.type == "cuda":
        return cores
    return 0 if cores <= 4 else cores // 4


def native_clip(cfg: TrainConfig, recipe: Recipe) -> TrainConfig:
    """`cfg` with the clip shape a model was made for (a checkpoint's frames and size) where not given."""
    native = {k: v for k, v in (("frames", recipe.frames), ("size", recipe.size)) if v and not cfg.is_given(k)}
    if native:
        log.info("%s takes clips of %s", cfg.model, ", ".join(f"{k} {v}" for k, v in native.items()))
    return dataclasses.replace(cfg, **native)


def run_config(cfg: TrainConfig, model: torch.nn.Module, itemset, recipe: dict[str, Any]) -> RunConfig:
    """What the run's ``config.json`` records: the model, classes, data, clip settings and schedule."""
    return RunConfig(
        model=unwrap(model).vidseq_config, classes=list(itemset.classes),
        data=DataConfig(source=data_source(cfg.data), root=str(Path(itemset.root).resolve()), kind=itemset.kind,
                        split=itemset.split, train=len(itemset.train_items()), valid=len(itemset.valid_items()),
                        valid_pct=cfg.valid_pct),
        clip=ClipConfig(frames=cfg.frames, size=cfg.size, sampler=cfg.sampler, normalize=recipe["stats"],
                        crop_pct=recipe["crop_pct"]),
        train=TrainSettings(bs=cfg.bs, epochs=recipe["epochs"], freeze_epochs=recipe["freeze_epochs"],
                            lr=recipe["lr"], precision=recipe["precision"], pretrained=cfg.pretrained,
                            augment=cfg.augment, flip=cfg.flip, seed=cfg.seed, compile=cfg.compile),
        versions=library_versions(), multi_label=itemset.multi_label)


def train(cfg: TrainConfig) -> TrainResult:
    """Train a model on a dataset and write a run folder (see `vidseq.runs`); resumable. The folder is `cfg.out`,
    or runs/MODEL (runs/MODEL-2, ... when that holds a run); a `cfg.out` that holds a run is refused in one line
    unless `cfg.resume` or `cfg.overwrite` (see `vidseq.train.folder`). A second training into the same run folder
    while one runs refuses in one line."""
    if not is_rank0():  # the folder is rank 0's choice, broadcast once the processes are joined
        return _train(cfg, None)
    run = run_folder(cfg)
    with exclusive(run, what="training"):
        return _train(cfg, run)


def _train(cfg: TrainConfig, run: Path | None) -> TrainResult:
    from fastai.torch_core import set_seed

    if not is_model(cfg.model):
        model_recipe(cfg.model)  # the registry's one line: unknown, or an optional model not installed
    check_tracker(cfg.log)
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
    if cfg.cache and cfg.cache_dir is not None:
        raise VidseqError("choose {cache} (build a cache in the run folder) or {cache_dir} (load clips from one "
                          "built by 'vidseq cache'), not both", params={"cache": True, "cache_dir": "DEST"})
    run = broadcast_object(run) or run_folder(cfg)  # the last: a rank of its own without a process group
    if cfg.resume:
        saved, done = resume_state(run)
        cfg = resumed_config(cfg, saved)
    else:
        saved, done = None, 0
        cfg = native_clip(cfg, model_recipe(cfg.model))
    set_seed(cfg.seed)
    itemset = load_items(cfg.data, split=cfg.split, valid_pct=cfg.valid_pct, seed=cfg.seed)
    if len(itemset.classes) < 2:
        raise DatasetError(path=cfg.data, reason=f"needs at least two classes, found {len(itemset.classes)}")
    if not itemset.valid_items():
        raise DatasetError(path=cfg.data, reason=f"the validation split is empty (split {itemset.split})")
    if cfg.verbose and is_rank0():
        for w in itemset.warnings:
            warn_data(w)
    if cfg.cache_dir is not None:
        existing_cache(cfg.cache_dir, itemset, size=cfg.size, verbose=cfg.verbose and is_rank0())

    base = model_recipe(cfg.model)
    from_scratch = not cfg.pretrained
    recipe = {
        "epochs": cfg.epochs if cfg.epochs is not None else base.epochs,
        "freeze_epochs": 0 if from_scratch else (cfg.freeze_epochs if cfg.freeze_epochs is not None
                                                  else base.freeze_epochs),
        "lr": cfg.lr if isinstance(cfg.lr, float) else base.lr_for(cfg.bs),
        "layer_decay": base.layer_decay,
        "precision": precision,
        "stats": input_stats(cfg.model, cfg.backbone),
        "crop_pct": base.crop_pct,
    }
    if saved is not None:  # a resumed run keeps its own schedule
        recipe.update(epochs=saved.train.epochs, freeze_epochs=saved.train.freeze_epochs, lr=saved.train.lr)

    model_kwargs = dict(cfg.model_kwargs)
    if saved is not None:
        model = create_model(**{**saved.model, "pretrained": False})
    else:
        model = create_model(cfg.model, len(itemset.classes), seq_len=cfg.frames, image_size=cfg.size,
                             backbone=cfg.backbone, pretrained=cfg.pretrained, **model_kwargs)
    if is_rank0():  # only now: a run that cannot start (bad data or option, no weights) changes no folder
        output_folder(run, what="run folder")
        if saved is None and (run / CONFIG).is_file():  # a new run over an old one (overwrite): its results would stay
            shutil.rmtree(run / CHECKPOINT, ignore_errors=True)
            for stale in (METRICS, *EVALUATION_FILES):
                (run / stale).unlink(missing_ok=True)
    dls = build_dataloaders(cfg, itemset, device=device, run=run,
                            recipe=Recipe(stats=recipe["stats"], crop_pct=recipe["crop_pct"]))
    if cfg.sync_bn and dist.world_size > 1:
        model = sync_batchnorm(model, device)
    loss, metric_fns, metric_names = task_for(len(itemset.classes), multi_label=itemset.multi_label)
    learn = Learner(dls, model, loss_func=loss, metrics=metric_fns,
                    splitter=splitter, opt_func=adamw(device), path=run, model_dir=".")
    if precision in ("bf16", "fp16"):
        learn.to_bf16() if precision == "bf16" else learn.to_fp16()
    bars = [cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"]
    if not cfg.verbose or not is_rank0():
        learn.remove_cbs(bars)
        learn.logger = _quiet
    elif not sys.stdout.isatty() and not IN_NOTEBOOK:  # a log file or a pipe: lines, not bars
        learn.remove_cbs(bars)
        learn.add_cb(LogProgress())

    if saved is None and cfg.lr == "auto":
        recipe["lr"] = on_rank0(lambda: _find_lr(learn, run, freeze=recipe["freeze_epochs"] > 0))
    config = run_config(cfg, model, itemset, recipe)
    if is_rank0():
        write_config(run, config)
        learn.add_cbs(tracking_callbacks(cfg.log, run, name=run.name, config=config.to_dict()))
    if cfg.compile:
        learn.model = torch.compile(learn.model)

    total = recipe["freeze_epochs"] + recipe["epochs"]
    start = time.time()
    ctx = dist.context(learn, verbose=cfg.verbose) if dist.world_size > 1 else contextlib.nullcontext(learn)
    with ctx:
        _fit(learn, run, recipe, done=done, resume=saved is not None, device=device, rank0=is_rank0())
        seconds = time.time() - start
        values = learn.validate()  # under several processes: gathered over all ranks, each clip once
    metrics = {k: float(v) for k, v in zip(["valid_loss", *metric_names], values)}
    if is_rank0():
        if itemset.multi_label:  # the decision threshold the validation set supports best, kept with the run
            probs, targets = learn.get_preds(ds_idx=1)
            config = dataclasses.replace(config, threshold=best_threshold(probs.numpy(), targets.numpy()))
            write_config(run, config)
        plot_history(run)
        save_weights(learn.model, run / WEIGHTS)
        log_summary(cfg.log, run, learn, list(itemset.classes), step=total, multi_label=itemset.multi_label)
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
                            cbs=[RunCheckpoint(run, epoch_offset=0, phase="frozen", rank0=rank0), EpochTable(0)])
        resume = False
    if ep and done < fe + ep:
        phase_done = max(0, done - fe)
        if fe:
            learn.unfreeze()
            lrs = slice(lr / 2 / 100, lr / 2)
            div = 5.0
            if recipe.get("layer_decay"):  # group i of n: lr x decay^(n-1-i), fastai's geometric spread
                lrs = slice(lr * recipe["layer_decay"] ** (len(learn.opt.param_lists) - 1), lr)
        else:
            learn.create_opt()
            lrs, div = lr, 25.0
        if resume and phase_done == 0 and done == fe and fe:
            load_weights(learn.model, ck / WEIGHTS)  # the frozen phase ended; its optimiser state is not carried
        else:
            restore(phase_done)
        learn.fit_one_cycle(ep, lrs, div=div, pct_start=0.3 if fe else 0.25, start_epoch=phase_done,
                            cbs=[RunCheckpoint(run, epoch_offset=fe, phase="main", rank0=rank0), EpochTable(fe)])


def _find_lr(learn: Learner, run: Path, *, freeze: bool) -> float:
    """Run fastai's `lr_find`, save its plot as ``lr_find.png`` and return the valley suggestion."""
    from fastai.callback.schedule import valley
    from matplotlib.figure import Figure

    if freeze:
        learn.freeze()
    res = learn.lr_find(suggest_funcs=(valley,), show_plot=False)
    rec = learn.recorder  # fastai's plot_lr_find, drawn on a Figure instead of pyplot's current one
    lrs, losses = rec.lrs[:-5] if len(rec.lrs) > 5 else rec.lrs, [float(x) for x in rec.losses]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.plot(lrs, losses[:len(lrs)])
    ax.plot(res.valley, losses[min(range(len(lrs)), key=lambda i: abs(lrs[i] - res.valley))], "ro", label="valley")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    save_figure(fig, run / "lr_find.png", dpi=90)
    if freeze:
        learn.unfreeze()
    learn.opt = None
    return float(res.valley)
