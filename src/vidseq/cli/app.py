"""The `vidseq` command line's frame: the Typer app, option parsers shared by commands, the logging it shows,
and `main`, which turns every user mistake into one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import sys
import threading
import warnings

import typer

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_exc

from vidseq.errors import DataWarning, VidseqError, storage_fault, vanished

app = typer.Typer(
    name="vidseq",
    help="Action recognition in video as sequences of images, on fastai and PyTorch.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


_ARGV: list[str] = []
# a library vidseq imports still calls torch.jit.script at import time; the warning says nothing to a user. Also
# in the worker processes the command starts (spawn and forkserver pass sys.warnoptions on as -W options)
_JIT_WARNING = "`torch.jit.script` is deprecated"
warnings.filterwarnings("ignore", message=re.escape(_JIT_WARNING), category=FutureWarning)
sys.warnoptions.append(f"ignore:{_JIT_WARNING}:FutureWarning")
_INTERRUPTED = ["vidseq: interrupted"]  # main's one line on Ctrl-C; a command may put a more helpful one here


def _size(value: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in value.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"expected WIDTHxHEIGHT such as 320x240, got {value!r}") from None
    return w, h


def _sampler(value: str) -> str:
    """Typer callback: the name of a frame sampler, checked before any data is read."""
    from vidseq.sampling import SAMPLERS

    if value not in SAMPLERS:
        raise typer.BadParameter(f"unknown sampler {value!r}; choose one of {', '.join(SAMPLERS)}")
    return value


def _given(ctx: typer.Context, name: str) -> bool:
    """Whether option `name` was given on the command line (or in the environment), not left at its default."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def _print_table(rows: list[dict], keys: list[str]) -> None:
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    typer.echo("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        typer.echo("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))


def _model_options(items: list[str]) -> dict:
    """`KEY=VALUE` strings -> {key: value}, values read as JSON where they parse (numbers, true, null; also
    Python's True, False and None), else kept as text."""
    import json

    words = {"true": True, "false": False, "none": None, "null": None}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--option'")
        if value.strip().lower() in words:
            out[key.strip()] = words[value.strip().lower()]
            continue
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _pct(v: float) -> str:
    return f"{v:.1%}"


def flag(name: str, value) -> str:
    """A parameter named in a library error, as the command line spells it: ``--no-pretrained``, ``--bs 8``."""
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return option if value else f"--no-{name.replace('_', '-')}"
    return f"{option} {value}"


class _Echo(logging.Handler):
    """vidseq's log lines on the terminal, each on the stream of the moment (sys.stderr, or stdout for the
    epoch table): ``vidseq: ...`` for progress and notes, ``vidseq: warning: ...`` for warnings."""

    def __init__(self, *, err: bool = True, prefix: bool = True):
        super().__init__(logging.INFO)
        self.err, self.prefix = err, prefix

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if self.prefix:
            text = ("vidseq: warning: " + one_line(text) if record.levelno >= logging.WARNING else "vidseq: " + text)
        typer.echo(text, err=self.err)


def one_line(text: str) -> str:
    """`text` with control characters (a newline in a file name) written as escapes: a message stays one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\x{ord(m[0]):02x}", text)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """`warnings.showwarning` of the command line: a `DataWarning` as a ``vidseq: warning: ...`` line, other
    warnings as Python shows them."""
    if issubclass(category, DataWarning):
        logging.getLogger("vidseq").warning("%s", message)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


_PYTHON_SHOWWARNING = warnings.showwarning


def setup_logging() -> None:
    """What a terminal user sees of the library's logging: its INFO lines and warnings (the library's log
    warnings and its `DataWarning`s, also those from DataLoader workers) on stderr, the epoch table on stdout."""
    warnings.showwarning = _show_warning
    root = logging.getLogger("vidseq")
    if not any(isinstance(h, _Echo) for h in root.handlers):
        root.addHandler(_Echo())
        root.setLevel(logging.INFO)
        table = logging.getLogger("vidseq.table")
        table.addHandler(_Echo(err=False, prefix=False))
        table.propagate = False


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``kill PID``, a scheduler stopping the job), raised where Ctrl-C's KeyboardInterrupt is, so a command
    stops the same clean way; main then exits 143 (128 + SIGTERM) instead of 130."""


def _terminate(signum, frame) -> None:
    _TERMINATED[0] = True
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM while stopping ends the process at once
    raise _Terminated


_TERMINATED = [False]


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises `_Terminated` in the main thread for the block (where this thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `vidseq` script: runs a command, turns user errors into one line and exit 2; Ctrl-C
    (exit 130) and SIGTERM (exit 143) stop it cleanly with one line, and the command's resume hint."""
    args = sys.argv[1:] if argv is None else list(argv)
    _ARGV[:] = args  # the command line as given, for commands that start child processes (train --gpus)
    _INTERRUPTED[0] = "vidseq: interrupted"
    _TERMINATED[0] = False
    setup_logging()
    with _sigterm_as_interrupt():
        rv = _main(args)
    return 143 if rv == 130 and _TERMINATED[0] else rv


def _command_path(args: list[str]) -> str:
    """"vidseq CMD" for the command `args` name (click's parser errors, such as an option missing its value, come
    without the command's context), else "vidseq"."""
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    return f"vidseq {args[0]}" if args and args[0] in names else "vidseq"


def _main(args: list[str]) -> int:
    try:
        rv = app(args=args, prog_name="vidseq", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as e:
        if e.ctx:
            typer.echo(e.ctx.get_help())
        return 2
    except click_exc.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else _command_path(args)
        typer.echo(f"{cmd}: error: {e.format_message()} (see '{cmd} --help')", err=True)
        return 2
    except VidseqError as e:
        typer.echo(f"vidseq: error: {one_line(e.render(flag))}", err=True)
        return 2
    except OSError as e:  # the storage itself (full, read-only, not permitted): one line, not a traceback
        line = storage_fault(e) or vanished(e)
        if line is None:
            raise
        typer.echo(f"vidseq: error: {one_line(line)}", err=True)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        rv = 130
    if rv == 130:  # Ctrl-C: typer turns KeyboardInterrupt into Exit(130), which comes back as the return value
        line = _INTERRUPTED[0]
        typer.echo(line.replace("interrupted", "stopped by SIGTERM", 1) if _TERMINATED[0] else line, err=True)
    return rv if isinstance(rv, int) else 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
