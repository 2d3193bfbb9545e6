"""Memory and time against the count: `vidseq predict` over N tiny videos and `vidseq info` over a CSV manifest and
over UCF101-style split lists of N rows, each in a process of its own (peak RSS from wait4, wall time), at two
counts, with the ratios. Memory that does not grow with the count has a peak-RSS ratio near 1; time linear in the
count has a time ratio near the count ratio.

    python benchmarks/resources.py                          # predict 1,000 vs 4,000; info 10,000 vs 100,000
    python benchmarks/resources.py --predict 200 800 --info 1000 10000
    python benchmarks/resources.py --only info              # info alone (no model trained)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "vidseq"]


def measure(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `vidseq ARGS` run in a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"vidseq {' '.join(args[:3])} ... failed:\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # KB on Linux


def links(videos: list[Path], folder: Path, n: int, classes: int = 10) -> list[str]:
    """`n` hard links to `videos` (in turn: a file takes at most 65,000 links) in `classes` class folders under
    `folder` (distinct paths, no copying)."""
    paths = []
    for i in range(n):
        d = folder / f"Class{i % classes:02d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"v_Class{i % classes:02d}_g{i // classes % 25 + 1:02d}_c{i:06d}.avi"
        os.link(videos[i % len(videos)], p)
        paths.append(p.relative_to(folder).as_posix())
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predict", type=int, nargs=2, default=[1000, 4000], metavar=("N1", "N2"))
    ap.add_argument("--info", type=int, nargs=2, default=[10_000, 100_000], metavar=("N1", "N2"))
    ap.add_argument("--only", choices=("predict", "info"), help="measure one command only")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidseq-resources-") as tmp:
        tmp = Path(tmp)
        subprocess.run(CLI + ["synth", str(tmp / "data"), "--classes", "2", "--groups", "8", "--clips", "1",
                              "--frames", "6", "--size", "32x32"], check=True, capture_output=True)
        videos = sorted((tmp / "data" / "videos").rglob("*.avi"))
        if a.only != "info":
            subprocess.run(CLI + ["train", str(tmp / "data" / "videos"), "--model", "frame_avg", "--backbone",
                                  "resnet18", "--no-pretrained", "--frames", "2", "--size", "32", "--epochs", "1",
                                  "--workers", "0", "--out", str(tmp / "run")], check=True, capture_output=True)
        for n in a.predict if a.only != "info" else []:
            folder = tmp / f"predict-{n}"
            files = [str(folder / p) for p in links(videos, folder, n)]
            rows.append(("predict", n, *measure(["predict", str(tmp / "run"), *files, "--top", "1"])))
        for n in a.info if a.only != "predict" else []:
            folder = tmp / f"info-{n}"
            paths = links(videos, folder / "videos", n)
            csv = folder / "videos.csv"
            csv.write_text("path,label,split\n" + "".join(
                f"videos/{p},{p.split('/')[0]},{'valid' if i % 5 == 0 else 'train'}\n" for i, p in enumerate(paths)))
            rows.append(("info CSV", n, *measure(["info", str(csv), "--split", "csv"])))
            lists = folder / "videos" / "ucfTrainTestlist"
            lists.mkdir()
            (lists / "classInd.txt").write_text("".join(f"{c + 1} Class{c:02d}\n" for c in range(10)))
            (lists / "trainlist01.txt").write_text("".join(f"{p} {int(p[5:7]) + 1}\n" for i, p in enumerate(paths)
                                                           if i % 5))
            (lists / "testlist01.txt").write_text("".join(f"{p}\n" for i, p in enumerate(paths) if not i % 5))
            rows.append(("info split lists", n, *measure(["info", str(folder / "videos"), "--split", "official:1"])))
    print(f"{'command':<18} {'count':>8} {'seconds':>8} {'peak MB':>8}")
    for name, n, s, mb in rows:
        print(f"{name:<18} {n:>8,} {s:>8.1f} {mb:>8.0f}")
    print(f"\n{'command':<18} {'count x':>8} {'time x':>8} {'memory x':>8} {'s / 1k items':>14}")
    for name in dict.fromkeys(r[0] for r in rows):
        (_, n1, s1, m1), (_, n2, s2, m2) = [r for r in rows if r[0] == name]
        print(f"{name:<18} {n2 / n1:>8.1f} {s2 / s1:>8.2f} {m2 / m1:>8.2f} {1000 * (s2 - s1) / (n2 - n1):>14.2f}")


if __name__ == "__main__":
    main()
