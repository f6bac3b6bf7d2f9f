"""Collectives over the process group: all-gathers with and without gradients, padding to the
global batch, the global batch's ids, object broadcast/gather. Each is the identity (or a
one-element list) in a single process."""
from __future__ import annotations

import torch
import torch.distributed as tdist

from .process import device, rank, world_size


def _sizes(n: int) -> list[int]:
    t = torch.tensor([n], device=device())
    out = [torch.zeros_like(t) for _ in range(world_size())]
    tdist.all_gather(out, t)
    return [int(v) for v in out]


def _gather_plain(x: torch.Tensor) -> list[torch.Tensor]:
    """all_gather without autograd; bool tensors travel as uint8 (not every backend has bool)."""
    y = x.to(torch.uint8) if x.dtype == torch.bool else x.contiguous()
    parts = [torch.empty_like(y) for _ in range(world_size())]
    tdist.all_gather(parts, y)
    return [p.bool() for p in parts] if x.dtype == torch.bool else parts


class _AllGatherGrad(torch.autograd.Function):
    """(n, ...) per rank -> (world * n, ...) in rank order. Backward: the gradient of the
    gathered tensor is summed over ranks (every rank's loss uses every shard) and each rank
    keeps its own rows. (All-reduce instead of reduce-scatter: gloo has no reduce-scatter.)"""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world_size())]
        tdist.all_gather(parts, x)
        ctx.n = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        tdist.all_reduce(grad, op=tdist.ReduceOp.SUM)
        r = rank()
        return grad[r * ctx.n: (r + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 (rank order). If ``x`` requires grad, the
    gradient of the result flows back to each rank's own shard, summed over the ranks' (identical)
    losses (DistributedDataParallel then averages over the ranks). Shards may differ in length along dim 0 only."""
    if world_size() == 1:
        return x
    sizes = _sizes(x.shape[0])
    pad = max(sizes) - x.shape[0]
    if pad:  # pad to the largest shard, gather, then trim
        x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))])
    if x.requires_grad:
        parts = list(_AllGatherGrad.apply(x).chunk(world_size()))
    else:
        parts = _gather_plain(x)
    return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def pad_to_global(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad a padded batch x (B, L, ...) / mask (B, L) along L to the largest L of all ranks, so
    every rank's representations have the shapes one process would give the global batch.
    A collective: call it on every rank."""
    if world_size() == 1:
        return x, mask
    lmax = max(_sizes(x.shape[1]))
    pad = lmax - x.shape[1]
    if pad:
        x = torch.cat([x, x.new_zeros((x.shape[0], pad, *x.shape[2:]))], dim=1)
        mask = torch.cat([mask, mask.new_zeros((mask.shape[0], pad))], dim=1)
    return x, mask


def gather_repr(rep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """All-gather a scorer representation dict (each tensor's dim 0 is the batch).

    Sequence tensors must already share their length across ranks (:func:`pad_to_global` on
    the inputs); if a dim-1 length still differs it is zero-padded at the end, which is only
    correct for (B, L, ...) per-position tensors (not e.g. TAP's ``gram`` (B, 2T+1, T))."""
    if world_size() == 1:
        return rep
    out = {}
    for k in sorted(rep):  # same collective order on every rank
        v = rep[k]
        if v.dim() >= 2:
            lens = _sizes(v.shape[1])
            pad = max(lens) - v.shape[1]
            if pad:
                v = torch.cat([v, v.new_zeros((v.shape[0], pad, *v.shape[2:]))], dim=1)
        out[k] = gather_with_grad(v)
    return {k: out[k] for k in rep}


def global_ids(ids: torch.Tensor, local: int) -> torch.Tensor:
    """Ids of the global batch (rank order) from this rank's ``local`` rows: ``ids`` are either
    already the global batch's (B,) or this rank's (local,), which are then all-gathered."""
    sizes = _sizes(local) if world_size() > 1 else [local]
    if ids.shape[0] == local and sum(sizes) != local:
        ids = gather_with_grad(ids.to(device()))
    if ids.shape[0] != sum(sizes):
        raise ValueError(f"clip_ids has {ids.shape[0]} entries; expected the local {local} or global {sum(sizes)}")
    return ids


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (picklable values; identity without a group)."""
    if world_size() == 1:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj) -> list:
    """Every rank's ``obj``, in rank order."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    tdist.all_gather_object(out, obj)
    return out
