"""The process group: joining it from torchrun's environment, this process's rank, device and
threads. Without a group every function answers as the single process (rank 0 of 1)."""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as tdist


def available() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def world_size() -> int:
    return tdist.get_world_size() if available() else 1


def rank() -> int:
    return tdist.get_rank() if available() else 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_world_size() -> int:
    """Processes on this node (torchrun's LOCAL_WORLD_SIZE), 1 when not launched by torchrun."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def is_main() -> bool:
    return rank() == 0


def shard_range(n: int, rank_: int | None = None, world: int | None = None) -> slice:
    """Contiguous slice of ``n`` items owned by ``rank_`` of ``world`` (np.array_split sizes;
    default: this process of the group)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    if not 0 <= rank_ < world:
        raise ValueError(f"rank {rank_} is outside 0..{world - 1}")
    q, r = divmod(n, world)
    start = rank_ * q + min(rank_, r)
    return slice(start, start + q + (1 if rank_ < r else 0))


def barrier() -> None:
    if available() and world_size() > 1:
        tdist.barrier()


def init_from_env(backend: str | None = None, timeout_minutes: float | None = None) -> bool:
    """Join the process group described by torchrun's environment; False if there is none.

    Args:
        backend: "gloo" | "nccl"; default NCCL when CUDA is available, else gloo.
        timeout_minutes: collective timeout (default ``$SOUNDSEEK_DIST_TIMEOUT`` or 120: ranks
            wait at a barrier while the others finish their share of feature extraction).
    """
    if available():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    valid = ("gloo", "nccl")
    if backend not in valid:
        raise ValueError(f"Invalid backend {backend!r}. Valid: {', '.join(valid)}")
    minutes = float(timeout_minutes or os.environ.get("SOUNDSEEK_DIST_TIMEOUT", 120))
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    tdist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=minutes))
    return True


def device() -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` under NCCL, else the CPU."""
    if available() and tdist.get_backend() == "nccl":
        return torch.device("cuda", local_rank())
    return torch.device("cpu")


def configure_threads(num_threads: int = 0) -> int:
    """Intra-op threads of this process: ``num_threads`` if > 0; under torchrun with several
    processes per node, the node's CPUs divided among them (torchrun's own default is 1
    thread per process); otherwise torch's default. Returns the thread count in use."""
    if num_threads > 0:
        torch.set_num_threads(int(num_threads))
    elif local_world_size() > 1:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        torch.set_num_threads(max(1, cpus // local_world_size()))
    return torch.get_num_threads()
