"""torch.distributed helpers: one code path for 1 CPU process and N processes/GPUs.

Launched with ``torchrun`` the environment carries RANK / WORLD_SIZE / MASTER_ADDR;
:func:`init_from_env` then joins the group (gloo on CPU, NCCL on CUDA). Without it every
helper degrades to the single-process no-op.

These are process-group primitives only: they import nothing of soundseek above ``config``
and ``device``. Cross-process negatives are built from them by the objective that needs them
(``RetrievalModel.forward``): representations are all-gathered *with gradients*
(:func:`gather_repr`), each rank scores its own captions against every clip of the global
batch, the score rows are all-gathered (:func:`gather_with_grad`) and every rank evaluates the
loss of the whole (B, B) matrix, as open_clip's ``ClipLoss(gather_with_grad=True)`` does. The
backward of the gather sums the ranks' (identical) losses' gradients, so each rank holds N x
its shard's share of dL/dtheta; ``DistributedDataParallel``'s gradient average then gives dL/dtheta.
"""
from __future__ import annotations

from .collectives import (all_gather_object, broadcast_object, gather_repr, gather_with_grad, global_ids,
                          pad_to_global)
from .process import (available, barrier, configure_threads, device, init_from_env, is_main, local_rank,
                      local_world_size, rank, shard_range, world_size)

__all__ = [
    "available", "world_size", "rank", "local_rank", "local_world_size", "is_main", "barrier",
    "init_from_env", "device", "shard_range", "configure_threads", "gather_with_grad", "gather_repr",
    "pad_to_global", "global_ids", "broadcast_object", "all_gather_object",
]
