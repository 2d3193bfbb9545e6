"""The `vidseq` command line: a thin layer over the library.

Every user mistake ends in one line on stderr and exit code 2; failures of the work itself exit 1.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_exc

from vidseq.errors import VidseqError

app = typer.Typer(
    name="vidseq",
    help="Action recognition in video as sequences of images, on fastai and PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


_ARGV: list[str] = []
# a library vidseq imports still calls torch.jit.script at import time; the warning says nothing to a user
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated", category=FutureWarning)
_INTERRUPTED = ["vidseq: interrupted"]  # main's one line on Ctrl-C; a command may put a more helpful one here


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 320x240, got {value!r}") from None
    return w, h


@app.command()
def synth(
    dest: Annotated[Path, typer.Argument(help="Folder to write the dataset into.")],
    preset: Annotated[str, typer.Option(help="Starting size: tiny, default, demo (CPU training) or bench "
                                              "(UCF101-like 320x240).")] = "default",
    classes: Annotated[int | None, typer.Option(help="Number of motion classes (2-12).")] = None,
    groups: Annotated[int | None, typer.Option(help="Groups per class; groups 1-7 form the test list.")] = None,
    clips: Annotated[int | None, typer.Option(help="Clips per group.")] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per clip.")] = None,
    size: Annotated[str | None, typer.Option(help="Frame size WIDTHxHEIGHT, even numbers.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same dataset.")] = None,
) -> None:
    """Write a small UCF101-shaped dataset of motion classes (no download).

    Layout: DEST/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi and DEST/ucfTrainTestlist/ with classInd.txt,
    trainlist01.txt and testlist01.txt (groups 1-7 in the test list, as UCF101's split 1).
    """
    import dataclasses

    from vidseq.synth import PRESETS, make_synth

    if preset not in PRESETS:
        raise VidseqError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    changes = {k: v for k, v in dict(classes=classes, groups=groups, clips=clips, frames=frames, seed=seed).items()
               if v is not None}
    if size is not None:
        changes["width"], changes["height"] = _size(size)
    try:
        cfg = dataclasses.replace(PRESETS[preset], **changes)
    except ValueError as e:
        raise VidseqError(str(e)) from None
    result = make_synth(dest, cfg, progress=sys.stderr.isatty())
    typer.echo(f"wrote {result.videos} videos ({result.frames} frames, {cfg.width}x{cfg.height}) of "
               f"{len(result.classes)} classes to {result.root}/videos")
    typer.echo(f"  classes: {', '.join(result.classes)}")
    typer.echo(f"  split lists: {result.root}/ucfTrainTestlist (train {result.train}, test {result.test})")


def _sampler(value: str) -> str:
    """Typer callback: the name of a frame sampler, checked before any data is read."""
    from vidseq.sampling import SAMPLERS

    if value not in SAMPLERS:
        raise typer.BadParameter(f"unknown sampler {value!r}; choose one of {', '.join(SAMPLERS)}")
    return value


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line (or in the environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _print_table(rows: list[dict], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    typer.echo("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        typer.echo("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))


def _model_options(items: list[str]) -> dict:
    """`KEY=VALUE` strings -> {key: value}, values read as JSON where they parse (numbers, true, null; also
    Python's True, False and None), else kept as text."""
    import json

    words = {"true": True, "false": False, "none": None, "null": None}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--option'")
        if value.strip().lower() in words:
            out[key.strip()] = words[value.strip().lower()]
            continue
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _pct(v: float) -> str:
    return f"{v:.1%}"


@app.command()
def train(
    ctx: typer.Context,
    data: Annotated[str, typer.Argument(help="Frames tree, videos tree, dataset name (ucf101, hmdb51) or CSV.")],
    model: Annotated[str, typer.Option(help="Model name (see 'vidseq models').")] = "frame_avg",
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 5,
    size: Annotated[int, typer.Option(min=8, help="Frame size in pixels (square).")] = 64,
    bs: Annotated[int, typer.Option(min=1, help="Batch size (per process).")] = 32,
    epochs: Annotated[int | None, typer.Option(min=0, help="Epochs (after the frozen ones); default: the model's "
                                                           "recipe.")] = None,
    lr: Annotated[str | None, typer.Option(help="Learning rate: a number, or 'auto' to run lr_find first.")] = None,
    sampler: Annotated[str, typer.Option(callback=_sampler, help="Frame sampler: random (TSN segments), "
                                                                  "uniform, first, stride.")] = "random",
    split: Annotated[str, typer.Option(help="auto, official:N, group, random, or csv.")] = "auto",
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
    compile: Annotated[bool, typer.Option(help="Wrap the model in torch.compile.")] = False,
    out: Annotated[Path | None, typer.Option(help="Run folder (default runs/MODEL).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its last completed epoch.")] = False,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips (off: they swap left/right motion).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    gpus: Annotated[int, typer.Option(min=1, help="Train on N GPUs: starts torchrun with one process per GPU.")]
    = 1,
    sync_bn: Annotated[bool, typer.Option(help="Synchronised batch norm across GPUs.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: cuda when available).")] = None,
) -> None:
    """Train a model and write a run folder (config.json, model.safetensors, metrics.csv, history.png)."""
    from vidseq.learner import TrainConfig
    from vidseq.learner import train as train_run

    if gpus > 1:
        from vidseq.distributed import launch

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
                      epochs=epochs, lr=lr_value, sampler=sampler, split=split, precision=precision,
                      pretrained=pretrained, backbone=backbone, workers=workers, cache=cache, compile=compile,
                      resume=resume, flip=flip, seed=seed, device=device, sync_bn=sync_bn, model_kwargs=model_kwargs,
                      given=frozenset(name for name in ctx.params if _given(ctx, name)))
    try:
        result = train_run(cfg)
    except KeyboardInterrupt:
        run = out or Path("runs") / model
        if (Path(run) / "checkpoint" / "state.json").is_file():  # an epoch was completed: something to resume
            _INTERRUPTED[0] = f"vidseq: interrupted; continue with: vidseq train {data} --out {run} --resume"
        raise
    from vidseq.distributed import is_rank0

    if is_rank0():
        m = result.metrics
        typer.echo(f"run: {result.run}")
        _print_table([{"model": model, "epochs": result.epochs, "valid_loss": f"{m['valid_loss']:.4f}",
                       "accuracy": _pct(m["accuracy"]), "top5": _pct(m["top5"]),
                       "time": f"{result.seconds:.0f}s"}],
                     ["model", "epochs", "valid_loss", "accuracy", "top5", "time"])


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    data: Annotated[str | None, typer.Option(help="Data to evaluate on (default: the run's own).")] = None,
    split: Annotated[str | None, typer.Option(help="Split (default: the run's own).")] = None,
    clips: Annotated[int, typer.Option(min=1, help="Clips per video, predictions averaged.")] = 1,
    bs: Annotated[int, typer.Option(min=1, help="Batch size.")] = 16,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes for decoding.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    report: Annotated[bool, typer.Option(help="Write confusion.png, per_class.csv and report.html.")] = True,
) -> None:
    """Top-1, top-5, mean class accuracy, per-class accuracy and confusion matrix of a run; writes its report."""
    import json

    from vidseq.evaluate import evaluate_run, write_report
    from vidseq.runs import load_run

    loaded = load_run(run)
    ev = evaluate_run(loaded, data=data, split=split, clips=clips, bs=bs, workers=workers)
    paths = write_report(loaded, ev) if report else {}
    if json_out:
        typer.echo(json.dumps({**ev.summary(), "per_class": ev.per_class(), "confusion": ev.confusion.tolist(),
                               "classes": ev.classes, "files": {k: str(v) for k, v in paths.items()}}, indent=2))
        return
    s = ev.summary()
    typer.echo(f"{run}: {s['videos']} videos, {clips} clip(s) each")
    typer.echo(f"  top-1 {_pct(s['top1'])}   top-5 {_pct(s['top5'])}   mean class accuracy "
               f"{_pct(s['mean_class_accuracy'])}")
    _print_table([{**r, "accuracy": _pct(r["accuracy"]) if r["videos"] else "-"} for r in ev.per_class()],
                 ["class", "videos", "correct", "accuracy"])
    if paths:
        typer.echo(f"report: {paths['report']}")


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    videos: Annotated[list[Path], typer.Argument(help="Video files (any container PyAV opens) or frame "
                                                      "folders.")],
    top: Annotated[int, typer.Option(min=1, help="How many classes to show per file.")] = 5,
    clips: Annotated[int, typer.Option(min=1, help="Clips per video, predictions averaged.")] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON.")] = False,
) -> None:
    """Classify video files directly (no extraction); a bad file gets one error line, the rest go on."""
    import json

    from vidseq.predict import predict_files

    preds = predict_files(run, videos, top=top, clips=clips)
    if json_out:
        typer.echo(json.dumps([p.to_dict() for p in preds], indent=2))
    else:
        for p in preds:
            if p.error:
                typer.echo(f"vidseq: error: {p.error}", err=True)
                continue
            typer.echo(p.path)
            for label, prob in p.top:
                typer.echo(f"  {prob:6.1%}  {label}")
    if all(p.error for p in preds):
        raise typer.Exit(1)


