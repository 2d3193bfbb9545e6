"""Which folder a training run writes: the one asked for (`TrainConfig.out`), or runs/MODEL, and runs/MODEL-2,
-3, ... (the first that holds no run) when that one is taken. A folder that holds a run is trained into again only
to continue it (`resume`) or replace it (`overwrite`): a finished run is never lost to a second `vidseq train`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from vidseq.errors import VidseqError
from vidseq.runs import CHECKPOINT, CONFIG, WEIGHTS, read_metrics
from vidseq.train.config import TrainConfig

log = logging.getLogger(__name__)


def default_run_folder(model: str) -> Path:
    """runs/MODEL; for a family's model (hf:org/name or hf:path/to/folder) runs/hf-name."""
    prefix, sep, ref = model.partition(":")
    return Path("runs") / (f"{prefix}-{Path(ref.rstrip('/')).name}" if sep else model)


def holds_run(folder: Path) -> bool:
    """Whether `folder` holds a training run that completed an epoch (its weights), finished or not. One that
    completed none (stopped by a full disk, a crash, Ctrl-C in its first epoch) holds nothing to lose: the same
    command trains into it again."""
    return (folder / WEIGHTS).is_file() or bool(_progress(folder)[2])


def run_folder(cfg: TrainConfig) -> Path:
    """The run folder `cfg` trains into; a VidseqError in one line when `cfg.out` holds a run that `cfg` neither
    resumes nor overwrites."""
    if cfg.resume and cfg.overwrite:
        raise VidseqError("choose {resume} (continue the run) or {overwrite} (replace it), not both",
                          params={"resume": True, "overwrite": True})
    if cfg.out:
        run = Path(cfg.out)
        if not (cfg.resume or cfg.overwrite) and holds_run(run):
            raise VidseqError(path=run, reason=_taken(run), params={"resume": True, "overwrite": True, "out": "DIR"})
        return run
    base = default_run_folder(cfg.model)
    if cfg.resume or cfg.overwrite or not holds_run(base):
        return base
    n = 2
    while holds_run(base.with_name(f"{base.name}-{n}")):
        n += 1
    run = base.with_name(f"{base.name}-{n}")
    log.info("%s holds a run already; training into %s", base, run)
    return run


def _taken(run: Path) -> str:
    """What the run in `run` is, and what to do: ``holds a run (frame_avg, 2 of 4 epochs done); continue ...``."""
    model, total, done = _progress(run)
    facts = [model] if model else []
    if total and done is not None and done >= total:
        facts.append(f"{total} epoch{'s' if total > 1 else ''}")
        return f"holds a finished run ({', '.join(facts)}); replace it with {{overwrite}}, or give another {{out}}"
    if not done:  # its weights, but no record of the epochs (a run of an older vidseq, or a damaged one)
        return (f"holds a run{f' ({model})' if model else ''}; replace it with {{overwrite}}, or give another "
                "{out}")
    facts.append(f"{done} of {total} epochs done" if total else f"{done} epoch(s) done")
    return (f"holds a run ({', '.join(facts)}); continue it with {{resume}}, replace it with {{overwrite}}, or give "
            "another {out}")


def _progress(run: Path) -> tuple[str, int | None, int | None]:
    """The model, the epochs planned and the epochs done of the run in `run`, each where it can be read."""
    model, total, done = "", None, None
    try:
        config = json.loads((run / CONFIG).read_text())
        model = str(config["model"]["name"])
        total = int(config["train"]["epochs"]) + int(config["train"]["freeze_epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        done = int(json.loads((run / CHECKPOINT / "state.json").read_text())["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            done = len(read_metrics(run)) if (run / "metrics.csv").is_file() else None
        except (OSError, ValueError):
            pass
    return model, total, done
