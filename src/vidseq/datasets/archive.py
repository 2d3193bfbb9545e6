"""Safe unpacking of RAR, ZIP and TAR archives.

Every member is checked before anything is written: an absolute name, a ``..`` component, a link that
points outside the destination, a member written through a link, or a device file make the whole archive
:class:`~vidseq.errors.UnsafeArchiveError`. The archive is unpacked into a hidden temporary folder and
moved into place only when every member came out whole, so a truncated or corrupt archive (an
:class:`~vidseq.errors.ArchiveError`) leaves nothing behind.

RAR goes through ``rarfile`` (>= 4.5), which needs one of unrar, unar, 7z or bsdtar for compressed
members; TAR through ``tarfile`` with ``filter="data"``; ZIP through ``zipfile``.

>>> unpack("~/.fastai/archive/UCF101.rar", "~/.fastai/data/UCF101")  # doctest: +SKIP
[PosixPath('/home/me/.fastai/data/UCF101/UCF-101')]
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import rarfile

from vidseq.errors import ArchiveError, UnsafeArchiveError
from vidseq.progress import Progress, copy_stream

#: File name endings of archives that ``recursive=True`` unpacks again where they were found.
NESTED_SUFFIXES = (".rar", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
INSTALL_HINT = ("install a RAR tool: 'sudo apt-get install unar' on Debian/Ubuntu, 'brew install unar' on macOS, "
                "or any of unrar, 7z, bsdtar")
_COPY = 1 << 20
_MAX_NESTING = 3


@dataclass(frozen=True)
class Member:
    """One archive entry as the safety check sees it."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink" or "special"
    size: int = 0
    target: str | None = None  # link target for symlinks and hard links


def archive_format(path: str | Path) -> str:
    """'rar', 'zip' or 'tar', from the file's content (not its name); ArchiveError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(path=path, reason="no such file")
    if rarfile.is_rarfile(str(path)):
        return "rar"
    with open(path, "rb") as f:
        head = f.read(4)
    if head in (b"PK\x03\x04", b"PK\x05\x06"):  # by its first bytes: a TAR holding a ZIP ends like a ZIP
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, zlib.error):
        pass
    if zipfile.is_zipfile(path):  # a ZIP after a stub (self-extracting)
        return "zip"
    raise ArchiveError(path=path, reason="not a RAR, ZIP or TAR archive (or truncated before its first member)")


def rar_tool() -> str | None:
    """The command rarfile will use for compressed RAR members (unrar, unar, 7z, 7zz, bsdtar), or None."""
    try:
        setup = rarfile.tool_setup()
    except rarfile.RarCannotExec:
        return None
    key = setup.setup["open_cmd"][0]
    return str(getattr(rarfile, key, key))


def _unsafe(archive: Path, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(path=archive,
                              reason=f"unsafe archive refused, member {name!r} {why}; nothing was unpacked")


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name))


def check_members(members: Iterable[Member], archive: str | Path) -> None:
    """Raise UnsafeArchiveError unless every member lands inside the destination.

    Refused: absolute names, ``..`` components, links whose target is absolute or resolves outside the
    destination, members written through a link member, and device files or FIFOs.
    """
    archive = Path(archive)
    links: set[str] = set()
    for m in members:
        if _is_absolute(m.name):
            raise _unsafe(archive, m.name, "has an absolute path")
        parts = _parts(m.name)
        if ".." in parts:
            raise _unsafe(archive, m.name, "climbs out with '..'")
        if not parts:
            continue
        if m.kind == "special":
            raise _unsafe(archive, m.name, "is a device file or FIFO")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in links:
                raise _unsafe(archive, m.name, f"is written through the link {'/'.join(parts[:i])!r}")
        if m.kind in ("symlink", "hardlink"):
            target = m.target or ""
            if _is_absolute(target):
                raise _unsafe(archive, m.name, f"links to the absolute path {target!r}")
            base = "/".join(parts[:-1]) if m.kind == "symlink" else ""
            resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")) or ".")
            if resolved == ".." or resolved.startswith("../"):
                raise _unsafe(archive, m.name, f"links to {target!r}, outside the destination")
            if m.kind == "symlink":
                links.add("/".join(parts))


def _check_links_on_disk(root: Path, archive: Path) -> None:
    """Second line of defence: every symlink that was written resolves inside `root`."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                real = os.path.realpath(p)
                if real != real_root and not real.startswith(real_root + os.sep):
                    raise _unsafe(archive, os.path.relpath(p, root), "is a link that resolves outside the destination")


