"""Honest evaluation: top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix, with K
clips per video averaged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidseq.errors import DatasetError, warn_data
from vidseq.evaluate.inference import predict_paths
from vidseq.runs import Run, load_run


@dataclass
class Evaluation:
    """Metrics of a run on a set of labelled items."""

    classes: list[str]
    paths: list[str]
    targets: np.ndarray  # (N,) class indices
    probs: np.ndarray  # (N, C) averaged probabilities
    clips: int
    errors: dict[str, str]

    @property
    def preds(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def top1(self) -> float:
        return float((self.preds == self.targets).mean())

    @property
    def top5(self) -> float:
        k = min(5, len(self.classes))
        top = np.argsort(-self.probs, axis=1)[:, :k]
        return float((top == self.targets[:, None]).any(1).mean())

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) counts: rows are true classes, columns predictions."""
        c = len(self.classes)
        m = np.zeros((c, c), np.int64)
        np.add.at(m, (self.targets, self.preds), 1)
        return m

    def per_class(self) -> list[dict]:
        m = self.confusion
        out = []
        for i, name in enumerate(self.classes):
            n = int(m[i].sum())
            out.append({"class": name, "videos": n, "correct": int(m[i, i]),
                        "accuracy": (m[i, i] / n) if n else float("nan")})
        return out

    @property
    def mean_class_accuracy(self) -> float:
        accs = [r["accuracy"] for r in self.per_class() if r["videos"]]
        return float(np.mean(accs)) if accs else float("nan")

    def summary(self) -> dict:
        return {"videos": len(self.paths), "clips": self.clips, "top1": self.top1, "top5": self.top5,
                "mean_class_accuracy": self.mean_class_accuracy, "unreadable": len(self.errors)}


def evaluate_run(run: str | Path | Run, *, data: str | Path | None = None, split: str | None = None, clips: int = 1,
                 bs: int = 16, workers: int = 0, device: str | torch.device | None = None) -> Evaluation:
    """Evaluate a run on the validation side of `data` (default: the data and split it was trained on)."""
    from vidseq.datasets import load_items

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = run if isinstance(run, Run) else load_run(run, device=device)
    source = data if data is not None else run.config.data.source
    split = split or run.config.data.split
    itemset = load_items(source, split=split, seed=run.config.train.seed)
    items = itemset.valid_items()
    if not items:
        raise DatasetError(path=source, reason=f"no validation items under split {split}")
    index = {c: i for i, c in enumerate(run.classes)}
    unknown = sorted({it.label for it in items} - set(index))
    if unknown:
        raise DatasetError(path=source, reason=f"classes the run does not know: {', '.join(unknown[:5])}")
    probs, errors = predict_paths(run, [it.path for it in items], clips=clips, bs=bs, workers=workers, device=device)
    keep = [i for i in range(len(items)) if i not in errors]
    if not keep:
        raise DatasetError(path=source, reason=f"none of the {len(items)} validation items could be read (e.g. "
                           f"{next(iter(errors.values()))})")
    if errors:
        warn_data(f"{len(errors)} item(s) could not be read and are left out, e.g. {next(iter(errors.values()))}")
    return Evaluation(classes=list(run.classes), paths=[str(items[i].path) for i in keep],
                      targets=np.array([index[items[i].label] for i in keep]), probs=probs[keep], clips=clips,
                      errors={str(items[i].path): e for i, e in errors.items()})
