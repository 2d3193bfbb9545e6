"""What `vidseq predict --timeline` and `--stream` print and write (the options live on `predict`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from vidseq.errors import VideoError, VidseqError


def timelines(run, videos: list[Path], *, window: float, stride: float | None, threshold: float | None,
              min_length: float | None, smooth: int, top: int, out: Path, json_out: bool, device: str | None) -> None:
    """Each video's timeline: segments on stdout (or the whole timeline as JSON), and in `out`
    ``<name>.timeline.json`` (windows and segments), ``<name>.timeline.png`` and one ``segments.csv`` for all."""
    import sys

    from vidseq.files import atomic_write_text, output_folder
    from vidseq.timeline import plot_timeline, predict_timeline, segments_csv

    folder = output_folder(out, what="timeline folder")
    done, failed, dumps = [], 0, []
    for video in videos:
        try:
            tl = predict_timeline(run, video, window=window, stride=stride, threshold=threshold,
                                  min_length=min_length, smooth=smooth, device=device, progress=sys.stderr.isatty())
        except VideoError as e:
            typer.echo(f"vidseq: error: {e}", err=True)
            failed += 1
            continue
        name = Path(video).name
        data = tl.to_dict(top)
        atomic_write_text(folder / f"{name}.timeline.json", json.dumps(data, indent=1) + "\n")
        plot_timeline(tl, folder / f"{name}.timeline.png")
        done.append(tl)
        if json_out:
            dumps.append(data)
            continue
        n = len(tl.probs)
        typer.echo(f"{video}: {tl.duration:.1f} s, {n} window{'s' * (n != 1)} of {tl.window:g} s, "
                   f"{len(tl.segments)} segment(s)")
        for s in tl.segments:
            typer.echo(f"  {_clock(s.start)} - {_clock(s.end)}  {s.score:6.1%}  {s.label}")
        for note in tl.notes():
            typer.echo(f"vidseq: warning: {video}: {note}", err=True)
        if tl.incomplete:
            typer.echo(f"vidseq: warning: {video}: {tl.incomplete}; the timeline stops there", err=True)
    if done:
        atomic_write_text(folder / "segments.csv", segments_csv(done))
    if json_out:
        typer.echo(json.dumps(dumps, indent=2))
    elif done:
        typer.echo(f"timelines: {folder} (<video>.timeline.json, <video>.timeline.png, segments.csv)")
    if failed == len(videos):
        raise typer.Exit(1)


def follow_stream(run, source: str, *, window: float, stride: float | None, threshold: float | None,
                  json_out: bool, device: str | None, timeout: float, retries: int) -> None:
    """A line each time the top label changes (a JSON line with `json_out`), with the latency from frame to
    decision; the source's losses and reconnections on stderr; Ctrl-C stops cleanly."""
    from vidseq.timeline.stream import Backoff, Decision, follow

    decisions = 0
    try:
        for event in follow(run, source, window=window, stride=stride, device=device, timeout=timeout,
                            threshold=0.5 if threshold is None else threshold, backoff=Backoff(retries=retries)):
            if isinstance(event, Decision):
                decisions += 1
                if not event.changed:
                    continue
                if json_out:
                    typer.echo(json.dumps(event.to_dict()))
                else:
                    what = f"{event.label}  {event.probability:6.1%}" if event.label else "(below the threshold)"
                    typer.echo(f"{_clock(event.time)}  {what}  latency {event.latency * 1000:.0f} ms")
            elif event.event == "lost":
                typer.echo(f"vidseq: {event.message}; trying again in {event.wait:g} s", err=True)
            elif event.event == "gave up":
                typer.echo(f"vidseq: error: {event.message}", err=True)
                raise typer.Exit(1)
            else:
                typer.echo(f"vidseq: {event.message}", err=True)
    except KeyboardInterrupt:
        typer.echo(f"vidseq: stopped after {decisions} decision(s)", err=True)


def _clock(t: float) -> str:
    m, s = divmod(t, 60)
    return f"{int(m):02d}:{s:05.2f}"


def check_modes(run: Path, videos: list[Path], *, timeline: bool, stream: str | None, clips: int, crops: int) -> None:
    """Usage errors of predict's modes, before anything is loaded."""
    if run.is_file():
        raise VidseqError(path=run, reason="is a file, not a run folder; give the run folder made by 'vidseq train' "
                          "first: vidseq predict RUN VIDEO...")
    if stream is not None and videos:
        raise VidseqError("give either VIDEOS or {stream}, not both", params={"stream": stream})
    if stream is None and not videos:
        raise VidseqError("give video files to classify, or {stream}", params={"stream": "SOURCE"})
    if (timeline or stream is not None) and (clips != 1 or crops != 1):
        raise VidseqError("{clips} and {crops} apply to whole files; a timeline scores windows of one clip each",
                          params={"clips": clips, "crops": crops})
