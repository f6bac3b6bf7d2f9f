"""torch.distributed helpers: one code path for 1 CPU process and N processes/GPUs.

Launched with ``torchrun`` the environment carries RANK / WORLD_SIZE / MASTER_ADDR;
:func:`init_from_env` then joins the group (gloo on CPU, NCCL on CUDA). Without it every
helper degrades to the single-process no-op.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as tdist


def available() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def world_size() -> int:
    return tdist.get_world_size() if available() else 1


def rank() -> int:
    return tdist.get_rank() if available() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if available() and world_size() > 1:
        tdist.barrier()


def init_from_env(backend: str | None = None) -> bool:
    """Join the process group described by torchrun's environment; False if there is none."""
    if available():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    tdist.init_process_group(backend=backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0 (rank order); gradients flow back to each
    rank's own shard (summed over the ranks' identical losses, see :func:`average_gradients`).
    Shards may differ in length along dim 0."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    sizes = _sizes(x.shape[0])
    if len(set(sizes)) > 1:  # pad to the largest shard, gather, then trim
        pad = max(sizes) - x.shape[0]
        x = torch.cat([x, x.new_zeros((pad, *x.shape[1:]))]) if pad else x
        parts = all_gather(x)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])
    return torch.cat(all_gather(x))


def _sizes(n: int) -> list[int]:
    t = torch.tensor([n])
    out = [torch.zeros_like(t) for _ in range(world_size())]
    tdist.all_gather(out, t)
    return [int(v) for v in out]


def gather_repr(rep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """All-gather a scorer representation dict (each tensor's dim 0 is the batch).
    Variable-length sequence tensors (frames, tokens) are padded along dim 1 first."""
    out = {}
    for k, v in rep.items():
        if v.dim() >= 2 and world_size() > 1:
            lens = _sizes(v.shape[1])
            if len(set(lens)) > 1:
                pad = max(lens) - v.shape[1]
                v = torch.cat([v, v.new_zeros((v.shape[0], pad, *v.shape[2:]))], dim=1) if pad else v
        out[k] = gather_with_grad(v)
    return out


def average_gradients(module: torch.nn.Module) -> None:
    """All-reduce and average gradients. With :func:`gather_with_grad` each rank holds
    world_size x its shard's share of dL/dtheta, so the average is exactly dL/dtheta."""
    n = world_size()
    if n == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            tdist.all_reduce(p.grad, op=tdist.ReduceOp.SUM)
            p.grad.div_(n)
