"""torch.distributed helpers: one code path for 1 CPU process and N processes/GPUs.

Launched with ``torchrun`` the environment carries RANK / WORLD_SIZE / MASTER_ADDR;
:func:`init_from_env` then joins the group (gloo on CPU, NCCL on CUDA). Without it every
helper degrades to the single-process no-op.

Cross-process negatives: :func:`global_batch_loss` (called by ``RetrievalModel.forward`` in a
process group) makes N processes with local batches b_r train exactly the objective of one
process on the concatenated batch (``sum b_r``): representations are all-gathered *with
gradients*, each rank scores its own captions against every clip of the global batch, the
score rows are all-gathered (again with gradients) and every rank evaluates the loss of the
whole (B, B) matrix, as open_clip's ``ClipLoss(gather_with_grad=True)`` does. The backward of
the gather sums the ranks' (identical) losses' gradients, so each rank holds N x its shard's
share of dL/dtheta; ``DistributedDataParallel``'s gradient average then gives dL/dtheta.
"""
from __future__ import annotations

from .collectives import (all_gather_object, broadcast_object, gather_repr, gather_with_grad, global_batch_loss,
                          pad_to_global)
from .process import (available, barrier, configure_threads, device, init_from_env, is_main, local_rank,
                      local_world_size, rank, shard_range, world_size)

__all__ = [
    "available", "world_size", "rank", "local_rank", "local_world_size", "is_main", "barrier",
    "init_from_env", "device", "shard_range", "configure_threads", "gather_with_grad", "gather_repr",
    "pad_to_global", "global_batch_loss", "broadcast_object", "all_gather_object",
]
