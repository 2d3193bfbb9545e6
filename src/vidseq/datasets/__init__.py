"""Datasets: get UCF101 and HMDB51 (download and safe unpack), read their official split lists, and turn any
folder-per-class tree (of videos or of frame folders) or CSV manifest into labelled items with a split that
does not leak.

>>> items = load_items("ucf101")                        # doctest: +SKIP  (official split 1)
>>> items = load_items("frames/", split="group", valid_pct=0.2, seed=0)   # doctest: +SKIP
"""

from vidseq.datasets.fetch import DATASETS, DatasetSpec, Remote, dataset_dir, fastai_dirs, fetch_dataset
from vidseq.datasets.items import LABEL_SEP, Item, ItemSet, group_of, label_set, parent_label, scan_tree
from vidseq.datasets.load import SPLIT_MODES, load_items, read_annotations, resolve_data
from vidseq.datasets.manifest import Manifest, read_manifest_csv
from vidseq.datasets.splitlists import ListEntry, SplitLists, find_split_lists, read_class_index, read_split
from vidseq.datasets.splitters import GroupSplitter, StratifiedSplitter, split_groups
from vidseq.datasets.summary import format_summary, summarize
from vidseq.io import IMAGE_EXTENSIONS, is_frame_folder, is_frame_name

__all__ = [
    "DATASETS",
    "IMAGE_EXTENSIONS",
    "LABEL_SEP",
    "SPLIT_MODES",
    "DatasetSpec",
    "GroupSplitter",
    "Item",
    "ItemSet",
    "ListEntry",
    "Manifest",
    "Remote",
    "SplitLists",
    "StratifiedSplitter",
    "dataset_dir",
    "fastai_dirs",
    "fetch_dataset",
    "find_split_lists",
    "format_summary",
    "group_of",
    "is_frame_folder",
    "is_frame_name",
    "label_set",
    "load_items",
    "read_annotations",
    "parent_label",
    "read_class_index",
    "read_manifest_csv",
    "read_split",
    "resolve_data",
    "scan_tree",
    "split_groups",
    "summarize",
]
