"""The `vidseq` command line: a thin layer over the library.

Every user mistake ends in one line on stderr and exit code 2; failures of the work itself exit 1.
"""

from __future__ import annotations

import sys
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


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the demo's data and runs.")] = Path("demo"),
) -> None:
    """Run the main job on built-in sample data: make the demo dataset and report what was made."""
    from vidseq.synth import PRESETS, make_synth

    cfg = PRESETS["demo"]
    typer.echo(f"[1/1] synthetic UCF101-shaped dataset ({cfg.classes} classes, {cfg.groups} groups, "
               f"{cfg.clips} clips, {cfg.frames} frames, {cfg.width}x{cfg.height})")
    result = make_synth(out / "data", cfg, progress=sys.stderr.isatty())
    typer.echo(f"  {result.videos} videos in {result.root}/videos; train {result.train}, test {result.test}")
    typer.echo(f"  classes: {', '.join(result.classes)}")


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
    split: Annotated[str, typer.Option(help="auto, official, official:N, group, random or csv.")] = "auto",
    valid_pct: Annotated[float, typer.Option(help="Share of each class for validation (group/random).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the group/random split.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show a dataset's classes, split counts per class, groups, missing entries and leakage warnings."""
    import json

    from vidseq.datasets import format_summary, load_items

    summary = load_items(data, split=split, valid_pct=valid_pct, seed=seed).summary()
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidseq` script: runs a command, turns user errors into one line and exit 2."""
    args = sys.argv[1:] if argv is None else argv
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
    except typer.Abort:
        typer.echo("vidseq: interrupted", err=True)
        return 130
    except VidseqError as e:
        typer.echo(f"vidseq: error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        typer.echo("vidseq: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
