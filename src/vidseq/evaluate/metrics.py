"""Honest evaluation: top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix, over K clips
x 1 or 3 crops per video (video-level), with the single views' accuracy beside it (clip-level)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vidseq.datasets import label_set
from vidseq.errors import DatasetError, warn_data
from vidseq.evaluate.inference import view_probs
from vidseq.runs import Run, load_run
from vidseq.scores import mean_ap, per_class_ap


@dataclass
class Evaluation:
    """Metrics of a run on a set of labelled items."""

    classes: list[str]
    paths: list[str]
    targets: np.ndarray  # (N,) class indices
    probs: np.ndarray  # (N, C) probabilities averaged over the views
    clips: int
    errors: dict[str, str]
    crops: int = 1
    view_probs: np.ndarray | None = None  # (N, clips x crops, C): each view's probabilities

    @property
    def views(self) -> str:
        """The test views, named: e.g. "3 clips x 3 crops"."""
        return f"{self.clips} clip{'s' if self.clips > 1 else ''} x {self.crops} crop{'s' if self.crops > 1 else ''}"

    @property
    def clip_top1(self) -> float:
        """Clip-level top-1: the share of single views (one clip through one crop) whose top class is right — the
        number a training log shows; `top1` is video-level, over all the views."""
        if self.view_probs is None:
            return self.top1
        return float((self.view_probs.argmax(-1) == self.targets[:, None]).mean())

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
        return {"videos": len(self.paths), "clips": self.clips, "crops": self.crops, "views": self.views,
                "top1": self.top1, "clip_top1": self.clip_top1, "top5": self.top5,
                "mean_class_accuracy": self.mean_class_accuracy, "unreadable": len(self.errors)}


@dataclass
class MultiLabelEvaluation:
    """Metrics of a multi-label run: mean average precision and per-class AP (the Charades metrics), and the
    labels predicted at the run's threshold."""

    classes: list[str]
    paths: list[str]
    targets: np.ndarray  # (N, C) 0/1
    probs: np.ndarray  # (N, C) sigmoid scores averaged over the views
    clips: int
    errors: dict[str, str]
    threshold: float
    crops: int = 1
    view_probs: np.ndarray | None = None  # (N, clips x crops, C)

    views = Evaluation.views

    @property
    def per_class_ap(self) -> np.ndarray:
        return per_class_ap(self.probs, self.targets)

    @property
    def mean_ap(self) -> float:
        """Video-level mAP over the classes with a positive item."""
        return mean_ap(self.probs, self.targets)

    @property
    def clip_mean_ap(self) -> float:
        """Clip-level mAP: every single view scored on its own."""
        if self.view_probs is None:
            return self.mean_ap
        v = self.view_probs.shape[1]
        return mean_ap(self.view_probs.reshape(-1, len(self.classes)), np.repeat(self.targets, v, axis=0))

    @property
    def predicted(self) -> np.ndarray:
        """(N, C) 0/1: every class scored above the threshold."""
        return (self.probs > self.threshold).astype(np.int64)

    def labels(self, row: np.ndarray) -> list[str]:
        return [c for c, on in zip(self.classes, row) if on]

    def per_class(self) -> list[dict]:
        ap, pred = self.per_class_ap, self.predicted
        return [{"class": name, "videos": int(self.targets[:, i].sum()), "predicted": int(pred[:, i].sum()),
                 "ap": float(ap[i])} for i, name in enumerate(self.classes)]

    def summary(self) -> dict:
        exact = float((self.predicted == self.targets).all(1).mean())
        return {"videos": len(self.paths), "clips": self.clips, "crops": self.crops, "views": self.views,
                "multi_label": True, "mAP": self.mean_ap, "clip_mAP": self.clip_mean_ap, "threshold": self.threshold,
                "exact_match": exact, "unreadable": len(self.errors)}


def evaluate_run(run: str | Path | Run, *, data: str | Path | None = None, split: str | None = None, clips: int = 1,
                 crops: int = 1, bs: int = 16, workers: int = 0,
                 device: str | torch.device | None = None) -> Evaluation | MultiLabelEvaluation:
    """Evaluate a run on the validation side of `data` (default: the data and split it was trained on), each video
    seen through `clips` clips x `crops` crops (1 or 3), their probabilities averaged."""
    from vidseq.datasets import load_items

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    run = run if isinstance(run, Run) else load_run(run, device=device)
    source = data if data is not None else run.config.data.source
    split = split or run.config.data.split
    itemset = load_items(source, split=split, valid_pct=run.config.data.valid_pct, seed=run.config.train.seed)
    items = itemset.valid_items()
    if not items:
        raise DatasetError(path=source, reason=f"no validation items under split {split}")
    index = {c: i for i, c in enumerate(run.classes)}
    multi = run.config.multi_label
    unknown = sorted({c for it in items for c in (label_set(it.label) if multi else [it.label])} - set(index))
    if unknown:
        raise DatasetError(path=source, reason=f"classes the run does not know: {', '.join(unknown[:5])}")
    views, errors = view_probs(run, [it.path for it in items], clips=clips, crops=crops, bs=bs, workers=workers,
                               device=device)
    keep = [i for i in range(len(items)) if i not in errors]
    if not keep:
        raise DatasetError(path=source, reason=f"none of the {len(items)} validation items could be read (e.g. "
                           f"{next(iter(errors.values()))})")
    if errors:
        warn_data(f"{len(errors)} item(s) could not be read and are left out, e.g. {next(iter(errors.values()))}")
    if multi:
        targets = np.zeros((len(keep), len(run.classes)), np.int64)
        for row, i in enumerate(keep):
            targets[row, [index[c] for c in label_set(items[i].label)]] = 1
        return MultiLabelEvaluation(classes=list(run.classes), paths=[str(items[i].path) for i in keep],
                                    targets=targets, probs=views[keep].mean(1), clips=clips, crops=crops,
                                    view_probs=views[keep], threshold=run.config.threshold or 0.5,
                                    errors={str(items[i].path): e for i, e in errors.items()})
    return Evaluation(classes=list(run.classes), paths=[str(items[i].path) for i in keep],
                      targets=np.array([index[items[i].label] for i in keep]), probs=views[keep].mean(1),
                      clips=clips, crops=crops, view_probs=views[keep],
                      errors={str(items[i].path): e for i, e in errors.items()})
