"""The main job on built-in sample data, as `make demo` runs it: synth -> extract -> train -> evaluate -> predict.

Sized for a CPU: a few minutes on two cores once installed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

#: CPU-sized settings per model: (model options, train options). Official-style split (groups 1-7 held out).
DEMO_MODELS: dict[str, dict] = {
    "frame_avg": {"backbone": "resnet18", "epochs": 6, "lr": 2e-3},
    "cnn_lstm": {"backbone": "resnet18", "epochs": 6, "lr": 2e-3},
    "timesformer": {"model_kwargs": {"dim": 96, "depth": 4, "heads": 4, "dim_head": 24, "patch_size": 8},
                    "epochs": 12, "lr": 1e-3},
}


def run_demo(out: str | Path = "demo", *, epochs: int | None = None, models: list[str] | None = None,
             frames: int = 5, size: int = 32, log=print) -> list[dict]:
    """Run the whole demo under `out`; returns one row of results per model."""
    from vidseq.datasets.synth import PRESETS, make_synth
    from vidseq.evaluate import evaluate_run, write_report
    from vidseq.extract import extract_dataset
    from vidseq.predict import predict_files
    from vidseq.runs import load_run
    from vidseq.train import TrainConfig, train

    out = Path(out)
    cfg = PRESETS["demo"]
    t0 = time.time()
    log(f"[1/5] synth: UCF101-shaped motion dataset ({cfg.classes} classes, {cfg.groups} groups x {cfg.clips} clips, "
        f"{cfg.frames} frames, {cfg.width}x{cfg.height})")
    data = make_synth(out / "data", cfg, progress=sys.stderr.isatty())
    log(f"      {data.videos} videos in {data.root / 'videos'}; split 1: train {data.train}, test {data.test}")

    log("[2/5] extract: videos -> JPEG frame folders")
    summary = extract_dataset(data.root / "videos", out / "frames", progress=sys.stderr.isatty())
    log(f"      {summary.done} extracted, {summary.skipped} already done, {summary.failed} failed "
        f"({summary.frames} frames) in {out / 'frames'}")

    rows = []
    names = models or list(DEMO_MODELS)
    for k, name in enumerate(names):
        spec = DEMO_MODELS[name]
        log(f"[3/5] train {name} ({k + 1}/{len(names)}), {frames} frames x {size} px, CPU-sized")
        tc = TrainConfig(data=str(out / "frames"), model=name, out=str(out / "runs" / name), frames=frames, size=size,
                         bs=16, epochs=epochs or spec["epochs"], lr=spec["lr"], pretrained=False,
                         backbone=spec.get("backbone"), model_kwargs=spec.get("model_kwargs", {}), split="official:1",
                         overwrite=True, verbose=sys.stderr.isatty())  # a second demo in `out` redoes its runs
        result = train(tc)
        run = load_run(result.run)
        ev = evaluate_run(run)
        paths = write_report(run, ev)
        rows.append({"model": name, "top-1": ev.top1, "mean class acc": ev.mean_class_accuracy,
                     "train time": result.seconds, "report": paths["report"]})
        log(f"      top-1 {ev.top1:.1%}, mean class accuracy {ev.mean_class_accuracy:.1%} "
            f"({result.seconds:.0f}s); report {paths['report']}")

    log("[4/5] predict on two sample videos (read directly, no extraction)")
    videos = sorted((data.root / "videos").rglob("*_g01_c01.avi"))[:2]
    best = max(rows, key=lambda r: r["top-1"])
    for p in predict_files(out / "runs" / best["model"], videos, top=3):
        shown = ", ".join(f"{c} {q:.0%}" for c, q in p.top) if not p.error else p.error
        log(f"      {Path(p.path).name}: {shown}")

    log(f"[5/5] results (validation: groups 1-7, never seen in training; {time.time() - t0:.0f}s in all)")
    header = f"      {'model':<12} {'top-1':>7} {'mean class acc':>15} {'train time':>11}"
    log(header)
    for r in rows:
        log(f"      {r['model']:<12} {r['top-1']:>7.1%} {r['mean class acc']:>15.1%} {r['train time']:>10.0f}s")
    for r in rows:
        log(f"      report: {r['report']}")
    return rows
