"""Errors carry attributes for code and one line for people; parameters named in them read as Python in the
library and as flags on the command line."""

import pytest

from vidseq.cli.app import flag
from vidseq.errors import ModelError, TruncatedVideoError, VideoError, VidseqError


def test_an_error_has_its_path_and_reason_apart():
    e = VideoError(path="clip.avi", reason="has no video stream")
    assert str(e) == "clip.avi: has no video stream"
    assert (e.path, e.reason) == ("clip.avi", "has no video stream")
    assert VidseqError("no items to load").reason == "no items to load"
    assert VidseqError("a.csv: bad row", path="a.csv").reason == "bad row"


def test_subclasses_let_callers_branch_without_reading_the_text():
    e = TruncatedVideoError(path="v.avi", reason="frame 9 asked for, but only 6 frames decode", wanted=9, decoded=6)
    assert isinstance(e, VideoError) and (e.wanted, e.decoded) == (9, 6)


@pytest.mark.parametrize(("params", "python", "cli"), [
    ({"pretrained": False}, "pretrained=False", "--no-pretrained"),
    ({"sync_bn": True}, "sync_bn=True", "--sync-bn"),
    ({"bs": 8}, "bs=8", "--bs 8"),
    ({"device": "cpu"}, "device='cpu'", "--device cpu"),
])
def test_named_parameters_render_as_python_or_as_flags(params, python, cli):
    name = next(iter(params))
    e = ModelError(f"x: use {{{name}}} instead", params=params)
    assert str(e) == f"x: use {python} instead"
    assert e.render(flag) == f"x: use {cli} instead"


def test_braces_that_name_no_parameter_are_left_alone():
    assert str(VidseqError("{weird} path/{x}: no such file", params={"bs": 2})) == "{weird} path/{x}: no such file"


def test_a_fastai_wrapper_does_not_reach_the_message():
    e = ModelError("weights do not fit")
    e.args = ["Exception occured in `DDPTrainer` when calling event `before_fit`:\n\tweights do not fit"]
    assert str(e) == "weights do not fit"


def test_the_command_line_names_the_flag_where_the_library_names_the_parameter(tmp_path, capsys,
                                                                                 monkeypatch):
    import torch

    from vidseq.cli import main
    from vidseq.datasets.synth import PRESETS, make_synth

    tiny_synth = make_synth(tmp_path / "data", PRESETS["tiny"]).root

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    args = ["train", str(tiny_synth / "videos"), "--backbone", "resnet18", "--size", "32", "--frames", "3",
            "--out", str(tmp_path / "run")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-pretrained" in err[0] and "pretrained=False" not in err[0], err


def test_a_write_into_a_folder_removed_meanwhile_is_one_line(tmp_path, monkeypatch, capsys):
    import errno

    import vidseq.datasets
    from vidseq.cli import main
    from vidseq.errors import vanished

    gone = tmp_path / "out"
    fault = FileNotFoundError(errno.ENOENT, "No such file or directory", str(gone / "sub" / "report.html"))
    assert vanished(fault) == (f"{gone}: disappeared while vidseq was writing into it; make sure nothing else "
                               "removes it and run the same command again")  # the topmost folder that is gone
    assert vanished(FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "x"))) is None  # its folder is there

    def remove(*args, **kwargs):
        raise fault

    monkeypatch.setattr(vidseq.datasets, "summarize", remove)
    assert main(["info", str(tmp_path)]) == 1
    assert capsys.readouterr().err == f"vidseq: error: {vanished(fault)}\n"