# ---------------------------------------------------------------- per-format readers


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and (mode & 0o170000) == 0o120000:  # a Unix symlink stored in the zip
            out.append(Member(info.filename, "symlink", info.file_size, zf.read(info).decode("utf-8", "replace")))
        elif info.is_dir():
            out.append(Member(info.filename, "dir"))
        else:
            out.append(Member(info.filename, "file", info.file_size))
    return out


def _unpack_zip(archive: Path, tmp: Path, bar_opts: dict) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(zf)
            check_members(members, archive)
            bar = Progress(archive.name, sum(m.size for m in members), **bar_opts)
            try:
                for info in zf.infolist():
                    if info.is_dir():
                        (tmp / Path(*_parts(info.filename))).mkdir(parents=True, exist_ok=True)
                        continue
                    _write_member(tmp / Path(*_parts(info.filename)), lambda info=info: zf.open(info), bar)
            finally:
                bar.close()
    except zipfile.BadZipFile as e:
        raise ArchiveError(path=archive, reason=f"corrupt or truncated ZIP archive ({e}); download it again") from None
    except (EOFError, zlib.error, NotImplementedError) as e:
        raise ArchiveError(path=archive, reason=f"cannot read ZIP archive ({e or type(e).__name__}); "
                           "download it again") from None


def _tar_member(ti: tarfile.TarInfo) -> Member:
    if ti.issym():
        return Member(ti.name, "symlink", 0, ti.linkname)
    if ti.islnk():
        return Member(ti.name, "hardlink", 0, ti.linkname)
    if ti.isdir():
        return Member(ti.name, "dir")
    if ti.isfile():
        return Member(ti.name, "file", ti.size)
    return Member(ti.name, "special")


def _unpack_tar(archive: Path, tmp: Path, bar_opts: dict) -> None:
    try:
        with tarfile.open(archive) as tf:
            infos = tf.getmembers()
            check_members([_tar_member(ti) for ti in infos], archive)
            bar = Progress(archive.name, sum(ti.size for ti in infos if ti.isfile()), **bar_opts)
            try:
                for ti in infos:
                    tf.extract(ti, tmp, filter="data")
                    if ti.isfile():
                        bar.update(ti.size)
            finally:
                bar.close()
            _check_tar_end(tf, archive)
    except tarfile.FilterError as e:
        raise _unsafe(archive, getattr(getattr(e, "tarinfo", None), "name", "?"), f"was refused ({e})") from None
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error) as e:
        raise ArchiveError(path=archive, reason=f"corrupt or truncated TAR archive ({e or type(e).__name__}); "
                           "download it again") from None


def _check_tar_end(tf: tarfile.TarFile, archive: Path) -> None:
    """A tar cut exactly between two members reads as complete: require its end-of-archive zero block,
    and read compressed streams to their end so that the decompressor checks its trailer."""
    f = tf.fileobj
    f.seek(tf.offset)
    block = f.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE or block.count(0) != tarfile.BLOCKSIZE:
        raise ArchiveError(path=archive, reason="truncated TAR archive (no end-of-archive marker); download it again")
    while f.read(_COPY):
        pass


def _rar_member(rf: rarfile.RarFile, info: rarfile.RarInfo) -> Member:
    if info.is_symlink():
        if info.file_redir:
            target = info.file_redir[2]
        else:
            target = rf.read(info).decode("utf-8", "replace")
        return Member(info.filename, "symlink", 0, target)
    if info.is_dir():
        return Member(info.filename, "dir")
    return Member(info.filename, "file", info.file_size)


def _needs_tool(info: rarfile.RarInfo) -> bool:
    return info.is_file() and (info.compress_type != rarfile.RAR_M0 or info.needs_password()
                               or bool(info.file_redir))


