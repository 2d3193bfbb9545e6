"""Commands on data: synth, download, unpack, info, extract, cache, show."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vidseq.cli.app import _sampler, _size, app
from vidseq.errors import VidseqError


@app.command()
def synth(
    dest: Annotated[Path, typer.Argument(help="Folder to write the dataset into.")],
    preset: Annotated[str, typer.Option(help="Starting size: tiny, default, demo (CPU training) or bench "
                                              "(UCF101-like 320x240).")] = "default",
    classes: Annotated[int | None, typer.Option(help="Number of motion classes (2-12).")] = None,
    groups: Annotated[int | None, typer.Option(help="Groups per class; groups 1-7 form the test list.")] = None,
    clips: Annotated[int | None, typer.Option(help="Clips per group (with --multi-label: per group and class, "
                                                   "so a group holds clips x classes).")] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per clip.")] = None,
    size: Annotated[str | None, typer.Option(help="Frame size WIDTHxHEIGHT, even numbers.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same dataset.")] = None,
    multi_label: Annotated[bool, typer.Option("--multi-label", help="A multi-label dataset instead: two panels a "
                                              "clip, each a motion (one label) or still, in DEST/labels.csv "
                                              "(2-6 classes).")] = False,
    long: Annotated[bool, typer.Option("--long", help="Untrimmed videos instead: each a run of segments of the "
                                       "classes (2-4 actions each, some with a still scene before them), with the "
                                       "true segments in DEST/segments.csv.")] = False,
    videos: Annotated[int, typer.Option(min=1, help="With --long: how many long videos.")] = 4,
    segments: Annotated[int, typer.Option(min=1, help="With --long: segments per video.")] = 6,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the dataset DEST holds (its videos, "
                                            "lists and synth.json; other files stay) when it is not this one.")]
    = False,
) -> None:
    """Write a small UCF101-shaped dataset of motion classes (no download).

    Layout: DEST/videos/<Class>/v_<Class>_g<GG>_c<CC>.avi and DEST/ucfTrainTestlist/ with classInd.txt,
    trainlist01.txt and testlist01.txt (groups 1-7 in the test list, as UCF101's split 1), and DEST/synth.json
    with the settings. DEST must be new, empty or hold the same dataset (a rerun completes an interrupted one);
    another dataset there is refused unless --overwrite.
    """
    import dataclasses

    from vidseq.datasets.synth import PRESETS, make_synth
    from vidseq.datasets.synth_multilabel import MULTI_MOTIONS, make_multilabel_synth

    if preset not in PRESETS:
        raise VidseqError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    changes = {k: v for k, v in dict(classes=classes, groups=groups, clips=clips, frames=frames, seed=seed).items()
               if v is not None}
    if size is not None:
        changes["width"], changes["height"] = _size(size)
    if multi_label and classes is None:
        changes["classes"] = min(PRESETS[preset].classes, len(MULTI_MOTIONS))
    if long and multi_label:
        raise VidseqError("choose --long or --multi-label, not both")
    try:
        cfg = dataclasses.replace(PRESETS[preset], **changes)
        if long:
            _long_synth(dest, cfg, videos, segments, overwrite)
            return
        if multi_label:
            result = make_multilabel_synth(dest, cfg, progress=sys.stderr.isatty(), overwrite=overwrite)
    except ValueError as e:
        raise VidseqError(str(e)) from None
    if multi_label:
        typer.echo(f"wrote {result.videos} videos ({result.frames} frames, {cfg.width}x{cfg.height}, two panels) "
                   f"with one or two of {len(result.classes)} labels to {result.root}/videos")
        typer.echo(f"  classes: {', '.join(result.classes)}")
        typer.echo(f"  labels: {result.root}/labels.csv (train {result.train}, valid {result.test})")
        return
    result = make_synth(dest, cfg, progress=sys.stderr.isatty(), overwrite=overwrite)
    typer.echo(f"wrote {result.videos} videos ({result.frames} frames, {cfg.width}x{cfg.height}) of "
               f"{len(result.classes)} classes to {result.root}/videos")
    typer.echo(f"  classes: {', '.join(result.classes)}")
    typer.echo(f"  split lists: {result.root}/ucfTrainTestlist (train {result.train}, test {result.test})")


def _long_synth(dest: Path, cfg, videos: int, segments: int, overwrite: bool) -> None:
    from vidseq.datasets.synth_long import LongConfig, make_long_synth

    result = make_long_synth(dest, LongConfig(base=cfg, videos=videos, segments=segments),
                             progress=sys.stderr.isatty(), overwrite=overwrite)
    seconds = result.frames / cfg.fps
    typer.echo(f"wrote {result.videos} long video{'s' * (result.videos != 1)} ({seconds:.0f} s, "
               f"{cfg.width}x{cfg.height}) with {len(result.segments)} segments of {cfg.classes} classes to "
               f"{result.root}/long")
    typer.echo(f"  true segments: {result.csv} (path,label,start,end)")
    typer.echo(f"  their trimmed classes: vidseq synth DIR --classes {cfg.classes} --frames {cfg.frames} "
               f"--size {cfg.width}x{cfg.height} --seed {cfg.seed} (one action = {cfg.frames / cfg.fps:g} s)")


@app.command()
def show(
    data: Annotated[str, typer.Argument(help="A frames tree, a videos tree, a dataset name or a CSV.")],
    out: Annotated[Path, typer.Option(help="Where to save the picture.")] = Path("batch.png"),
    frames: Annotated[int, typer.Option(min=1, help="Frames per clip.")] = 5,
    size: Annotated[int, typer.Option(min=8, help="Frame size in pixels.")] = 64,
    n: Annotated[int, typer.Option(min=1, help="How many clips to show.")] = 8,
    sampler: Annotated[str, typer.Option(callback=_sampler, help="Frame sampler.")] = "random",
    split: Annotated[str, typer.Option(help="auto, official, official:N, group, random, csv or none.")] = "auto",
    augment: Annotated[bool, typer.Option(help="Show training augmentation.")] = True,
) -> None:
    """Save a picture of a training batch (fastai's show_batch): first, middle and last frame of each clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidseq.clips import dataloaders_from_items
    from vidseq.datasets import load_items

    kinds = plt.gcf().canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in kinds:
        raise VidseqError(path=out,
                          reason=f"cannot save a picture of that kind; end the name in .{' .'.join(sorted(kinds))}")
    if not out.parent.is_dir():
        raise VidseqError(path=out.parent, reason=f"no such folder to save {out.name} in")
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
    from vidseq.clips import ClipCache, build_cache
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
    from vidseq.datasets.download import DownloadError

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
    from vidseq.datasets.archive import unpack as unpack_archive

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

    from vidseq.datasets import format_summary, summarize

    summary = summarize(data, split=split, valid_pct=valid_pct, seed=seed)
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@app.command()
def extract(
    src: Annotated[Path, typer.Argument(help="A folder tree of videos (.avi .mp4 .mkv .webm .mov ...) or one video.")],
    dest: Annotated[Path | None, typer.Argument(help="Folder for the frames: DEST/<Class>/<video_stem>/<i>.jpg.",
                                                show_default=False)] = None,
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
    segments: Annotated[Path | None, typer.Option(help="Annotations with time ranges (a CSV with start,end columns, "
                                                       "a Kinetics CSV, a path start end label list): one frame "
                                                       "folder per segment, DEST/<label>/<video>_<start>_<end>/; "
                                                       "then give only DEST.")] = None,
) -> None:
    """Turn videos into folders of JPEG frames, fast, atomically and resumably.

    Writes DEST/<Class>/<video_stem>/0.jpg, 1.jpg, ... (deeper folders of SRC are kept), DEST/manifest.csv
    and DEST/failures.jsonl (per shard: manifest-shard-I-of-N.csv, failures-shard-I-of-N.jsonl), and
    copies UCF101's/HMDB51's split lists found in SRC or beside it. A rerun skips complete videos.
    Exit 0 when DEST has frames to use (from this run or an earlier one), 1 when none could be extracted.
    """
    from vidseq.extract import extract_dataset

    part = _shard(shard)
    if segments is not None:
        if dest is not None:
            raise VidseqError("with {segments} give only DEST (the videos are the ones the annotations name)",
                              params={"segments": segments})
        from vidseq.extract.segments import extract_segments

        s = extract_segments(segments, src, size=size, quality=quality, workers=workers, shard=part,
                             overwrite=overwrite, timeout=timeout, progress=True)
        for row in s.missing[:10]:
            typer.echo(f"vidseq: warning: left out {row}", err=True)
        if len(s.missing) > 10:
            typer.echo(f"vidseq: warning: ... and {len(s.missing) - 10} more rows left out", err=True)
        _report(s, part, "extracted", f"frames: {s.dest}/<label>/<video>_<start>_<end>/<i>.jpg, listed in "
                f"{s.dest}/frames.csv")
        return
    if dest is None:
        raise VidseqError("give SRC and DEST (or {segments} and DEST)", params={"segments": "ANNOTATIONS"})
    s = extract_dataset(src, dest, size=size, quality=quality, workers=workers, shard=part, overwrite=overwrite,
                        timeout=timeout, progress=True)
    layout = f"{s.dest}/{src.stem}/<i>.jpg" if src.is_file() else f"{s.dest}/<Class>/<video>/<i>.jpg"
    _report(s, part, "extracted", f"frames: {layout}")


def _shard(text: str | None) -> tuple[int, int] | None:
    from vidseq.extract import parse_shard

    if text is None:
        return None
    try:
        return parse_shard(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="'--shard'") from None


def _report(s, part: tuple[int, int] | None, verb: str, layout: str) -> None:
    """The summary of an extract or transcode run; exit 1 when DEST has nothing to use."""
    fresh = s.done + s.partial
    typer.echo(f"{verb} {fresh} video{'s' * (fresh != 1)}" + (f" ({s.partial} partial)" if s.partial else "")
               + f", skipped {s.skipped} complete, {s.failed} failed"
               + (f" of {s.videos} in shard {part[0]}/{part[1]}" if part else f" of {s.videos}")
               + f"; {s.frames:,} frames in {s.seconds:.1f} s ({s.frames_per_second:,.0f} frames/s)")
    typer.echo(f"  {layout}; manifest: {s.manifest}")
    if s.failed:
        typer.echo(f"  failures ({s.failed}): {s.failures}")
    for lists in s.split_lists:
        typer.echo(f"  split lists: {lists}")
    if not s.ok:
        typer.echo(f"vidseq: nothing could be {verb} ({s.failed} failed; reasons in {s.failures})", err=True)
        raise typer.Exit(1)


@app.command()
def transcode(
    src: Annotated[Path, typer.Argument(help="A folder tree of videos (.avi .mp4 .mkv .webm .mov ...) or one video.")],
    dest: Annotated[Path, typer.Argument(help="Folder for the new videos: DEST/<Class>/<video_stem>.mp4.")],
    size: Annotated[int, typer.Option(min=1, help="Resize so the short side is SIZE pixels (the training size "
                                                  "or a little more).")] = 128,
    gop: Annotated[int, typer.Option(min=1, help="A keyframe every GOP frames: smaller is faster to read "
                                                 "and bigger on disk.")] = 8,
    quality: Annotated[int, typer.Option(min=1, max=31, help="Quantiser, 1 (best, biggest) to 31.")] = 4,
    codec: Annotated[str, typer.Option(help="mpeg4 (fastest to decode) or h264 (smaller).")] = "mpeg4",
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: the CPUs "
                                                            "available).")] = None,
    shard: Annotated[str | None, typer.Option(help="I/N: do only shard I of N (1 <= I <= N).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Redo videos already transcoded.")] = False,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds one video may take before its worker is "
                                                       "stopped and the video recorded as failed.")] = 600.0,
) -> None:
    """Re-encode videos for training: short side SIZE, a keyframe every GOP frames, a fast-decoding codec.

    Several times smaller than frame folders of the same size, and read by seeking at frame-folder speed
    (train on DEST as on any folder of videos). Atomic per video and resumable like extract, with the same
    DEST/manifest.csv, failures.jsonl, shards and split lists.
    """
    from vidseq.extract import transcode_dataset

    if codec not in ("mpeg4", "h264"):
        raise typer.BadParameter(f"unknown codec {codec!r}; choose mpeg4 or h264", param_hint="'--codec'")
    part = _shard(shard)
    s = transcode_dataset(src, dest, size=size, gop=gop, quality=quality, codec=codec, workers=workers, shard=part,
                          overwrite=overwrite, timeout=timeout, progress=True)
    _report(s, part, "transcoded", f"videos: {s.dest}/{src.stem}.mp4" if src.is_file() else
            f"videos: {s.dest}/<Class>/<video>.mp4")
