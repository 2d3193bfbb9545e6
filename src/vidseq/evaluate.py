"""Honest evaluation: top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix,
with K clips per video averaged; and the run's report.

Predictions of several clips of a video are averaged as probabilities (softmax), as in TSN.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vidseq.data import ClipTfm
from vidseq.errors import DatasetError, VidseqError
from vidseq.runs import Run, load_run
from vidseq.sampling import multi_clip, sample


def clip_tfm_for(config: dict) -> ClipTfm:
    """The deterministic (validation) clip transform a run was trained with."""
    clip = config["clip"]
    return ClipTfm(clip["frames"], clip["size"], sampler=clip.get("sampler", "uniform"), pad=clip.get("pad", "repeat"))


def clip_indices(tfm: ClipTfm, path: Path, clips: int) -> list[np.ndarray]:
    """Frame indices of `clips` test clips of `path`: the validation sampler for one, spread clips for more."""
    n = tfm.n_frames(path)
    if clips == 1:
        return [sample(tfm.sampler, n, tfm.seq_len, train=False, pad=tfm.pad, step=tfm.step)]
    step = tfm.step if tfm.sampler == "stride" else None
    return multi_clip(n, tfm.seq_len, clips, step=step, pad=tfm.pad)


class _Clips(Dataset):
    """(clip tensor, item index, clip index) for every clip of every item; unreadable items flagged."""

    def __init__(self, paths: Sequence[Path], tfm: ClipTfm, clips: int):
        self.paths, self.tfm, self.clips = list(paths), tfm, clips

    def __len__(self) -> int:
        return len(self.paths) * self.clips

    def __getitem__(self, k: int):
        i, j = divmod(k, self.clips)
        size = self.tfm.image_size
        try:
            idx = clip_indices(self.tfm, self.paths[i], self.clips)[j]
            x = self.tfm.load(self.paths[i], indices=idx).as_subclass(torch.Tensor)
            err = ""
        except (VidseqError, OSError, ValueError) as e:
            x = torch.zeros(self.tfm.seq_len, 3, size, size, dtype=torch.uint8)
            err = str(e) or type(e).__name__
            if str(self.paths[i]) not in err:  # e.g. the sampler's "the video has no frames"
                err = f"{self.paths[i]}: {err}"
        return x, i, err


def normalize(x: torch.Tensor, config: dict) -> torch.Tensor:
    """uint8 (B, T, C, H, W) -> float normalised as in training."""
    stats = config["clip"].get("normalize", {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    mean = torch.tensor(stats["mean"], device=x.device).view(1, 1, 3, 1, 1)
    std = torch.tensor(stats["std"], device=x.device).view(1, 1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


@torch.no_grad()
def predict_paths(run: Run, paths: Sequence[str | Path], *, clips: int = 1, bs: int = 16, workers: int = 0,
                  device: str | torch.device = "cpu") -> tuple[np.ndarray, dict[int, str]]:
    """Class probabilities (N, C) of each item, averaged over `clips` clips, and {item: error} for items
    that could not be read (their rows are NaN)."""
    if clips < 1:
        raise VidseqError(f"--clips must be at least 1, got {clips}")
    paths = [Path(p) for p in paths]
    tfm = clip_tfm_for(run.config)
    ds = _Clips(paths, tfm, clips)
    dl = DataLoader(ds, batch_size=bs, num_workers=workers, shuffle=False)
    n_classes = len(run.classes)
    sums = np.zeros((len(paths), n_classes), np.float64)
    errors: dict[int, str] = {}
    model = run.model.to(device).eval()
    for x, items, errs in dl:
        ok = torch.tensor([not e for e in errs])
        for i, e in zip(items.tolist(), errs):
            if e:
                errors[i] = e
        if ok.any():
            probs = model(normalize(x[ok].to(device), run.config)).float().softmax(-1).cpu().numpy()
            np.add.at(sums, items[ok].numpy(), probs)
    probs = sums / clips
    for i in errors:
        probs[i] = np.nan
    return probs, errors


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
    source = data if data is not None else run.config["data"]["source"]
    split = split or run.config["data"].get("split", "auto")
    itemset = load_items(source, split=split, seed=run.config.get("train", {}).get("seed", 0))
    items = itemset.valid_items()
    if not items:
        raise DatasetError(f"{source}: no validation items under split {split}")
    index = {c: i for i, c in enumerate(run.classes)}
    unknown = sorted({it.label for it in items} - set(index))
    if unknown:
        raise DatasetError(f"{source}: classes the run does not know: {', '.join(unknown[:5])}")
    probs, errors = predict_paths(run, [it.path for it in items], clips=clips, bs=bs, workers=workers, device=device)
    keep = [i for i in range(len(items)) if i not in errors]
    if not keep:
        raise DatasetError(f"{source}: none of the {len(items)} validation items could be read (e.g. "
                           f"{next(iter(errors.values()))})")
    if errors:
        print(f"vidseq: {len(errors)} item(s) could not be read and are left out, e.g. {next(iter(errors.values()))}",
              file=sys.stderr)
    return Evaluation(classes=list(run.classes), paths=[str(items[i].path) for i in keep],
                      targets=np.array([index[items[i].label] for i in keep]), probs=probs[keep], clips=clips,
                      errors={str(items[i].path): e for i, e in errors.items()})


# ------------------------------------------------------------------------------------------------- report
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plot_confusion(ev: Evaluation, path: Path | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = ev.confusion
    c = len(ev.classes)
    size = max(4.0, 0.35 * c + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    norm = m / np.maximum(1, m.sum(1, keepdims=True))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), ev.classes, rotation=90, fontsize=7 if c > 20 else 9)
    ax.set_yticks(range(c), ev.classes, fontsize=7 if c > 20 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 30:
        for i in range(c):
            for j in range(c):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(f"confusion ({ev.clips} clip{'s' if ev.clips > 1 else ''} per video)")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
    return fig


def _strip(run: Run, path: str) -> np.ndarray:
    """First, middle and last frame of the clip the model saw, side by side, as (H, W, 3) uint8."""
    tfm = clip_tfm_for(run.config)
    clip = tfm.load(Path(path), indices=clip_indices(tfm, Path(path), 1)[0])
    return clip.strip().as_subclass(torch.Tensor).permute(1, 2, 0).numpy()


def plot_clips(run: Run, ev: Evaluation, indices: Sequence[int], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(indices)
    cols = 2 if n > 1 else 1
    rows = max(1, -(-n // cols))
    fig, axs = plt.subplots(rows, cols, figsize=(6 * cols, 2.3 * rows), squeeze=False)
    for ax in axs.flat:
        ax.axis("off")
    for ax, i in zip(axs.flat, indices):
        try:
            ax.imshow(_strip(run, ev.paths[i]))
        except VidseqError:
            continue
        truth, pred = ev.classes[ev.targets[i]], ev.classes[ev.preds[i]]
        ax.set_title(f"{Path(ev.paths[i]).name}\ntrue {truth} / predicted {pred} ({ev.probs[i].max():.2f})",
                     color="green" if truth == pred else "red", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_report(run: Run, ev: Evaluation, *, samples: int = 8, worst: int = 6) -> dict[str, Path]:
    """confusion.png, per_class.csv, evaluation.json and report.html in the run folder."""
    import matplotlib.pyplot as plt

    from vidseq.learner import plot_history, read_metrics

    out = run.path
    fig = plot_confusion(ev, out / "confusion.png")
    confusion_b64 = _png(fig)
    plt.close(fig)
    with open(out / "per_class.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["class", "videos", "correct", "accuracy"])
        w.writeheader()
        w.writerows(run_rows := ev.per_class())
    (out / "evaluation.json").write_text(json.dumps({**ev.summary(), "per_class": run_rows,
                                                     "confusion": ev.confusion.tolist(), "classes": ev.classes,
                                                     "errors": ev.errors}, indent=2) + "\n")
    rng = np.random.default_rng(0)
    sample_idx = sorted(rng.choice(len(ev.paths), size=min(samples, len(ev.paths)), replace=False).tolist())
    p_true = ev.probs[np.arange(len(ev.paths)), ev.targets]
    wrong = np.flatnonzero(ev.preds != ev.targets)
    worst_idx = wrong[np.argsort(p_true[wrong])][:worst].tolist()
    figs = {"samples": plot_clips(run, ev, sample_idx, "sample clips"),
            "worst": plot_clips(run, ev, worst_idx, "worst mistakes") if worst_idx else None}
    imgs = {k: (_png(f) if f is not None else None) for k, f in figs.items()}
    for f in figs.values():
        if f is not None:
            plt.close(f)
    hist = plot_history(out)
    hist_b64 = base64.b64encode(hist.read_bytes()).decode() if hist else None
    (out / "report.html").write_text(_html(run, ev, confusion_b64, imgs, hist_b64, read_metrics(out)))
    return {"report": out / "report.html", "confusion": out / "confusion.png", "per_class": out / "per_class.csv"}


def _table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r[k]))}</td>" for k in keys) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _html(run: Run, ev: Evaluation, confusion: str, imgs: dict, history: str | None, metrics: list[dict]) -> str:
    cfg = run.config
    s = ev.summary()
    settings = [{"setting": k, "value": json.dumps(v)} for k, v in
                [("model", cfg["model"]), ("data", cfg["data"]), ("clip", cfg["clip"]), ("train", cfg["train"]),
                 ("versions", cfg.get("versions", {}))]]
    img = '<img src="data:image/png;base64,{}">'.format
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>vidseq report: {html.escape(run.path.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
        "font-size:13px}img{max-width:100%}.big{font-size:20px}</style></head><body>",
        f"<h1>{html.escape(cfg['model']['name'])} on {html.escape(str(cfg['data']['source']))}</h1>",
        f"<p class='big'>top-1 <b>{s['top1']:.1%}</b> &middot; top-5 <b>{s['top5']:.1%}</b> &middot; "
        f"mean class accuracy <b>{s['mean_class_accuracy']:.1%}</b></p>",
        f"<p>{s['videos']} validation videos ({html.escape(cfg['data']['split'])} split), {ev.clips} clip(s) per video"
        f"{', ' + str(s['unreadable']) + ' unreadable' if s['unreadable'] else ''}.</p>",
        "<h2>Training</h2>", img(history) if history else "<p>no history</p>", _table(metrics),
        "<h2>Confusion matrix</h2>", img(confusion),
        "<h2>Per class</h2>", _table(ev.per_class()),
        "<h2>Sample clips</h2>", img(imgs["samples"]),
        "<h2>Worst mistakes</h2>", img(imgs["worst"]) if imgs["worst"] else "<p>no mistakes</p>",
        "<h2>Settings</h2>", _table(settings),
        "</body></html>",
    ]
    return "\n".join(parts)
