"""Exporting a trained run for other tools: `export_onnx` writes an ONNX file with the preprocessing contract in its
metadata, checked in onnxruntime on the run's own clips (``vidseq export RUN FILE --format onnx``; `OnnxModel` runs
it); `export_hf` writes a Hugging Face model folder (``--format hf``) that `transformers` loads with
`from_pretrained`, labelled with the run's classes."""

from vidseq.export.hf import export_hf
from vidseq.export.onnx import OnnxExport, OnnxModel, export_onnx, with_onnx

__all__ = ["OnnxExport", "OnnxModel", "export_hf", "export_onnx", "with_onnx"]
