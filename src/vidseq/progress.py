"""One progress line for every long job (download, unpack, extract, cache, synth): done/total, rate and ETA.

On a terminal the line is redrawn in place (at most every `interval` seconds); into a file or a pipe a whole
line is written every `every` seconds, and a last one when the job ends, so logs stay readable.

>>> bar = Progress("extract", 120, unit="videos", extra="frames")    # doctest: +SKIP
>>> bar.update(1, extra=180)                                          # one video of 180 frames done
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as file managers show sizes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def human_time(s: float) -> str:
    """Seconds as '42s', '3m05s' or '2h07m'."""
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def copy_stream(src, out, bar: Progress, *, chunk: int = 1 << 20) -> None:
    """Copy file object `src` to `out` in `chunk`-byte pieces, counting each on `bar`."""
    while buf := src.read(chunk):
        out.write(buf)
        bar.update(len(buf))


class Progress:
    """A one-line progress report: `label`, done / total `unit` (bytes shown as KB/MB/GB), percentage, an
    optional second count (`extra`, e.g. the frames of the videos done), the rate (of `extra` when given,
    else of `unit`) and the ETA.

    `enabled=None` means "when the stream is a terminal"; `enabled=True` also reports into a file or pipe, a
    line every `every` seconds, and a last one at the end (`last_line=False`: only after earlier lines, for a
    caller that prints its own summary). Use as a context manager, or call `close` at the end.
    """

    def __init__(self, label: str, total: int | None, *, unit: str = "bytes", extra: str | None = None, done: int = 0,
                 stream: TextIO | None = None, enabled: bool | None = None, interval: float = 0.5,
                 every: float = 30.0, last_line: bool = True):
        self.label, self.total, self.done, self.unit, self.extra_unit = label, total, done, unit, extra
        self.extra = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = (self.tty if enabled is None else enabled) and total != 0
        self.interval, self.every, self.last_line = interval, every, last_line
        self._start_done, self._t0 = done, time.monotonic()
        self._last = self._t0
        self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _fmt(self, n: float) -> str:
        return human_bytes(n) if self.unit == "bytes" else f"{int(n):,}"

    def line(self) -> str:
        """The current report, e.g. 'UCF101.rar  1.2 GB / 6.5 GB  (18%)  25.3 MB/s  ETA 3m30s'."""
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        unit = "" if self.unit == "bytes" else f" {self.unit}"
        parts = [self.label, self._fmt(self.done) + (f" / {self._fmt(self.total)}" if self.total else "") + unit]
        if self.total:
            parts.append(f"({100 * self.done / self.total:.0f}%)")
        if self.extra_unit:
            parts += [f"{self.extra:,} {self.extra_unit}", f"{self.extra / elapsed:,.0f} {self.extra_unit}/s"]
        else:
            parts.append(f"{self._fmt(rate)}/s" if self.unit == "bytes" else f"{rate:,.1f} {self.unit}/s")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {human_time((self.total - self.done) / rate)}")
        return "  ".join(parts)

    def update(self, n: int = 1, *, extra: int = 0) -> None:
        """Count `n` more units done (and `extra` more of the second count); report when it is time to."""
        self.done += n
        self.extra += extra
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < (self.interval if self.tty else self.every):
            return
        self._last = now
        self._write()

    def _write(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Write the final line (on a terminal, end the redrawn line)."""
        if not self.enabled:
            return
        if self.tty or self.last_line or self._drawn:
            self._write()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False
