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
