"""Evaluation: a run's model on its validation items (K clips per video), the field's metrics, and its report.

>>> ev = evaluate_run("runs/cnn_lstm", clips=3)                # doctest: +SKIP
>>> ev.top1, ev.top5, ev.mean_class_accuracy                   # doctest: +SKIP
"""

from vidseq.evaluate.inference import clip_indices, clip_tfm_for, normalize, predict_paths, view_probs
from vidseq.evaluate.metrics import Evaluation, MultiLabelEvaluation, evaluate_run
from vidseq.evaluate.report import plot_clips, plot_confusion, write_report

__all__ = ["Evaluation", "MultiLabelEvaluation", "clip_indices", "clip_tfm_for", "evaluate_run", "normalize",
           "plot_clips", "plot_confusion", "predict_paths", "view_probs", "write_report"]
