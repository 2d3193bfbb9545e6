"""vidseq's models: a small registry (`create_model`, `list_models`) and one module per family.

Every model maps an ImageNet-normalised `(B, T, C, H, W)` clip batch (or the tutorial's tuple of T `(B, C, H, W)`
tensors) to `(B, n_classes)` logits, and splits into body and head parameter groups (`splitter`) for fastai's
`freeze` and `fine_tune`.

| name | model |
|---|---|
| frame_avg | the tutorial's SimpleModel: per-frame backbone + head, logits averaged over time |
| cnn_lstm | the tutorial's RNNModel: pooled per-frame features -> LSTM -> LinBnDrop head |
| timesformer | divided space-time attention on scaled_dot_product_attention, optional start from a timm ViT |
| r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v1_b, mvit_v2_s, swin3d_t/s/b | torchvision's video classifiers |
| tsm | temporal shift module in a 2D ResNet |
| timesformer_lucidrains | lucidrains' timesformer-pytorch 0.4.1 (the tutorial's model), when installed |
| hf:<hub id or folder> | a Hugging Face video classifier (VideoMAE, TimeSformer, ViViT, V-JEPA 2), with transformers |
"""

from vidseq.models import cnn_lstm as _cnn_lstm  # noqa: F401  (registers the families)
from vidseq.models import frame_avg as _frame_avg  # noqa: F401
from vidseq.models import hf as _hf  # noqa: F401
from vidseq.models import timesformer as _timesformer  # noqa: F401
from vidseq.models import timesformer_lucidrains as _timesformer_lucidrains  # noqa: F401
from vidseq.models import tsm as _tsm  # noqa: F401
from vidseq.models import video_nets as _video_nets  # noqa: F401
from vidseq.models._registry import (
    Recipe,
    create_model,
    input_stats,
    is_model,
    list_models,
    model_families,
    model_options,
    model_recipe,
    param_count,
    register_model,
    splitter,
    unwrap,
)
from vidseq.models.cnn_lstm import CnnLstm, RNNModel
from vidseq.models.frame_avg import FrameAvg, SimpleModel
from vidseq.models.timesformer import TimeSformer, load_vit_state_dict, vit_state_dict
from vidseq.models.tsm import TSM
from vidseq.models.video_nets import VIDEO_NETS, TorchvisionVideo

__all__ = [
    "TSM",
    "Recipe",
    "CnnLstm",
    "FrameAvg",
    "RNNModel",
    "SimpleModel",
    "TimeSformer",
    "TorchvisionVideo",
    "VIDEO_NETS",
    "create_model",
    "input_stats",
    "is_model",
    "list_models",
    "model_families",
    "load_vit_state_dict",
    "model_options",
    "model_recipe",
    "param_count",
    "register_model",
    "splitter",
    "unwrap",
    "vit_state_dict",
]
