"""Untrimmed video: a run's model over the whole of a long file (windows, merged segments, a picture) or a live
stream (`vidseq.timeline.stream`).

>>> tl = predict_timeline("runs/cnn_lstm", "match.mp4", window=2.0)     # doctest: +SKIP
>>> tl.to_dict()["segments"][0]
{'label': 'JumpRope', 'start': 3.5, 'end': 12.0, 'score': 0.91}
"""

from vidseq.timeline.figure import plot_timeline
from vidseq.timeline.score import DEFAULT_WINDOW, Timeline, predict_timeline, segments_csv
from vidseq.timeline.windows import Segment, best_iou, merge_segments, temporal_iou

__all__ = ["DEFAULT_WINDOW", "Segment", "Timeline", "best_iou", "merge_segments", "plot_timeline",
           "predict_timeline", "segments_csv", "temporal_iou"]
