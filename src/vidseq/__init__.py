"""vidseq: action recognition in video as sequences of images."""

__version__ = "0.1.0"
