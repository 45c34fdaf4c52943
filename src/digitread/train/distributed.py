"""Training one model in several processes with PyTorch's DistributedDataParallel, launched by torchrun:

    torchrun --nproc_per_node=2 -m digitread train --recipe fast --out runs/ddp

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and the rendezvous address; without
them (a plain ``digitread train``) nothing here changes anything. Each process takes its share of
every batch through a DistributedSampler, gradients are averaged across processes (gloo on CPUs,
NCCL on GPUs), and only rank 0 logs, evaluates, writes checkpoints and the model folder.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from digitread.errors import ConfigError
from digitread.runtime import available_cores


@dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_world`` on this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


SINGLE = Group()


def launched() -> bool:
    """Whether torchrun (or another launcher setting the same variables) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: str | None = None) -> Group:
    """Join the process group torchrun described in the environment; SINGLE when not launched so.
    Safe to call more than once."""
    if not launched():
        return SINGLE
    group = Group(
        int(os.environ["RANK"]),
        int(os.environ["WORLD_SIZE"]),
        int(os.environ.get("LOCAL_RANK", "0")),
        int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])),
    )
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or device.startswith("cuda"))
        if cuda:
            torch.cuda.set_device(group.local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return group


def device_for(group: Group, device: str | None) -> str | None:
    """Each process on a machine with GPUs takes its own GPU."""
    if group.active and device is None and torch.cuda.is_available():
        return f"cuda:{group.local_rank}"
    return device


def threads_for(group: Group, threads: int) -> int:
    """CPU threads per process: the cores shared out among the processes on this machine, unless set."""
    if threads or not group.active:
        return threads
    return max(1, available_cores() // group.local_world)


def share_of_batch(batch: int, group: Group) -> int:
    """Each process's part of a batch: the batch size stays what it is in a single process, so a run
    takes the same steps at the same learning rate whatever the number of processes."""
    if batch % group.world:
        raise ConfigError(f"--batch-size {batch} does not divide among {group.world} processes")
    return batch // group.world


def broadcast(obj, group: Group):
    """Rank 0's ``obj`` on every rank (what rank 0 alone measured: validation, the decision to stop)."""
    if not group.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj, group: Group) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not group.active:
        return [obj]
    out: list = [None] * group.world
    dist.all_gather_object(out, obj)
    return out


def worst(loss: float, group: Group) -> float:
    """``loss`` if every process's loss is finite, else NaN on every process (so all stop at once)."""
    if not group.active:
        return loss
    flag = torch.tensor([0.0 if math.isfinite(loss) else 1.0])
    dist.all_reduce(flag)
    return loss if flag.item() == 0 else math.nan


def barrier(group: Group) -> None:
    if group.active:
        dist.barrier()


def leave(group: Group) -> None:
    if group.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
