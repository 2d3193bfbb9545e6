"""Exporting a trained run for other tools: `export_hf` writes a Hugging Face model folder (``vidseq export RUN DEST
--format hf``) that `transformers` loads with `from_pretrained`, labelled with the run's classes."""

from vidseq.export.hf import export_hf

__all__ = ["export_hf"]
