"""The timeline picture: time on x, a coloured band per segment (named), the top probability of each window as a
line, the threshold as a dashed line; and the true segments in a band of their own where they are known."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vidseq.timeline.score import Timeline
from vidseq.timeline.windows import Segment


def plot_timeline(tl: Timeline, path: str | Path | None = None, *, truth: Sequence[Segment] = ()):
    """A `matplotlib.figure.Figure` of `tl` (no pyplot state touched); written to `path` as PNG when given."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    cmap = colormaps["tab20" if len(tl.classes) > 10 else "tab10"]
    colour = {c: cmap(i % cmap.N) for i, c in enumerate(tl.classes)}
    rows = 2 if truth else 1
    fig = Figure(figsize=(max(6.0, min(18.0, tl.duration / 4)), 1.6 + 0.6 * rows))
    ax = fig.subplots()
    bands = [("found", tl.segments)] + ([("true", list(truth))] if truth else [])
    for row, (_, segments) in enumerate(bands):
        y = 1.08 + 0.14 * row
        for s in segments:
            ax.axvspan(s.start, s.end, ymin=0, ymax=1, color=colour.get(s.label, "grey"), alpha=0.12 if row else 0.18,
                       lw=0)
            ax.broken_barh([(s.start, s.end - s.start)], (y, 0.11), color=colour.get(s.label, "grey"))
            ax.text((s.start + s.end) / 2, y + 0.055, s.label, ha="center", va="center", fontsize=7, clip_on=True)
    if len(tl.probs):
        ax.plot(tl.centres, tl.probs.max(1), color="black", lw=1, label="top probability")
    ax.axhline(tl.threshold, color="grey", ls="--", lw=0.8, label=f"threshold {tl.threshold:g}")
    ax.set_xlim(0, max(tl.duration, 1e-3))
    ax.set_ylim(0, 1.1 + 0.14 * rows)
    ax.set_yticks([0, 0.5, 1] + [1.135 + 0.14 * r for r in range(rows)],
                  ["0", "0.5", "1"] + [name for name, _ in bands])
    ax.set_xlabel("seconds")
    ax.set_title(f"{Path(tl.path).name}: {len(tl.segments)} segment(s), window {tl.window:g} s, "
                 f"stride {tl.stride:g} s", fontsize=9)
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=90)
    return fig
