"""One progress line for every long job (download, unpack, extract, cache, synth, training): done/total, rate
and ETA, drawn by tqdm.

On a terminal tqdm redraws its bar in place; into a file or a pipe, where a redrawn bar would fill the file with
carriage returns, a whole line in tqdm's format is written every `every` seconds, and a last one when the job
ends, so logs stay readable.

>>> bar = Progress("extract", 120, unit="videos", extra="frames")    # doctest: +SKIP
>>> bar.update(1, extra=180)                                          # one video of 180 frames done
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from tqdm import tqdm


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


_TOTAL = "{desc}  {percentage:3.0f}%  {n_fmt}/{total_fmt}{unit}  [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"
_OPEN = "{desc}  {n_fmt}{unit}  [{elapsed}, {rate_noinv_fmt}{postfix}]"  # total unknown: no percentage, no ETA
_BAR = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}{unit} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"


class Progress:
    """A one-line progress report: `label`, percentage, done / total `unit` (bytes shown as k/M/G, powers of
    1024), elapsed time and ETA, the rate, and an optional second count (`extra`, e.g. the frames of the videos
    done) with its rate.

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
        self.every, self.last_line = every, last_line
        self._start_done, self._t0 = done, time.monotonic()
        self._last = self._t0
        self._drawn = False
        scale = {"unit": "B", "unit_scale": True, "unit_divisor": 1024} if unit == "bytes" else {"unit": f" {unit}"}
        self._meter = dict(prefix=label, initial=done, **scale)
        self._bar = None
        if self.enabled and self.tty:
            self._bar = tqdm(total=total, initial=done, desc=label, file=self.stream, mininterval=interval,
                             dynamic_ncols=True, bar_format=_BAR if total else _OPEN, **scale)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _postfix(self, elapsed: float) -> str | None:
        if not self.extra_unit:
            return None
        return f"{self.extra:,} {self.extra_unit}, {self.extra / max(elapsed, 1e-9):,.0f} {self.extra_unit}/s"

    def line(self) -> str:
        """The current report, e.g. 'UCF101.rar   18%  1.17G/6.50GB  [00:47<03:30, 25.3MB/s]'."""
        elapsed = time.monotonic() - self._t0
        return tqdm.format_meter(self.done, self.total, elapsed, bar_format=_TOTAL if self.total else _OPEN,
                                 postfix=self._postfix(elapsed), **self._meter)

    def update(self, n: int = 1, *, extra: int = 0) -> None:
        """Count `n` more units done (and `extra` more of the second count); report when it is time to."""
        self.done += n
        self.extra += extra
        if not self.enabled:
            return
        if self._bar is not None:
            if extra and self.extra_unit:
                self._bar.set_postfix_str(self._postfix(time.monotonic() - self._t0), refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self._write()

    def _write(self) -> None:
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Write the final line (on a terminal, the bar's last state, left on screen)."""
        if not self.enabled:
            return
        self.enabled = False
        if self._bar is not None:
            self._bar.close()
        elif self.last_line or self._drawn:
            self._write()
