"""Safe unpacking: ZIP/TAR built here (including attacks), RAR from ../shared/fixtures/rar."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from vidseq.datasets import archive as archive_mod
from vidseq.datasets.archive import Member, archive_format, check_members, rar_tool, unpack
from vidseq.errors import ArchiveError, UnsafeArchiveError

needs_rar_tool = pytest.mark.skipif(rar_tool() is None, reason="no RAR tool (unrar, unar, 7z, bsdtar) installed")


def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                ti = tarfile.TarInfo(m[0])
                ti.size = len(m[1])
                tf.addfile(ti, io.BytesIO(m[1]))
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = kind, target
    return ti


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ---------------------------------------------------------------- ZIP and TAR


def test_zip_unpacks_into_new_folder(tmp_path):
    arc = make_zip(tmp_path / "a.zip", {"ucfTrainTestlist/classInd.txt": b"1 A\n", "top.txt": b"t"})
    out = unpack(arc, tmp_path / "data" / "UCF101")
    assert [p.name for p in out] == ["top.txt", "ucfTrainTestlist"]
    assert (tmp_path / "data/UCF101/ucfTrainTestlist/classInd.txt").read_bytes() == b"1 A\n"
    assert listing(tmp_path / "data") == ["UCF101", "UCF101/top.txt", "UCF101/ucfTrainTestlist",
                                          "UCF101/ucfTrainTestlist/classInd.txt"]  # no temp folder left


def test_unpack_into_existing_folder_adds_entries_and_refuses_clashes(tmp_path):
    dest = tmp_path / "dest"
    (dest / "keep").mkdir(parents=True)
    a = make_zip(tmp_path / "a.zip", {"x/1.txt": b"1"})
    assert unpack(a, dest) == [dest / "x"]
    b = make_zip(tmp_path / "b.zip", {"x/2.txt": b"2", "y.txt": b"y"})
    with pytest.raises(ArchiveError, match="already exists"):
        unpack(b, dest)
    assert listing(dest) == ["keep", "x", "x/1.txt"]


def test_tar_gz_unpacks_with_inside_symlink(tmp_path):
    arc = make_tar(tmp_path / "a.tgz", [("d/x.txt", b"hello"), link("d/alias.txt", "x.txt")], "w:gz")
    assert archive_format(arc) == "tar"
    unpack(arc, tmp_path / "out")
    alias = tmp_path / "out/d/alias.txt"
    assert alias.is_symlink() and alias.read_bytes() == b"hello"


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt", "..\\evil.txt",
                                  "C:/evil.txt", "ok/../../../evil.txt"])
def test_zip_with_escaping_names_is_refused(tmp_path, name):
    arc = make_zip(tmp_path / "evil.zip", {"fine.txt": b"ok", name: b"pwned"})
    dest = tmp_path / "w" / "dest"
    with pytest.raises(UnsafeArchiveError, match="unsafe archive"):
        unpack(arc, dest)
    assert listing(tmp_path / "w") == []  # nothing written, no temp folder left
    assert not list(tmp_path.rglob("evil.txt"))


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "../.."])
def test_zip_symlink_pointing_out_is_refused(tmp_path, target):
    arc = make_zip(tmp_path / "evil.zip", {"a.txt": b"a"}, symlinks={"sub/link": target})
    with pytest.raises(UnsafeArchiveError, match="sub/link"):
        unpack(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("members", [
    [("../evil.txt", b"x")],
    [("/tmp/evil.txt", b"x")],
    [link("up", "..")],
    [link("etc", "/etc")],
    [link("d/l", "../../x")],
    [link("hard", "../../outside", tarfile.LNKTYPE)],
    [link("ok", "sub"), ("ok/../../evil.txt", b"x")],
    [link("here", "."), ("here/file.txt", b"x")],  # written through a link member
], ids=["dotdot", "absolute", "symlink-up", "symlink-abs", "symlink-nested-up", "hardlink-out",
        "through-link-dotdot", "through-link"])
def test_tar_attacks_are_refused(tmp_path, members):
    arc = make_tar(tmp_path / "evil.tar", [("fine.txt", b"ok"), *members])
    (tmp_path / "w").mkdir()
    with pytest.raises(UnsafeArchiveError):
        unpack(arc, tmp_path / "w" / "dest")
    assert listing(tmp_path / "w") == []


def test_tar_device_file_is_refused(tmp_path):
    dev = tarfile.TarInfo("dev/null")
    dev.type = tarfile.CHRTYPE
    arc = make_tar(tmp_path / "dev.tar", [dev])
    with pytest.raises(UnsafeArchiveError, match="device"):
        unpack(arc, tmp_path / "dest")


def test_check_members_accepts_links_inside():
    check_members([Member("a/b", "symlink", target="../c"), Member("c", "file", 3),
                   Member("s/up", "symlink", target=".."), Member("h", "hardlink", target="a/x")], "x.tar")


def _tar_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(3):
            ti = tarfile.TarInfo(f"d/f{i}.bin")
            ti.size = 1000
            tf.addfile(ti, io.BytesIO(bytes([i]) * 1000))
    return buf.getvalue()


@pytest.mark.parametrize("cut", [512 + 1024, 512 + 600, 2 * 1536, 2 * 1536 + 100])
def test_truncated_tar_is_an_error(tmp_path, cut):
    """Cut at a member boundary (1536, 3072) as well as inside a member: never a silent partial result."""
    arc = tmp_path / "t.tar"
    arc.write_bytes(_tar_bytes()[:cut])
    with pytest.raises(ArchiveError, match="truncated"):
        unpack(arc, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.tar"]


def test_truncated_tar_gz_and_zip_are_errors(tmp_path):
    gz = make_tar(tmp_path / "a.tar.gz", [("x.bin", os.urandom(50_000)), ("y.bin", os.urandom(50_000))], "w:gz")
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size - 30])
    with pytest.raises(ArchiveError):
        unpack(gz, tmp_path / "d1")
    z = make_zip(tmp_path / "a.zip", {"x.bin": os.urandom(50_000)})
    z.write_bytes(z.read_bytes()[:-40])
    with pytest.raises(ArchiveError):
        unpack(z, tmp_path / "d2")
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


def test_not_an_archive_and_bad_dest(tmp_path):
    junk = tmp_path / "junk.rar"
    junk.write_bytes(b"definitely not an archive" * 10)
    with pytest.raises(ArchiveError, match="not a RAR, ZIP or TAR"):
        unpack(junk, tmp_path / "d")
    with pytest.raises(ArchiveError, match="no such file"):
        unpack(tmp_path / "missing.zip", tmp_path / "d")
    arc = make_zip(tmp_path / "a.zip", {"x": b"1"})
    (tmp_path / "file").write_text("")
    with pytest.raises(ArchiveError, match="not a folder"):
        unpack(arc, tmp_path / "file")


def test_leftover_temp_folder_of_an_interrupted_run_is_replaced(tmp_path):
    stale = tmp_path / ".dest.unpacking"
    (stale / "half").mkdir(parents=True)
    arc = make_zip(tmp_path / "a.zip", {"x/1.txt": b"1"})
    unpack(arc, tmp_path / "dest")
    assert listing(tmp_path / "dest") == ["x", "x/1.txt"] and not stale.exists()


def test_recursive_unpacks_nested_archives_in_place(tmp_path):
    inner = {c: make_zip(tmp_path / f"{c}.zip", {f"{c}/v_{c}_g01_c01.avi": b"v"}) for c in ("brush", "jump")}
    outer = make_tar(tmp_path / "outer.tar", [(p.name, p.read_bytes()) for p in inner.values()])
    out = unpack(outer, tmp_path / "hmdb51_org", recursive=True)
    assert archive_format(outer) == "tar"  # though it ends with a ZIP's directory
    assert [p.name for p in out] == ["brush", "jump"]  # inner archives unpacked and removed
    assert (tmp_path / "hmdb51_org/jump/v_jump_g01_c01.avi").read_bytes() == b"v"


def test_recursive_refuses_an_unsafe_inner_archive(tmp_path):
    bad = make_zip(tmp_path / "bad.zip", {"../../evil.txt": b"x"})
    outer = make_zip(tmp_path / "outer.zip", {"bad.zip": bad.read_bytes()})
    with pytest.raises(UnsafeArchiveError):
        unpack(outer, tmp_path / "w" / "dest", recursive=True)
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path / "w" / "dest").exists()


# ---------------------------------------------------------------- RAR fixtures


@pytest.fixture
def rars(shared_dir) -> Path:
    d = shared_dir / "fixtures" / "rar"
    if not d.is_dir():
        pytest.skip("no RAR fixtures in ../shared")
    return d


SUBDIR_FILES = ["sub", "sub/dir1", "sub/dir1/file1.txt", "sub/dir2", "sub/dir2/file2.txt", "sub/empty",
                "sub/with space", "sub/with space/long fn.txt", "sub/üȵĩöḋè", "sub/üȵĩöḋè/file.txt"]


@pytest.mark.parametrize("name", ["rar3-subdirs.rar", "rar5-subdirs.rar"])
def test_rar_with_subdirs_unpacks(rars, tmp_path, name):
    unpack(rars / name, tmp_path / "out")
    assert listing(tmp_path / "out") == SUBDIR_FILES
    assert (tmp_path / "out/sub/dir1/file1.txt").stat().st_size == 6


@needs_rar_tool
def test_solid_rar3_unpacks_with_a_rar_tool(rars, tmp_path):
    out = unpack(rars / "rar3-solid.rar", tmp_path / "out")
    assert [p.name for p in out] == ["stest1.txt", "stest2.txt"]
    assert all(p.stat().st_size == 2048 for p in out)


def test_solid_rar_without_tool_names_the_package(rars, tmp_path, monkeypatch):
    monkeypatch.setattr(archive_mod, "rar_tool", lambda: None)
    with pytest.raises(ArchiveError, match="apt-get install unar") as e:
        unpack(rars / "rar3-solid.rar", tmp_path / "out")
    assert "\n" not in str(e.value) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["rar5-evil-symlink-traversal.rar", "rar5-symlink-unix.rar"])
def test_rar_symlinks_out_of_destination_are_refused(rars, tmp_path, name):
    (tmp_path / "w").mkdir()
    with pytest.raises(UnsafeArchiveError, match="outside the destination"):
        unpack(rars / name, tmp_path / "w" / "dest")
    assert listing(tmp_path / "w") == [] and not list(tmp_path.rglob("pwned.txt"))


@pytest.mark.parametrize("name", ["rar3-subdirs.rar", "rar5-subdirs.rar", "rar3-solid.rar"])
@pytest.mark.parametrize("frac", [0.5, 0.97])
def test_truncated_rar_is_an_error(rars, tmp_path, name, frac):
    data = (rars / name).read_bytes()
    cut = tmp_path / name
    cut.write_bytes(data[: int(len(data) * frac)])
    with pytest.raises(ArchiveError, match="truncated"):
        unpack(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rar_inside_zip_unpacks_recursively(rars, tmp_path):
    shutil.copy(rars / "rar5-subdirs.rar", tmp_path / "brush_hair.rar")
    outer = make_zip(tmp_path / "outer.zip", {"brush_hair.rar": (tmp_path / "brush_hair.rar").read_bytes()})
    unpack(outer, tmp_path / "out", recursive=True)
    assert listing(tmp_path / "out") == SUBDIR_FILES
