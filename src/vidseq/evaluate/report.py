"""A run's report: ``confusion.png``, ``per_class.csv``, ``evaluation.json`` and one self-contained
``report.html`` (settings, metrics, training curves, confusion matrix, sample clips, worst mistakes).

Figures are drawn on `matplotlib.figure.Figure` objects: writing a report changes no pyplot state or backend.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidseq.errors import VidseqError
from vidseq.evaluate.inference import clip_indices, clip_tfm_for
from vidseq.evaluate.metrics import Evaluation, MultiLabelEvaluation
from vidseq.files import atomic_write_text, save_figure
from vidseq.runs import Run, plot_history, read_metrics


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plot_confusion(ev: Evaluation, path: Path | None = None):
    from matplotlib.figure import Figure

    m = ev.confusion
    c = len(ev.classes)
    size = max(4.0, 0.35 * c + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
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
    ax.set_title(f"confusion ({ev.views} per video)")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=90)
    return fig


def _strip(run: Run, path: str) -> np.ndarray:
    """First, middle and last frame of the clip the model saw, side by side, as (H, W, 3) uint8."""
    tfm = clip_tfm_for(run.config)
    clip = tfm.load(Path(path), indices=clip_indices(tfm, Path(path), 1)[0])
    return clip.strip().as_subclass(torch.Tensor).permute(1, 2, 0).numpy()


def plot_clips(run: Run, ev: Evaluation, indices: Sequence[int], title: str):
    from matplotlib.figure import Figure

    n = len(indices)
    cols = 2 if n > 1 else 1
    rows = max(1, -(-n // cols))
    fig = Figure(figsize=(6 * cols, 2.3 * rows))
    axs = fig.subplots(rows, cols, squeeze=False)
    for ax in axs.flat:
        ax.axis("off")
    for ax, i in zip(axs.flat, indices):
        try:
            ax.imshow(_strip(run, ev.paths[i]))
        except VidseqError:
            continue
        if isinstance(ev, MultiLabelEvaluation):
            truth, pred = ", ".join(ev.labels(ev.targets[i])), ", ".join(ev.labels(ev.predicted[i])) or "none"
            right, score = bool((ev.targets[i] == ev.predicted[i]).all()), ""
        else:
            truth, pred = ev.classes[ev.targets[i]], ev.classes[ev.preds[i]]
            right, score = truth == pred, f" ({ev.probs[i].max():.2f})"
        ax.set_title(f"{Path(ev.paths[i]).name}\ntrue {truth} / predicted {pred}{score}",
                     color="green" if right else "red", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def write_report(run: Run, ev: Evaluation | MultiLabelEvaluation, *, samples: int = 8,
                 worst: int = 6) -> dict[str, Path]:
    """confusion.png (a single-label run's), per_class.csv, evaluation.json and report.html in the run folder."""
    out = run.path
    multi = isinstance(ev, MultiLabelEvaluation)
    confusion_b64 = None if multi else _png(plot_confusion(ev, out / "confusion.png"))
    if multi:
        (out / "confusion.png").unlink(missing_ok=True)  # an earlier single-label evaluation's
    buf = io.StringIO()
    run_rows = ev.per_class()
    w = csv.DictWriter(buf, fieldnames=list(run_rows[0]))
    w.writeheader()
    w.writerows(run_rows)
    atomic_write_text(out / "per_class.csv", buf.getvalue())
    extra = {} if multi else {"confusion": ev.confusion.tolist()}
    atomic_write_text(out / "evaluation.json", json.dumps({**ev.summary(), "per_class": run_rows, **extra,
                                                     "classes": ev.classes, "errors": ev.errors}, indent=2) + "\n")
    rng = np.random.default_rng(0)
    sample_idx = sorted(rng.choice(len(ev.paths), size=min(samples, len(ev.paths)), replace=False).tolist())
    if multi:  # the worst: the largest total error on the labels
        cost = np.abs(ev.probs - ev.targets).sum(1)
        wrong = np.flatnonzero((ev.predicted != ev.targets).any(1))
        worst_idx = wrong[np.argsort(-cost[wrong])][:worst].tolist()
    else:
        p_true = ev.probs[np.arange(len(ev.paths)), ev.targets]
        wrong = np.flatnonzero(ev.preds != ev.targets)
        worst_idx = wrong[np.argsort(p_true[wrong])][:worst].tolist()
    figs = {"samples": plot_clips(run, ev, sample_idx, "sample clips"),
            "worst": plot_clips(run, ev, worst_idx, "worst mistakes") if worst_idx else None}
    imgs = {k: (_png(f) if f is not None else None) for k, f in figs.items()}
    hist = plot_history(out)
    hist_b64 = base64.b64encode(hist.read_bytes()).decode() if hist else None
    atomic_write_text(out / "report.html", _html(run, ev, confusion_b64, imgs, hist_b64, read_metrics(out)))
    files = {"report": out / "report.html", "per_class": out / "per_class.csv"}
    return files if multi else {**files, "confusion": out / "confusion.png"}


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


def _headline(ev: Evaluation | MultiLabelEvaluation) -> list[str]:
    s = ev.summary()
    if isinstance(ev, MultiLabelEvaluation):
        return [f"<p class='big'>video-level ({ev.views}): mAP <b>{s['mAP']:.1%}</b> &middot; exact match at the "
                f"threshold {s['threshold']:.3f} <b>{s['exact_match']:.1%}</b></p>",
                f"<p class='big'>clip-level (one view, as in the training log): mAP <b>{s['clip_mAP']:.1%}</b></p>"]
    top5 = f" &middot; top-5 <b>{s['top5']:.1%}</b>" if len(ev.classes) > 5 else ""  # 5 classes: always 100 %
    return [f"<p class='big'>video-level ({ev.views}): top-1 <b>{s['top1']:.1%}</b>{top5} &middot; mean class "
            f"accuracy <b>{s['mean_class_accuracy']:.1%}</b></p>",
            f"<p class='big'>clip-level (one view, as in the training log): top-1 <b>{s['clip_top1']:.1%}</b></p>"]


def _html(run: Run, ev: Evaluation | MultiLabelEvaluation, confusion: str | None, imgs: dict, history: str | None,
          metrics: list[dict]) -> str:
    cfg = run.config.to_dict()
    s = ev.summary()
    settings = [{"setting": k, "value": json.dumps(cfg[k])} for k in ("model", "data", "clip", "train", "versions")]
    img = '<img src="data:image/png;base64,{}">'.format
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>vidseq report: {html.escape(run.path.name)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;"
        "font-size:13px}img{max-width:100%}.big{font-size:20px}</style></head><body>",
        f"<h1>{html.escape(cfg['model']['name'])} on {html.escape(str(cfg['data']['source']))}</h1>",
        *_headline(ev),
        f"<p>{s['videos']} validation videos ({html.escape(cfg['data']['split'])} split), {ev.views} per video"
        f"{', ' + str(s['unreadable']) + ' unreadable' if s['unreadable'] else ''}.</p>",
        "<h2>Training</h2>", img(history) if history else "<p>no history</p>", _table(metrics),
        *(["<h2>Confusion matrix</h2>", img(confusion)] if confusion else []),
        "<h2>Per class</h2>" if confusion else "<h2>Per class: average precision</h2>", _table(ev.per_class()),
        "<h2>Sample clips</h2>", img(imgs["samples"]),
        "<h2>Worst mistakes</h2>", img(imgs["worst"]) if imgs["worst"] else "<p>no mistakes</p>",
        "<h2>Settings</h2>", _table(settings),
        "</body></html>",
    ]
    return "\n".join(parts)
