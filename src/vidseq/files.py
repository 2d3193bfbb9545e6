"""Writing outputs safely: folders that fail in one line, files that are never seen half-written."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from vidseq.errors import VidseqError, note_space, warn_data


def output_folder(path: str | Path, *, what: str = "output folder") -> Path:
    """Create folder `path` (and its parents) for a command's output, or fail with one line when it cannot be
    one: an existing file at that path or above it, no permission."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise VidseqError(path=path, reason=f"is a file, not a folder; give a folder path for the {what}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VidseqError(path=path, reason=f"cannot create the {what} ({e.strerror or e})") from None
    return path


#: The longest file name (in bytes) of the usual filesystems (ext4, XFS, Btrfs, APFS, NTFS in characters).
NAME_MAX = 255


def hidden_stem(name: str) -> str:
    """`name` itself, or where the hidden names built on it (``.<name>.tmp-<pid>``) would pass `NAME_MAX`, its first
    bytes and a hash of all of it: a 255-byte file name still gets its temporary, and always the same one."""
    raw = os.fsencode(name)
    if len(raw) <= NAME_MAX - 32:
        return name
    return os.fsdecode(raw[:NAME_MAX - 32 - 13]) + "~" + hashlib.sha1(raw).hexdigest()[:12]


def hidden_sibling(path: str | Path, tag: str, suffix: str = "") -> Path:
    """``.<name>.<tag><suffix>`` beside `path` (`tag` such as ``tmp-<pid>``), hidden from dataset scans."""
    path = Path(path)
    return path.with_name(f".{hidden_stem(path.name)}.{tag}{suffix}")


class OutsideLinks:
    """The symbolic links met while scanning folder `root` that lead outside it: left out (a dataset's files are
    its own; a link to elsewhere, or to /, is not followed), and reported in one warning by `warn`."""

    def __init__(self, root: str | Path):
        self.root, self.real = Path(root), os.path.realpath(root)
        self.links: list[str] = []

    def leads_out(self, path: str | Path) -> bool:
        """Whether `path` is a link leading outside `root` (then noted)."""
        if not os.path.islink(path):
            return False
        real = os.path.realpath(path)
        if real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep):
            return False
        self.links.append(os.fspath(path))
        return True

    def warn(self) -> None:
        if self.links:
            first = self.links[0]
            warn_data(f"{self.root}: left out {len(self.links)} symbolic link(s) leading outside it, e.g. {first} -> "
                      f"{os.path.realpath(first)}; copy or move what they point to into {self.root} to use it",
                      stacklevel=3)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, size: int | None = None) -> Iterator[Path]:
    """A hidden temporary path beside `path` to write to; renamed over `path` when the block ends without an
    error, removed when it raises. A reader (or a run killed half-way) never sees `path` half-written. `size`,
    the bytes about to be written where known, goes into the message of a full disk (else what fitted of them).

    >>> with atomic_path("model.safetensors") as tmp:          # doctest: +SKIP
    ...     save_file(state, tmp)
    """
    path = Path(path)
    tmp = hidden_sibling(path, f"tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a failed write() names no file: name the one being written
            e.filename = str(path)
        if e.errno in (errno.ENOSPC, errno.EDQUOT) and not hasattr(e, "needed"):
            note_space(e, needed=size, written=tmp.stat().st_size if size is None and tmp.exists() else None)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def usual_mode(path: str | Path) -> None:
    """Give file `path` the mode a file this process creates gets (0666 less the umask): safetensors creates its
    files 0600, which would leave a run's weights the one file of its folder that others sharing it cannot read."""
    os.chmod(path, 0o666 & ~_umask())


@functools.cache
def _umask() -> int:
    try:
        with open("/proc/self/status") as f:  # Linux: read without setting it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` atomically (see `atomic_path`)."""
    data = text.encode("utf-8", errors="surrogateescape")
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def named_errors(path: str | Path) -> Iterator[None]:
    """An OSError in the block names `path` where it names no file (a write to an open file, a full disk), so its
    one line says which folder is full."""
    try:
        yield
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise


def save_figure(fig, path: str | Path, **kwargs) -> Path:
    """``fig.savefig(path)`` atomically (a matplotlib Figure; its format from the name), so a full disk leaves no
    truncated picture."""
    import io

    path, buf = Path(path), io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".").lower() or None, **kwargs)
    data = buf.getvalue()
    with atomic_path(path, size=len(data)) as tmp:  # its size known: a full disk's message says it
        tmp.write_bytes(data)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def exclusive(dest: str | Path, *, what: str, key: str = "") -> Iterator[None]:
    """Hold the lock of output `dest` for the block: a second vidseq writing to the same `dest` (and `key`, e.g. one
    shard of it) refuses in one line naming the holder's pid instead of interleaving with the first. The lock is
    the operating system's (filelock's `flock`), so a process killed while holding it holds it no more.

    The lock file is ``.<dest name>.lock<key>`` beside `dest`, an empty hidden file that stays (removing it on
    release would let a third run lock a new file while a second still holds the old one).
    """
    from filelock import FileLock, Timeout

    dest = Path(dest)
    path = dest.with_name(f".{dest.name}.lock{key}")
    holder = path.with_name(path.name + ".pid")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, timeout=0)
        lock.acquire()
    except Timeout:
        try:
            pid = holder.read_text().strip() or "unknown"
        except OSError:
            pid = "unknown"
        if pid.isdigit() and not _alive(int(pid)):  # killed: a worker process it started still holds the lock
            raise VidseqError(path=dest, reason=f"is still locked by a worker of vidseq {what} run {pid}, which was "
                              "killed; the worker stops after its current item: try again in a moment") from None
        raise VidseqError(path=dest, reason=f"is being written by another vidseq {what} run (pid {pid}); wait for "
                          "it to finish, or give another folder") from None
    except OSError as e:
        raise VidseqError(path=dest, reason=f"cannot be written to ({e.strerror or e}); give a folder you can "
                          "write to") from None
    try:
        holder.write_text(f"{os.getpid()}\n")
    except OSError:
        pass  # the pid is only for the message a second run shows
    try:
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()
