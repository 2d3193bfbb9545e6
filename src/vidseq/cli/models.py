"""Commands on models and runs: models, train, evaluate, predict, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vidseq.cli.app import _ARGV, _INTERRUPTED, _given, _model_options, _pct, _print_table, _sampler, app, one_line
from vidseq.errors import VidseqError


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help="Frames tree, videos tree, dataset name (ucf101, hmdb51) or CSV.")],
    model: Annotated[str, typer.Option(help="Model name (see 'vidseq models').")] = "frame_avg",
    frames: Annotated[int, typer.Option(min=1, show_default=False, help="Frames per clip (default 5; r3d_18 and "
                                        "torchvision's other video networks, swin3d_* and hf:... models take their "
                                        "checkpoint's when not given, e.g. 16 for r3d_18: see 'vidseq models').")]
    = 5,
    size: Annotated[int, typer.Option(min=8, show_default=False, help="Frame size in pixels, square (default 64; "
                                      "those models take their checkpoint's when not given, e.g. 112 for r3d_18).")]
    = 64,
    bs: Annotated[int, typer.Option(min=1, help="Batch size (per process).")] = 32,
    epochs: Annotated[int | None, typer.Option(min=0, help="Epochs (after the frozen ones); default: the model's "
                                                           "recipe.")] = None,
    lr: Annotated[str | None, typer.Option(help="Learning rate: a number, or 'auto' to run lr_find first.")] = None,
    sampler: Annotated[str, typer.Option(callback=_sampler, help="Frame sampler: random (TSN segments), "
                                                                  "random-key (TSN segments, drawn near "
                                                                  "keyframes: faster from videos), uniform, "
                                                                  "first, stride.")] = "random",
    split: Annotated[str, typer.Option(help="auto, official (split 1), official:N, group, random or csv ('none' "
                                            "leaves no validation items, which training needs).")] = "auto",
    valid_pct: Annotated[float, typer.Option(help="Share of each class for validation (group/random splits).")]
    = 0.2,
    precision: Annotated[str, typer.Option(help="auto, bf16, fp16 or fp32 (CPU always fp32).")] = "auto",
    pretrained: Annotated[bool, typer.Option("--pretrained/--no-pretrained",
                                             help="Start from ImageNet/Kinetics weights (downloads them).")] = True,
    backbone: Annotated[str | None, typer.Option(help="Backbone, e.g. resnet18 or timm/convnext_tiny.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="A model option KEY=VALUE, repeatable (e.g. -o depth=4 -o dim=96).")] = None,
    workers: Annotated[int | None, typer.Option(min=0, help="DataLoader worker processes (default: one per "
                                                            "core).")] = None,
    cache: Annotated[bool, typer.Option(help="Decode every clip once into a memory-mapped cache in the run.")]
    = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Load clips from this cache, built by 'vidseq cache DATA "
                                                        "DEST' (items it lacks are decoded from their files).")]
    = None,
    compile: Annotated[bool, typer.Option(help="Wrap the model in torch.compile.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/MODEL, or runs/MODEL-2, -3, ... when "
                                                  "that holds a run).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last completed epoch.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the run the run folder holds (without it, "
                                            "a folder holding a run is refused).")] = False,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips (off: they swap left/right motion).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    gpus: Annotated[int, typer.Option(min=1, help="Train on N GPUs: starts torchrun with one process per GPU.")]
    = 1,
    sync_bn: Annotated[bool, typer.Option(help="Synchronised batch norm across GPUs.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when available).")] = None,
    decode_device: Annotated[str | None, typer.Option(help="Decode videos with torchcodec on this device: cuda "
                                                           "(the GPU's video decoder; clips are made in the main "
                                                           "process) or cpu. Default: vidseq's own seeking reads "
                                                           "(PyAV).")] = None,
    log: Annotated[str | None, typer.Option(help="Track the run in tensorboard (event files in RUN/tensorboard) "
                                                 "or wandb (offline unless logged in).")] = None,
) -> None:
    """Train a model and write a run folder (config.json, model.safetensors, metrics.csv, history.png).

    A run folder that holds a run is not trained into again without --resume (continue it) or --overwrite
    (replace it)."""
    import dataclasses

    from vidseq.train import TrainConfig
    from vidseq.train import train as train_run

    if gpus > 1:
        from vidseq.train.distributed import launch

        raise typer.Exit(launch(gpus, list(_ARGV)))
    lr_value: float | str | None = None
    if lr is not None:
        if lr == "auto":
            lr_value = "auto"
        else:
            try:
                lr_value = float(lr)
            except ValueError:
                raise typer.BadParameter(f"expected a number or 'auto', got {lr!r}", param_hint="'--lr'") from None
    model_kwargs = _model_options(option or [])
    cfg = TrainConfig(data=data, model=model, out=str(out) if out else None, frames=frames, size=size, bs=bs,
                      epochs=epochs, lr=lr_value, sampler=sampler, split=split, valid_pct=valid_pct,
                      precision=precision, pretrained=pretrained, backbone=backbone, workers=workers, cache=cache,
                      cache_dir=str(cache_dir) if cache_dir else None, compile=compile,
                      resume=resume, overwrite=overwrite, flip=flip, seed=seed, device=device, sync_bn=sync_bn,
                      model_kwargs=model_kwargs, decode_device=decode_device, log=log,
                      given=frozenset(name for name in ctx.params if _given(ctx, name)))
    from vidseq.train.distributed import is_rank0
    from vidseq.train.folder import run_folder

    run = out
    if is_rank0():  # the folder chosen now (runs/MODEL-2 when runs/MODEL holds a run), for the resume hint
        run = run_folder(cfg)
        cfg = dataclasses.replace(cfg, out=str(run))
    try:
        result = train_run(cfg)
    except KeyboardInterrupt:
        if run is not None and (run / "checkpoint" / "state.json").is_file():  # an epoch was completed: resumable
            _INTERRUPTED[0] = f"vidseq: interrupted; continue with: vidseq train {data} --out {run} --resume"
        raise
    if is_rank0():
        m = result.metrics
        typer.echo(f"run: {result.run}")
        scores = ({"mAP": _pct(m["mAP"]), "accuracy_multi": _pct(m["accuracy_multi"])} if "mAP" in m else
                  {"accuracy": _pct(m["accuracy"]), "top5": _pct(m["top5"])})
        _print_table([{"model": model, "epochs": result.epochs, "valid_loss": f"{m['valid_loss']:.4f}", **scores,
                       "time": f"{result.seconds:.0f}s"}], ["model", "epochs", "valid_loss", *scores, "time"])


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    data: Annotated[str | None, typer.Option(help="Data to evaluate on (default: the run's own).")] = None,
    split: Annotated[str | None, typer.Option(help="Split (default: the run's own).")] = None,
    clips: Annotated[int, typer.Option(min=1, help="Clips per video, predictions averaged.")] = 1,
    crops: Annotated[int, typer.Option(min=1, max=3, help="Crops per clip: 1 (centre) or 3 (start, centre and end "
                                                         "of the long side, SlowFast's three-crop test).")] = 1,
    bs: Annotated[int, typer.Option(min=1, help="Batch size.")] = 16,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes for decoding.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    report: Annotated[bool, typer.Option(help="Write confusion.png, per_class.csv and report.html.")] = True,
    onnx: Annotated[Path | None, typer.Option(help="Run this ONNX export of the run (onnxruntime) instead of its "
                                                   "PyTorch model.")] = None,
) -> None:
    """Top-1, top-5, mean class accuracy, per-class accuracy and confusion matrix of a run; writes its report."""
    import json

    from vidseq.evaluate import MultiLabelEvaluation, evaluate_run, write_report
    from vidseq.runs import load_run

    loaded = _with_onnx(load_run(run), onnx)
    ev = evaluate_run(loaded, data=data, split=split, clips=clips, crops=crops, bs=bs, workers=workers,
                      device="cpu" if onnx else None)
    paths = write_report(loaded, ev) if report else {}
    if json_out:
        confusion = {} if isinstance(ev, MultiLabelEvaluation) else {"confusion": ev.confusion.tolist()}
        typer.echo(json.dumps({**ev.summary(), "per_class": ev.per_class(), **confusion, "classes": ev.classes,
                               "files": {k: str(v) for k, v in paths.items()}}, indent=2))
        return
    s = ev.summary()
    typer.echo(f"{run}: {s['videos']} videos, {ev.views} each")
    if s.get("multi_label"):
        typer.echo(f"  video-level ({ev.views}): mAP {_pct(s['mAP'])}   exact match {_pct(s['exact_match'])} at "
                   f"the threshold {s['threshold']:.3f}")
        typer.echo(f"  clip-level (one view): mAP {_pct(s['clip_mAP'])}")
        _print_table([{**r, "ap": _pct(r["ap"]) if r["videos"] else "-"} for r in ev.per_class()],
                     ["class", "videos", "predicted", "ap"])
    else:
        top5 = f"   top-5 {_pct(s['top5'])}" if len(ev.classes) > 5 else ""  # else every video is in its top 5
        typer.echo(f"  video-level ({ev.views}): top-1 {_pct(s['top1'])}{top5}   mean class "
                   f"accuracy {_pct(s['mean_class_accuracy'])}")
        typer.echo(f"  clip-level (one view): top-1 {_pct(s['clip_top1'])}")
        _print_table([{**r, "accuracy": _pct(r["accuracy"]) if r["videos"] else "-"} for r in ev.per_class()],
                     ["class", "videos", "correct", "accuracy"])
    if paths:
        typer.echo(f"report: {paths['report']}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    videos: Annotated[list[Path] | None, typer.Argument(readable=False, help="Video files (any container PyAV "
                                                                             "opens) or frame folders.")] = None,
    top: Annotated[int, typer.Option(min=1, help="How many classes to show per file.")] = 5,
    clips: Annotated[int, typer.Option(min=1, help="Clips per video, predictions averaged.")] = 1,
    crops: Annotated[int, typer.Option(min=1, max=3, help="Crops per clip: 1 (centre) or 3 (start, centre, end "
                                                         "of the long side).")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
    onnx: Annotated[Path | None, typer.Option(help="Run this ONNX export of the run (onnxruntime) instead of its "
                                                   "PyTorch model.")] = None,
    timeline: Annotated[bool, typer.Option("--timeline", help="Untrimmed videos: score windows over the whole "
                                           "video and merge them into segments (what happens when).")] = False,
    window: Annotated[float, typer.Option(help="Timeline and stream: seconds a window spans.")] = 2.0,
    stride: Annotated[float | None, typer.Option(help="Timeline and stream: seconds from one window to the next "
                                                      "(default: a quarter window; a stream's, half).")] = None,
    smooth: Annotated[int, typer.Option(min=1, help="Timeline: windows whose probabilities are averaged before "
                                                    "each is labelled.")] = 3,
    threshold: Annotated[float | None, typer.Option(min=0, max=1, help="Timeline: a window's top probability "
                                                    "below which it is background (default 0.5; a multi-label "
                                                    "run's own threshold).")] = None,
    min_length: Annotated[float | None, typer.Option(help="Timeline: the shortest segment in seconds (default: "
                                                          "one window).")] = None,
    out: Annotated[Path, typer.Option(help="Timeline: folder for <video>.timeline.json, .png and "
                                           "segments.csv.")] = Path("timelines"),
    stream: Annotated[str | None, typer.Option(help="Live input instead of files: a file played at its own rate, "
                                                    "an rtsp://, http:// or udp:// URL, or a camera such as "
                                                    "/dev/video0; prints a line when the top label changes.")] = None,
    stall: Annotated[float, typer.Option(min=0.1, help="Stream: seconds without a frame before the source counts "
                                                       "as lost.")] = 5.0,
    retries: Annotated[int, typer.Option(min=0, help="Stream: tries to reconnect to a lost source (waits of "
                                                     "0.5 s doubling up to 8 s) before giving up.")] = 5,
) -> None:
    """Classify video files directly (no extraction); a bad file gets one error line, the rest go on. With
    --timeline, say what happens when in long videos; with --stream, follow a live source."""
    import json

    from vidseq.cli.untrimmed import check_modes, follow_stream, timelines
    from vidseq.predict import predict_files
    from vidseq.runs import load_run

    videos = list(videos or [])
    check_modes(run, videos, timeline=timeline, stream=stream, clips=clips, crops=crops)
    loaded = _with_onnx(load_run(run), onnx)
    device = "cpu" if onnx else None
    if stream is not None:
        follow_stream(loaded, stream, window=window, stride=stride, threshold=threshold, json_out=json_out,
                      device=device, timeout=stall, retries=retries)
        return
    if timeline:
        timelines(loaded, videos, window=window, stride=stride, threshold=threshold, min_length=min_length,
                  smooth=smooth, top=top, out=out, json_out=json_out, device=device)
        return
    preds = predict_files(loaded, videos, top=top, clips=clips, crops=crops, device=device)
    if json_out:
        typer.echo(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        for p in preds:
            if p.error:
                typer.echo(f"vidseq: error: {one_line(p.error)}", err=True)
                continue
            name = one_line(str(p.path))  # a newline in a file name stays in its line
            typer.echo(name if p.labels is None else f"{name}: {', '.join(p.labels) or 'no label'}")
            for label, prob in p.top:
                typer.echo(f"  {prob:6.1%}  {label}")
    if all(p.error for p in preds):
        raise typer.Exit(1)


def _with_onnx(run, onnx: Path | None):
    """The run, with its model replaced by an ONNX export of it when one is given."""
    if onnx is None:
        return run
    from vidseq.export import with_onnx

    return with_onnx(run, onnx)


@app.command()
def export(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    dest: Annotated[Path, typer.Argument(help="File (onnx) or folder (hf) to write.")],
    format: Annotated[str, typer.Option("--format", help="onnx: an ONNX file with the preprocessing in its "
                                                         "metadata, checked in onnxruntime; hf: a Hugging Face "
                                                         "folder (runs of hf:... models).")],
    overwrite: Annotated[bool, typer.Option(help="Replace DEST if it exists.")] = False,
    dynamic_batch: Annotated[bool, typer.Option(help="onnx: any batch size (else one clip a call).")] = True,
    opset: Annotated[int | None, typer.Option(min=18, help="onnx: the opset (default: the exporter's).")] = None,
) -> None:
    """Write a trained run in another tool's format: ONNX (--format onnx) or a Hugging Face folder (--format hf)."""
    from vidseq.export import export_hf, export_onnx

    if format not in ("onnx", "hf"):
        raise typer.BadParameter(f"unknown format {format!r}; choose onnx or hf", param_hint="'--format'")
    if format == "hf":
        typer.echo(f"wrote {export_hf(run, dest, overwrite=overwrite)}")
        return
    if dest.exists() and not overwrite:
        raise VidseqError(path=dest, reason="exists; give a new file, or {overwrite} to replace it",
                          params={"overwrite": True})
    done = export_onnx(run, dest, dynamic_batch=dynamic_batch, opset=opset)
    typer.echo(f"wrote {done.path}: onnxruntime matches PyTorch on {done.clips} clips of the run's data (largest "
               f"logit difference {done.max_abs_diff:.1e}, the same top-1)"
               + ("" if done.dynamic_batch else "; it takes one clip a call (a fixed batch size)"))


