"""Hostile run folders: damaged weights and configs end in one line naming the file, before anything big is built
or allocated."""

from __future__ import annotations

import json
import pickle
import shutil
import struct

import pytest

from vidseq.cli import main


@pytest.fixture(scope="module")
def run(tiny_run):
    return tiny_run  # copied before each test damages it


def _weights(path, how):
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    elif how == "pickle":
        path.write_bytes(pickle.dumps({"weight": [1, 2, 3]}))
    else:  # a header that claims 50 GB
        path.write_bytes(struct.pack("<Q", 50 * 2**30) + b"{}")


def _config(path, how):
    c = json.loads(path.read_text())
    if how == "unknown model":
        c["model"]["name"] = "no_such_model"
    elif how == "wrong type":
        c["model"]["seq_len"] = "five"
    elif how == "huge frames":
        c["clip"]["frames"] = 10**9
    elif how == "huge size":
        c["clip"]["size"] = c["model"]["image_size"] = 10**6
    elif how == "classes disagree":
        c["model"]["n_classes"] = 5
    path.write_text(json.dumps(c))


@pytest.mark.parametrize("target,how,message", [
    ("model.safetensors", "truncated", "not a readable safetensors file"),
    ("model.safetensors", "pickle", "not a readable safetensors file"),
    ("model.safetensors", "huge header", "not a readable safetensors file"),
    ("config.json", "unknown model", "its model cannot be rebuilt here: unknown model 'no_such_model'"),
    ("config.json", "wrong type", "model.seq_len is 'five', not a whole number from 1 to 4096"),
    ("config.json", "huge frames", "clip.frames is 1000000000, not a whole number from 1 to 4096"),
    ("config.json", "huge size", "clip.size is 1000000, not a whole number from 1 to 4096"),
    ("config.json", "classes disagree", "weights do not fit the model in config.json"),
])
def test_a_damaged_run_folder_is_one_line_naming_the_file(run, tmp_path, capsys, target, how, message):
    bad = tmp_path / "run"
    shutil.copytree(run, bad)
    (_weights if target.endswith("safetensors") else _config)(bad / target, how)
    for command in (["evaluate", str(bad)], ["predict", str(bad), str(bad / "config.json")]):
        assert main(command) == 2, command
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and target in err[0], err
