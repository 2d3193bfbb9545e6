import subprocess
import sys

import pytest

from vidseq.cli import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("synth", "demo"):
        assert cmd in out


def test_synth_command_writes_dataset(tmp_path, capsys):
    rc = main(["synth", str(tmp_path / "d"), "--preset", "tiny", "--seed", "1"])
    assert rc == 0
    assert "wrote 16 videos" in capsys.readouterr().out
    assert (tmp_path / "d" / "ucfTrainTestlist" / "trainlist01.txt").is_file()


@pytest.mark.parametrize("args", [
    ["synth"],
    ["synth", "x", "--size", "3x"],
    ["synth", "x", "--classes", "40"],
    ["synth", "x", "--preset", "huge"],
    ["synth", "x", "--bogus"],
    ["no-such-command"],
])
def test_usage_errors_give_one_line_and_exit_2(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "vidseq", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "synth" in out.stdout


def test_models_lists_each_model_with_its_options(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("frame_avg", "cnn_lstm", "tsm", "r2plus1d_18", "timesformer"):
        assert f"\n{name}: " in "\n" + out
    assert "recompute_mlp=False" in out and "time_kernel='auto'" in out and "shift_div=8" in out