@app.command("models")
def models_cmd() -> None:
    """List the registered models, each with its options (`vidseq train -o KEY=VALUE`) and their defaults."""
    import inspect

    from vidseq.models import list_models, model_families, model_options, model_recipe
    from vidseq.models._registry import _builder

    for prefix, pattern in model_families().items():
        doc = (inspect.getdoc(_builder(f"{prefix}:-")) or "").split("\n\n")[0].replace("\n", " ")
        typer.echo(f"{pattern}: {doc}\n    recipe: read from the checkpoint (frames, size, normalisation)")
    for name in list_models():
        doc = (inspect.getdoc(_builder(name)) or "").split("\n\n")[0].replace("\n", " ")
        r = model_recipe(name)
        clip = f"{r.frames} frames x {r.size} px, " if r.frames and r.size else ""
        crop = f"evaluation crop {r.crop_pct:.3g} of the short side, " if r.crop_pct != 1 else ""
        recipe = (f"{clip}{crop}mean {list(r.stats.mean)} std {list(r.stats.std)}; lr {r.lr:g}, {r.epochs} epochs"
                  f" ({r.freeze_epochs} frozen first when pretrained)")
        options = ", ".join(f"{k}={v!r}" for k, v in model_options(name).items())
        typer.echo(f"{name}: {doc}\n    recipe: {recipe}" + (f"\n    options: {options}" if options else ""))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's data and runs.")] = Path("demo"),
    epochs: Annotated[int | None, typer.Option(help="Epochs per model (default: CPU-sized per model).")] = None,
) -> None:
    """The main job on built-in sample data: synth -> extract -> train three models -> evaluate -> predict."""
    from vidseq.demo import run_demo

    run_demo(out, epochs=epochs)
