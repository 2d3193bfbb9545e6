"""Several processes, one per GPU: rank information from the launcher (torchrun, accelerate launch)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class RankInfo:
    rank: int
    local_rank: int
    world_size: int

    def context(self, learn, *, sync_bn: bool = False):
        """fastai's distributed context: DistributedDataParallel model, each rank its shard of the data."""
        return learn.distrib_ctx(sync_bn=sync_bn)


def rank_info() -> RankInfo:
    """This process's place among the training processes, from the launcher's environment variables."""
    env = os.environ
    return RankInfo(int(env.get("RANK", 0)), int(env.get("LOCAL_RANK", 0)), int(env.get("WORLD_SIZE", 1)))


def is_rank0() -> bool:
    """True in the process that writes the run folder (the only one without a launcher)."""
    return rank_info().rank == 0
