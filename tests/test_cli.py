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
    ["synth", "x", "--seed", "-1"],
    ["synth", "afile", "--preset", "tiny"],
    ["synth", "afile/sub", "--preset", "tiny"],
    ["cache", "x", "c", "--frames", "0"],
    ["cache", "x", "c", "--size", "0"],
    ["cache", "x", "c", "--workers", "0"],
    ["show", "x", "--n", "0"],
    ["show", "x", "--frames", "0"],
    ["show", "x", "--size", "0"],
    ["show", "x", "--sampler", "bogus"],
    ["show", "x", "--out", "picture.xyz"],
    ["show", "x", "--out", "no/such/folder/batch.png"],
    ["train", "x", "--bs", "0"],
    ["train", "x", "--frames", "0"],
    ["train", "x", "--sampler", "bogus"],
    ["info", "x", "--split", "sideways"],
    ["no-such-command"],
])
def test_usage_errors_give_one_line_and_exit_2(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


@pytest.mark.parametrize("args, line", [
    (["info", "x", "--valid-pct"], "vidseq info: error: Option '--valid-pct' requires an argument. (see 'vidseq info "
                                   "--help')"),
    (["predict", "afile"], "vidseq: error: afile: is a file, not a run folder; give the run folder made by 'vidseq "
                           "train' first: vidseq predict RUN VIDEO..."),
    (["predict", "."], "vidseq: error: give video files to classify, or --stream SOURCE"),
    (["extract", "x"], "vidseq: error: give SRC and DEST (or --segments ANNOTATIONS and DEST)"),
])
def test_usage_errors_say_what_to_give_once(args, line, capsys, tmp_path, monkeypatch):
    """Each mistake's line names the command's own help and each value once (before: "(see 'vidseq --help')",
    "--stream SOURCE SOURCE", "--segments FILE ANNOTATIONS", a video taken for a run folder)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a video")
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_console_script_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "vidseq", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "synth" in out.stdout


def test_models_lists_each_model_with_its_options(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("frame_avg", "cnn_lstm", "tsm", "r2plus1d_18", "timesformer", "mvit_v2_s", "swin3d_b"):
        assert f"\n{name}: " in "\n" + out
    assert "swin3d_b: torchvision's swin3d_b, Kinetics-400 weights with pretrained=True (79.4 % top-1; 88.0 M " in out
    assert "recipe: 16 frames x 112 px, evaluation crop 0.875 of the short side, mean [0.43216" in out
    assert "recompute_mlp=False" in out and "time_kernel='auto'" in out and "shift_div=8" in out


def test_interrupted_synth_leaves_no_partial_video_and_no_split_lists(tmp_path, monkeypatch, capsys):
    import vidseq.datasets.synth as synth_module

    real, calls = synth_module.write_video, []

    def flaky(path, frames, **kw):
        calls.append(path)
        if len(calls) == 3:
            next(iter(frames))
            path.write_bytes(b"half a video")  # what a killed encoder leaves
            raise KeyboardInterrupt
        return real(path, frames, **kw)

    monkeypatch.setattr(synth_module, "write_video", flaky)
    assert main(["synth", str(tmp_path / "d"), "--preset", "tiny"]) == 130
    files = sorted(p.name for p in (tmp_path / "d").rglob("*") if p.is_file())
    assert len(files) == 2 and all(not f.startswith(".") for f in files)  # two whole videos, nothing else
    assert not (tmp_path / "d" / "ucfTrainTestlist").exists()
    assert "interrupted" in capsys.readouterr().err


def test_synth_progress_goes_to_stderr(tmp_path, capsys):
    from vidseq.datasets.synth import PRESETS, make_synth

    make_synth(tmp_path / "d", PRESETS["tiny"], progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "16/16 videos" in err


def test_cache_command_caches_a_dataset_too_small_to_split_and_reports_unreadable(tmp_path, make_video, capsys):
    for cls in ("A", "B"):
        make_video(f"{cls}/v_{cls}_g01_c01.avi", n=6)
    data = next(iter(tmp_path.glob("**/A"))).parent
    (data / "B" / "v_B_g02_c01.avi").write_bytes(b"not a video")
    assert main(["cache", str(data), str(tmp_path / "c"), "--size", "16", "--frames", "4", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "cached 2 of 3 items" in out and "left out 1 unreadable item(s)" in out and "v_B_g02_c01.avi" in out


def test_cache_command_counts_only_the_datasets_items_in_a_shared_cache(tmp_path, make_video, capsys):
    for cls in ("A", "B"):
        for g in (1, 2):
            make_video(f"{cls}/v_{cls}_g0{g}_c01.avi", n=6, seed=g)
    data = next(iter(tmp_path.glob("**/A"))).parent
    args = ["--size", "16", "--frames", "4", "--workers", "1"]
    assert main(["cache", str(data), str(tmp_path / "c"), *args]) == 0
    two = [f"{v},{v.parent.name}" for v in sorted(data.glob("*/*g01*.avi"))]
    (tmp_path / "two.csv").write_text("path,label\n" + "\n".join(two) + "\n")
    capsys.readouterr()
    assert main(["cache", str(tmp_path / "two.csv"), str(tmp_path / "c"), *args]) == 0
    assert "cached 2 of 2 items (8 frames" in capsys.readouterr().out


def test_worker_processes_print_no_warnings_of_the_libraries_they_import(tmp_path, make_video):
    """`python -m vidseq cache` starts forkserver workers that import fastai afresh: before, each printed
    torch's FutureWarning about fastai's torch.jit.script calls."""
    make_video("d/A/a.avi", n=4)
    make_video("d/B/b.avi", n=4)
    out = subprocess.run([sys.executable, "-m", "vidseq", "cache", str(tmp_path / "d"), str(tmp_path / "c"),
                          "--size", "16", "--frames", "2", "--workers", "2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Warning" not in out.stderr, out.stderr


def test_the_demo_runs_again_in_its_folder(tmp_path, monkeypatch):
    """`make demo` twice: the second redoes its runs (overwrite) on the same data, not a refusal."""
    from vidseq.datasets.synth import PRESETS
    from vidseq.demo import run_demo
    from vidseq.runs import read_metrics

    monkeypatch.setitem(PRESETS, "demo", PRESETS["tiny"])  # CPU-test sized
    lines = []
    for _ in range(2):
        rows = run_demo(tmp_path / "demo", epochs=1, models=["frame_avg"], frames=2, size=32, log=lines.append)
        assert [r["model"] for r in rows] == ["frame_avg"]
    assert sorted(p.name for p in (tmp_path / "demo" / "runs").glob("[!.]*")) == ["frame_avg"]
    assert [r["epoch"] for r in read_metrics(tmp_path / "demo" / "runs" / "frame_avg")] == ["1"]


def test_train_help_says_where_frames_and_size_come_from_and_lists_every_split(capsys):
    from vidseq.datasets.load import SPLIT_MODES

    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    frames = text[text.index("--frames"):text.index("--bs ")]
    assert "[default: 5]" not in frames and "[default: 64]" not in frames
    assert "r3d_18" in frames and "swin3d_*" in frames and "hf:..." in frames and "checkpoint's" in frames
    split = text[text.index("--split"):text.index("--valid-pct")]
    assert all(mode in split for mode in SPLIT_MODES), split
    assert "--valid-pct <float> Share of each class for validation (group/random splits). [default: 0.2]" in text