def _unpack_rar(archive: Path, tmp: Path, bar_opts: dict) -> None:
    seen_end = []

    def watch(h) -> None:
        if getattr(h, "type", None) == rarfile.RAR_BLOCK_ENDARC:
            seen_end.append(h)

    try:
        rf = rarfile.RarFile(str(archive), errors="strict", info_callback=watch)
    except rarfile.NeedFirstVolume:
        raise ArchiveError(path=archive, reason="a later part of a multi-volume RAR; unpack its first part") from None
    except (rarfile.Error, EOFError) as e:
        raise ArchiveError(path=archive, reason=f"corrupt or truncated RAR archive ({e}); download it again") from None
    with rf:
        if rf.needs_password():
            raise ArchiveError(path=archive, reason="the RAR archive is password-protected; vidseq cannot unpack it")
        infos = rf.infolist()
        if not seen_end:
            raise ArchiveError(path=archive,
                               reason="truncated RAR archive (no end-of-archive marker); download it again")
        size = os.path.getsize(archive)
        for info in infos if len(rf.volumelist()) == 1 else ():
            start = getattr(info, "data_offset", None)
            if start is not None and start + info.compress_size > size:
                raise ArchiveError(path=archive, reason=f"truncated RAR archive (member {info.filename!r} is cut off); "
                                   "download it again")
        if any(_needs_tool(i) for i in infos) and rar_tool() is None:
            raise ArchiveError(f"cannot unpack {archive}: no RAR tool is installed; {INSTALL_HINT}")
        try:
            members = [_rar_member(rf, i) for i in infos]
            check_members(members, archive)
            bar = Progress(archive.name, sum(m.size for m in members), **bar_opts)
            try:
                for info, m in zip(infos, members):
                    dst = tmp / Path(*_parts(m.name))
                    if m.kind == "dir":
                        dst.mkdir(parents=True, exist_ok=True)
                    elif m.kind == "symlink":
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        rf.extract(info, tmp)  # rarfile >= 4.5 refuses links that leave `tmp`
                    else:
                        _write_member(dst, lambda info=info: rf.open(info), bar)
            finally:
                bar.close()
        except rarfile.BadSymLinkError as e:
            raise _unsafe(archive, "?", f"is a link that was refused ({e})") from None
        except rarfile.RarCannotExec:
            raise ArchiveError(f"cannot unpack {archive}: no working RAR tool; {INSTALL_HINT}") from None
        except rarfile.NeedFirstVolume:
            raise ArchiveError(path=archive,
                               reason="a member starts in an earlier volume; unpack the first part") from None
        except (rarfile.Error, EOFError) as e:
            raise ArchiveError(path=archive, reason=f"corrupt or truncated RAR archive ({e or type(e).__name__}); "
                               "download it again") from None


def _write_member(dst: Path, opener, bar: Progress) -> None:
    """Write one file member to `dst` (its folders made first) from the file object `opener()` gives."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with opener() as src, open(dst, "wb") as out:
        copy_stream(src, out, bar, chunk=_COPY)


_READERS = {"rar": _unpack_rar, "zip": _unpack_zip, "tar": _unpack_tar}


def _nested(root: Path) -> list[Path]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            if f.lower().endswith(NESTED_SUFFIXES) and not p.is_symlink():
                found.append(p)
    return sorted(found)


# ---------------------------------------------------------------- public entry point


def unpack(archive: str | Path, dest: str | Path, *, recursive: bool = False, progress: bool | None = None,
           stream: TextIO | None = None) -> list[Path]:
    """Unpack `archive` (RAR, ZIP or TAR, told apart by content) into the folder `dest`.

    Returns the top-level paths that were added to `dest`. Unpacks into a hidden temporary folder and
    moves the result into place only when complete. If `dest` exists, an entry of the archive that is
    already there is an ArchiveError (nothing is moved). `recursive=True` also unpacks archives found
    inside (as HMDB51's RAR of per-class RARs), each where it lies, and deletes them.
    """
    archive = Path(archive).expanduser()
    dest = Path(dest).expanduser()
    fmt = archive_format(archive)
    if dest.exists() and not dest.is_dir():
        raise ArchiveError(path=dest, reason="exists and is not a folder; choose another destination")
    fresh = not dest.exists()
    try:
        if fresh:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.parent / f".{dest.name}.unpacking"
        else:
            tmp = dest / f".{archive.name}.unpacking"
        if tmp.exists() or tmp.is_symlink():  # left by an interrupted run
            _remove(tmp)
        tmp.mkdir()
    except OSError as e:
        raise ArchiveError(f"cannot create a folder in {dest.parent if fresh else dest} ({e.strerror or e}); "
                           "choose another destination") from None
    bar_opts = {"enabled": progress, "stream": stream}
    try:
        try:
            _READERS[fmt](archive, tmp, bar_opts)
            if recursive:
                for _ in range(_MAX_NESTING):
                    inner = _nested(tmp)
                    if not inner:
                        break
                    for a in inner:
                        _READERS[archive_format(a)](a, a.parent, bar_opts)
                        a.unlink()
            _check_links_on_disk(tmp, archive)
        except OSError as e:
            raise ArchiveError(f"cannot unpack {archive} into {dest} ({e.strerror or e})") from None
        if fresh:
            os.rename(tmp, dest)
            return sorted(dest.iterdir())
        entries = sorted(tmp.iterdir())
        clashes = [e.name for e in entries if (dest / e.name).exists() or (dest / e.name).is_symlink()]
        if clashes:
            raise ArchiveError(f"{dest / clashes[0]} already exists ({len(clashes)} of the archive's "
                               f"{len(entries)} top-level entries do); remove them or unpack elsewhere")
        for e in entries:
            os.rename(e, dest / e.name)
        return [dest / e.name for e in entries]
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)
