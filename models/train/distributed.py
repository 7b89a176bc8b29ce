"""Processes under torchrun: joining the group, and the few collectives training needs.

`RANK`, `LOCAL_RANK` and `WORLD_SIZE` come from the environment torchrun sets (absent: one
process, no process group)."""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group (gloo on CPU, NCCL on GPUs); a lone process needs none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        # A run that fails part-way still leaves the group before the interpreter goes.
        atexit.register(_leave_process_group)
    return DistInfo(rank, local_rank, world, dev)


def leave_distributed(d: DistInfo) -> None:
    """End of a job: wait for every rank, then leave the group. Leaving while a peer is still
    in a collective, or letting gloo's threads die with the interpreter, aborts a rank
    ("terminate called without an active exception", exit -6) now and then."""
    if d.world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather(obj, d: DistInfo) -> list:
    if d.world == 1:
        return [obj]
    out: list = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def mean_across_ranks(values: dict[str, float], d: DistInfo) -> dict[str, float]:
    if d.world == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(keys, t.tolist())}


def from_rank0(value, d: DistInfo):
    """Rank 0's `value` on every rank (decisions that only rank 0 can make, made once)."""
    if d.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
