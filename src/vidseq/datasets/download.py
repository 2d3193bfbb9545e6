"""Resumable HTTP downloads with a size check.

A download is written to ``<name>.part`` and renamed to ``<name>`` only when every byte has arrived, so a
file under its final name is always complete and is never fetched again. An interrupted download resumes
from where it stopped (an HTTP ``Range`` request); a server that ignores ``Range`` makes it start over.

>>> download("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", "~/.fastai/archive")  # doctest: +SKIP
PosixPath('/home/me/.fastai/archive/UCF101.rar')
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, TextIO
from urllib.parse import unquote, urlsplit

from vidseq import __version__
from vidseq.errors import DatasetError
from vidseq.progress import Progress, copy_stream, human_bytes

try:  # POSIX: keep two processes from appending to one .part file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CHUNK = 1 << 20
USER_AGENT = f"vidseq/{__version__} (python-urllib)"


class DownloadError(DatasetError):
    """A download that could not be done (no network, HTTP error, interrupted, wrong size)."""


def url_filename(url: str) -> str:
    """The file name a URL points at ('.../UCF101.rar' -> 'UCF101.rar')."""
    name = unquote(Path(urlsplit(url).path).name)
    if not name or name in (".", ".."):
        raise DownloadError(path=url, reason="the URL does not end in a file name")
    return name


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (-1, 1000); None when absent/unparsable."""
    if not value:
        return None
    m = _CONTENT_RANGE.match(value.strip())
    if m:
        return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))
    m = re.match(r"bytes\s+\*/(\d+)", value.strip(), re.I)
    return (-1, int(m.group(1))) if m else None


def _reason(e: BaseException) -> str:
    r = getattr(e, "reason", None)
    if r is not None and not isinstance(r, str):
        r = getattr(r, "strerror", None) or str(r)
    text = str(r or e) or type(e).__name__
    return text.splitlines()[0]


def download(url: str, folder: str | Path, *, filename: str | None = None, progress: bool | None = None,
             timeout: float = 60.0, stream: TextIO | None = None) -> Path:
    """Download `url` into `folder` (created if needed) and return the path of the complete file.

    A file already there under its final name is complete and is returned without any network access.
    Bytes go to ``<name>.part``, which a later call resumes with an HTTP Range request; the size is
    checked against the server's Content-Length/Content-Range before the rename. Any failure raises
    :class:`DownloadError` with one line naming the URL and where to put a file downloaded by hand.
    """
    folder = Path(folder).expanduser()
    final = folder / (filename or url_filename(url))
    if final.is_file():
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {folder} ({_reason(e)}); choose another destination") from None
    part = final.with_name(final.name + ".part")
    hint = f"download it by hand (e.g. 'wget -c {url}') and put it at {final}"
    with open(part, "ab") as out:
        if fcntl is not None:
            try:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise DownloadError(f"{part} is being written by another download; wait for it to finish") from None
        try:
            for _attempt in range(2):  # a second attempt only when the partial file has to be dropped
                restart = _fetch(url, out, part, final, hint, progress=progress, timeout=timeout, stream=stream)
                if not restart:
                    break
        except BaseException:
            if out.tell() == 0:  # nothing arrived: no .part to resume from, none left behind
                part.unlink(missing_ok=True)
            raise
    os.replace(part, final)
    return final


def _fetch(url: str, out: BinaryIO, part: Path, final: Path, hint: str, *, progress: bool | None,
           timeout: float, stream: TextIO | None) -> bool:
    """Append the missing bytes of `url` to `out`. True when the partial file was dropped (try again)."""
    have = out.seek(0, os.SEEK_END)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: complete already, or a stale larger file
            cr = _content_range(e.headers.get("Content-Range"))
            if cr and cr[1] == have:
                return False
            out.truncate(0)
            return True
        raise DownloadError(f"cannot download {url} (HTTP {e.code} {e.reason}); {hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise DownloadError(f"cannot download {url} ({_reason(e)}); {hint}") from None
    with resp:
        if have and resp.status == 206:
            cr = _content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] != have:
                out.truncate(0)
                return True
            total = cr[1]
        else:  # a fresh download, or a server that ignored Range: start from byte 0
            if have:
                out.truncate(0)
                out.seek(0)
                have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar = Progress(final.name, total, done=have, stream=stream, enabled=progress)
        try:
            copy_stream(resp, out, bar, chunk=CHUNK)
        except (OSError, ValueError) as e:  # includes http.client.IncompleteRead, timeouts, resets
            out.flush()
            raise DownloadError(f"download of {url} interrupted at {human_bytes(out.tell())}"
                                f"{' of ' + human_bytes(total) if total else ''} ({_reason(e)}); "
                                f"run the same command again to resume, or {hint}") from None
        finally:
            out.flush()
            bar.close()
    size = out.tell()
    if total is not None and size != total:
        if size > total:
            out.truncate(0)
            raise DownloadError(f"download of {url} gave {size} bytes, more than the {total} announced; "
                                f"the partial file was dropped, run the same command again")
        raise DownloadError(f"download of {url} stopped at {size} of {total} bytes; "
                            f"run the same command again to resume, or {hint}")
    return False
