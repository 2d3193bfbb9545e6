"""Get UCF101 and HMDB51: where they come from, where they go (fastai's folders), download and safe unpack."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from vidseq.errors import DatasetError


@dataclass(frozen=True)
class Remote:
    """One archive of a dataset: where it comes from and where under the dataset folder it unpacks."""

    url: str
    into: str = ""  # sub-folder of the dataset folder ("" = the dataset folder itself)
    recursive: bool = False  # unpack archives found inside (HMDB51 is a RAR of per-class RARs)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    folder: str  # under fastai's data folder
    remotes: tuple[Remote, ...]


DATASETS: dict[str, DatasetSpec] = {
    "ucf101": DatasetSpec("UCF101", "UCF101", (
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"),  # -> UCF101/UCF-101/<Class>/v_*.avi
        Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip"),  # ucfTrainTestlist/
    )),
    "hmdb51": DatasetSpec("HMDB51", "HMDB51", (
        Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
               into="hmdb51_org", recursive=True),  # -> HMDB51/hmdb51_org/<class>/*.avi
        Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/test_train_splits.rar"),
    )),
}


def _spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None


def fastai_dirs() -> tuple[Path, Path]:
    """fastai's archive and data folders from its own config (``~/.fastai/archive``, ``~/.fastai/data``)."""
    from fastai.data.external import fastai_cfg

    cfg = fastai_cfg()
    return Path(cfg.path("archive")), Path(cfg.path("data"))


def dataset_dir(name: str, *, dest: str | Path | None = None) -> Path:
    """Folder that holds dataset `name` once downloaded: ``<fastai data>/UCF101`` or ``<dest>/UCF101``."""
    spec = _spec(name)
    base = Path(dest).expanduser() if dest is not None else fastai_dirs()[1]
    return base / spec.folder


def fetch_dataset(name: str, *, dest: str | Path | None = None, progress: bool | None = None,
                  stream: TextIO | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Download and unpack UCF101 or HMDB51 with its split lists; return the dataset folder.

    Archives go to fastai's archive folder and unpack into ``<fastai data>/<NAME>``, or both into `dest`.
    Complete downloads and finished unpacks are not done again, so a rerun resumes where it stopped.
    """
    from vidseq.datasets.archive import unpack
    from vidseq.datasets.download import download, url_filename

    spec = _spec(name)
    archive_dir, data_dir = (Path(dest).expanduser(),) * 2 if dest is not None else fastai_dirs()
    root = data_dir / spec.folder
    say = log or (lambda _msg: None)
    for r in spec.remotes:
        have = archive_dir / url_filename(r.url)
        if have.is_file():
            say(f"already downloaded: {have}")
        else:
            resume = have.with_name(have.name + ".part").exists()
            say(f"{'resuming' if resume else 'fetching'} {r.url} -> {archive_dir}")
        arc = download(r.url, archive_dir, progress=progress, stream=stream)
        target = root / r.into if r.into else root
        stamp = root / f".{arc.name}.unpacked"
        if _stamp_done(stamp, root) or (r.into and target.is_dir() and any(target.iterdir())):
            say(f"already unpacked: {arc.name} -> {target}")
            continue
        say(f"unpacking {arc} -> {target}")
        entries = unpack(arc, target, recursive=r.recursive, progress=progress, stream=stream)
        root.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(sorted(str(e.relative_to(root)) for e in entries)) + "\n")
    return root


def _stamp_done(stamp: Path, root: Path) -> bool:
    try:
        names = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return bool(names) and all((root / n).exists() for n in names)
