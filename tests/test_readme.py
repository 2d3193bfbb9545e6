"""The README's "From Python" examples run as written, on tiny data (pretrained weights served locally)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_examples() -> list[str]:
    section = README.read_text().split("## From Python", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_python_examples():
    assert python_examples()


@pytest.mark.parametrize("code", python_examples())
def test_readme_python_example_runs(code, monkeypatch, tmp_path):
    import matplotlib
    import torch
    import torchvision

    from vidseq.datasets.synth import PRESETS, make_synth

    tiny_synth = make_synth(tmp_path / "data", PRESETS["tiny"]).root  # its own: other tests change the shared one

    matplotlib.use("Agg")  # the test's own choice: show_batch draws without a display
    monkeypatch.chdir(tmp_path)

    def local_weights(url, *args, **kwargs):  # no network here: torchvision's ResNet-34 of random weights
        return torchvision.models.resnet34().state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", local_weights)
    names = {"data": str(tiny_synth)}  # what the README says it assumes; the rest each example makes
    code = code.replace("fine_tune(3, 1e-3, freeze_epochs=3)", "fine_tune(1, 1e-3, freeze_epochs=1)")  # CPU-sized
    exec(compile(code, str(README), "exec"), names)
