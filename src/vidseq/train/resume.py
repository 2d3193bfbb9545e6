"""Resuming an interrupted run: what it saved, and the settings it resumes with."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from vidseq.errors import ModelError, VidseqError
from vidseq.models.weights import one_line
from vidseq.runs import CHECKPOINT, CONFIG, WEIGHTS, RunConfig, data_source
from vidseq.train.config import TrainConfig


def resume_state(run: Path) -> tuple[RunConfig, int]:
    """The saved config and the epochs done of an interrupted run, or one line saying why it cannot resume."""
    state_file = run / CHECKPOINT / "state.json"
    if not state_file.is_file():
        raise VidseqError(path=run, reason=f"nothing to resume (no {CHECKPOINT}/state.json); train with {{resume}}",
                          params={"resume": False})
    again = "train with {resume} to start over"
    no_resume = {"resume": False}
    for needed in (run / CONFIG, run / CHECKPOINT / WEIGHTS, run / CHECKPOINT / "optimizer.safetensors"):
        if not needed.is_file():
            raise VidseqError(path=run, reason=f"cannot resume, {needed.relative_to(run)} is missing; {again}",
                              params=no_resume)
    try:
        saved = RunConfig.from_dict(json.loads((run / CONFIG).read_text()), source=str(run / CONFIG))
        done = json.loads(state_file.read_text())["epochs_done"]
    except (ValueError, KeyError, TypeError, ModelError) as e:  # also JSONDecodeError and UnicodeDecodeError
        raise VidseqError(path=run, reason=f"cannot resume, its {CONFIG} or {CHECKPOINT}/state.json is damaged "
                          f"({one_line(e)}); {again}", params=no_resume) from None
    total = saved.train.freeze_epochs + saved.train.epochs
    if not isinstance(done, int) or not 0 <= done <= total:
        raise VidseqError(path=run,
                          reason=f"cannot resume, {CHECKPOINT}/state.json has no usable epoch count; {again}",
                          params=no_resume)
    if done == total:
        raise VidseqError(path=run, reason=f"finished all its {total} epochs, nothing to resume; train with {{resume}} "
                          "to train it again", params=no_resume)
    return saved, done


def resumed_config(cfg: TrainConfig, saved: RunConfig) -> TrainConfig:
    """`cfg` with the interrupted run's own settings: a run resumes as it started. A setting given on the
    command line that differs from the run's (and from the default) is refused, not silently dropped."""
    model, train = saved.model, saved.train
    ours = {"model": model["name"], "frames": saved.clip.frames, "size": saved.clip.size, "sampler": saved.clip.sampler,
            "bs": train.bs, "pretrained": train.pretrained, "augment": train.augment, "flip": train.flip,
            "seed": train.seed, "precision": train.precision, "split": saved.data.split,
            "valid_pct": saved.data.valid_pct,
            "backbone": model.get("backbone")}
    options = {k: v for k, v in model.items() if k not in ("name", "n_classes", "seq_len", "image_size", "backbone")}
    checked = {**ours, "lr": train.lr, "epochs": train.epochs}
    # the precision is kept resolved: "auto" never clashes
    given = {k for k in checked if cfg.is_given(k) and (cfg.given is not None or k != "precision")}
    differ = {k: getattr(cfg, k) for k, v in checked.items() if k in given and getattr(cfg, k) != v}
    clash = [f"{{{k}}} (the run's: {checked[k]})" for k in differ]
    clash += [f"model option {k}={v!r} (the run's: {options.get(k)!r})" for k, v in cfg.model_kwargs.items()
              if options.get(k) != v]
    if data_source(cfg.data) != data_source(saved.data.source):
        clash.append(f"data {cfg.data} (the run's: {saved.data.source})")
    if clash:
        raise VidseqError(f"cannot resume with other settings than the run's: {'; '.join(clash)}; drop them, or "
                          "train with {resume} to start over", params={**differ, "resume": False})
    return dataclasses.replace(cfg, **ours, model_kwargs=options)
