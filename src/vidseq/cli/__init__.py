"""The `vidseq` command line: a thin layer over the library, the only place that prints and names flags.

Every user mistake ends in one line on stderr and exit code 2; failures of the work itself exit 1.
"""

from vidseq.cli import data as _data  # noqa: F401  (registers the data commands)
from vidseq.cli import models as _models  # noqa: F401  (registers the model and run commands)
from vidseq.cli import serve as _serve  # noqa: F401  (registers vidseq serve)
from vidseq.cli.app import _model_options, app, main, run

__all__ = ["_model_options", "app", "main", "run"]

if __name__ == "__main__":
    run()