@app.command()
def show(
    data: Annotated[str, typer.Argument(help="A frames tree, a videos tree, a dataset name or a CSV.")],
    out: Annotated[Path, typer.Option(help="Where to save the picture.")] = Path("batch.png"),
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 5,
    size: Annotated[int, typer.Option(min=8, help="Frame size in pixels.")] = 64,
    n: Annotated[int, typer.Option(min=1, help="How many clips to show.")] = 8,
    sampler: Annotated[str, typer.Option(callback=_sampler, help="Frame sampler.")] = "random",
    split: Annotated[str, typer.Option(help="auto, official:N, group, random, or csv.")] = "auto",
    augment: Annotated[bool, typer.Option(help="Show training augmentation.")] = True,
) -> None:
    """Save a picture of a training batch (fastai's show_batch): first, middle and last frame of each clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidseq.data import dataloaders_from_items
    from vidseq.datasets import load_items

    kinds = plt.gcf().canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in kinds:
        raise VidseqError(f"{out}: cannot save a picture of that kind; end the name in .{' .'.join(sorted(kinds))}")
    if not out.parent.is_dir():
        raise VidseqError(f"{out.parent}: no such folder to save {out.name} in")
    items = load_items(data, split=split)
    dls = dataloaders_from_items(items, bs=n, image_size=size, seq_len=frames, sampler=sampler, augment=augment,
                                 workers=0, device="cpu")
    dls.show_batch(max_n=n)
    plt.savefig(out, dpi=90, bbox_inches="tight")
    typer.echo(f"saved {out}")


@app.command("cache")
def cache_cmd(
    data: Annotated[str, typer.Argument(help="A frames tree, a videos tree, a dataset name or a CSV.")],
    dest: Annotated[Path, typer.Argument(help="Cache folder to write.")],
    size: Annotated[int, typer.Option(min=8, help="Side of the cached square frames (a little above the training "
                                                 "size).")] = 72,
    frames: Annotated[int, typer.Option(min=1, help="Frames kept per video, spread evenly.")] = 32,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: one per core).")] = None,
) -> None:
    """Decode every clip once into a memory-mapped uint8 cache, so training loads clips at memory speed."""
    from vidseq.cache import ClipCache, build_cache
    from vidseq.datasets import load_items

    items = load_items(data, split="none").items  # a cache serves any split
    build_cache([it.path for it in items], dest, labels=[it.label for it in items], size=size, frames=frames,
                workers=workers, progress=True)
    c = ClipCache(dest)
    cached = [it for it in items if it.path in c]
    frames = sum(c.count(it.path) for it in cached)
    typer.echo(f"cached {len(cached)} of {len(items)} items ({frames} frames of {c.size}x{c.size}) in {dest}")
    left_out = [why for why in map(c.left_out, (it.path for it in items)) if why]
    if left_out:
        typer.echo(f"  left out {len(left_out)} unreadable item(s), e.g. {left_out[0]}; all of them with their "
                   f"reasons in {c.dest / 'index.json'}")


@app.command("models")
def models_cmd() -> None:
    """List the registered models, each with its options (`vidseq train -o KEY=VALUE`) and their defaults."""
    import inspect

    from vidseq.models import list_models, model_options
    from vidseq.models._registry import _builder

    for name in list_models():
        doc = (inspect.getdoc(_builder(name)) or "").split("\n\n")[0].replace("\n", " ")
        options = ", ".join(f"{k}={v!r}" for k, v in model_options(name).items())
        typer.echo(f"{name}: {doc}" + (f"\n    options: {options}" if options else ""))


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's data and runs.")] = Path("demo"),
    epochs: Annotated[int | None, typer.Option(help="Epochs per model (default: CPU-sized per model).")] = None,
) -> None:
    """The main job on built-in sample data: synth -> extract -> train three models -> evaluate -> predict."""
    from vidseq.demo import run_demo

    run_demo(out, epochs=epochs)


@app.command()
def download(
    name: Annotated[str, typer.Argument(help="Dataset: ucf101 or hmdb51.")],
    dest: Annotated[Path | None, typer.Option(help="Folder for the archives and the unpacked dataset "
                                                   "(default: fastai's archive and data folders).")] = None,
) -> None:
    """Download UCF101 or HMDB51 with its official split lists and unpack it safely.

    Resumes an interrupted download; skips what is already complete. Without network, says where to put
    an archive downloaded by hand.
    """
    from vidseq.datasets import fetch_dataset
    from vidseq.download import DownloadError

    try:
        root = fetch_dataset(name, dest=dest, progress=True, log=lambda m: typer.echo(m, err=True))
    except DownloadError as e:  # the work could not be done: exit 1, still one line
        typer.echo(f"vidseq: error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{name.lower()} is ready in {root}")
    typer.echo(f"  next: vidseq info {root}")


@app.command()
def unpack(
    archive: Annotated[Path, typer.Argument(help="A RAR, ZIP or TAR archive (told apart by content).")],
    dest: Annotated[Path, typer.Argument(help="Folder to unpack into (created if needed).")],
    recursive: Annotated[bool, typer.Option(help="Also unpack archives found inside (HMDB51's per-class "
                                                 "RARs).")] = False,
) -> None:
    """Unpack an archive safely: members that would land outside DEST make it refused as unsafe."""
    from vidseq.archive import unpack as unpack_archive

    entries = unpack_archive(archive, dest, recursive=recursive, progress=True)
    typer.echo(f"unpacked {archive} into {dest}: {', '.join(p.name for p in entries[:10])}"
               + (f" and {len(entries) - 10} more" if len(entries) > 10 else ""))


@app.command()
def info(
    data: Annotated[str, typer.Argument(help="ucf101, hmdb51, a folder of class folders (videos or frame "
                                             "folders) or a CSV manifest path,label[,split].")],
    split: Annotated[str, typer.Option(help="auto, official, official:N, group, random, csv or none (every "
                                            "item for training).")] = "auto",
    valid_pct: Annotated[float, typer.Option(help="Share of each class for validation (group/random).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the group/random split.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a dataset's classes, split counts per class, groups, missing entries and leakage warnings."""
    import json

    from vidseq.datasets import format_summary, load_items

    summary = load_items(data, split=split, valid_pct=valid_pct, seed=seed).summary()
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@app.command()
def extract(
    src: Annotated[Path, typer.Argument(help="A folder tree of videos (.avi .mp4 .mkv .webm .mov ...) or one video.")],
    dest: Annotated[Path, typer.Argument(help="Folder for the frames: DEST/<Class>/<video_stem>/<i>.jpg.")],
    size: Annotated[int | None, typer.Option(min=1, help="Resize so the short side is SIZE pixels "
                                                         "(default: keep the video's size).")] = None,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality, 1-100.")] = 90,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: the CPUs "
                                                            "available).")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: do only shard I of N (1 <= I <= N), so N machines "
                                                   "can share one dataset.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo videos whose frames are already "
                                                                "complete.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one video may take before its worker is "
                                                       "stopped and the video recorded as failed.")] = 600.0,
) -> None:
    """Turn videos into folders of JPEG frames, fast, atomically and resumably.

    Writes DEST/<Class>/<video_stem>/0.jpg, 1.jpg, ... (deeper folders of SRC are kept), DEST/manifest.csv
    and DEST/failures.jsonl (per shard: manifest-shard-I-of-N.csv, failures-shard-I-of-N.jsonl), and
    copies UCF101's/HMDB51's split lists found in SRC or beside it. A rerun skips complete videos.
    Exit 0 when DEST has frames to use (from this run or an earlier one), 1 when none could be extracted.
    """
    from vidseq.extract import extract_dataset, parse_shard

    part = None
    if shard is not None:
        try:
            part = parse_shard(shard)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="'--shard'") from None
    s = extract_dataset(src, dest, size=size, quality=quality, workers=workers, shard=part, overwrite=overwrite,
                        timeout=timeout, progress=True)
    fresh = s.done + s.partial
    typer.echo(f"extracted {fresh} videos" + (f" ({s.partial} partial)" if s.partial else "")
               + f", skipped {s.skipped} complete, {s.failed} failed"
               + (f" of {s.videos} in shard {part[0]}/{part[1]}" if part else f" of {s.videos}")
               + f"; {s.frames:,} frames in {s.seconds:.1f} s ({s.frames_per_second:,.0f} frames/s)")
    typer.echo(f"  frames: {s.dest}/<Class>/<video>/<i>.jpg; manifest: {s.manifest}")
    if s.failed:
        typer.echo(f"  failures ({s.failed}): {s.failures}")
    for lists in s.split_lists:
        typer.echo(f"  split lists: {lists}")
    if not s.ok:
        typer.echo(f"vidseq: nothing could be extracted ({s.failed} failed; reasons in {s.failures})", err=True)
        raise typer.Exit(1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidseq` script: runs a command, turns user errors into one line and exit 2."""
    args = sys.argv[1:] if argv is None else list(argv)
    _ARGV[:] = args  # the command line as given, for commands that start child processes (train --gpus)
    _INTERRUPTED[0] = "vidseq: interrupted"
    try:
        rv = app(args=args, prog_name="vidseq", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as e:
        if e.ctx:
            typer.echo(e.ctx.get_help())
        return 2
    except click_exc.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "vidseq"
        typer.echo(f"{cmd}: error: {e.format_message()} (see '{cmd} --help')", err=True)
        return 2
    except VidseqError as e:
        typer.echo(f"vidseq: error: {e}", err=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        rv = 130
    if rv == 130:  # Ctrl-C: typer turns KeyboardInterrupt into Exit(130), which comes back as the return value
        typer.echo(_INTERRUPTED[0], err=True)
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
