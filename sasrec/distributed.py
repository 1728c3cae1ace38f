"""Training on several processes: PyTorch's DistributedDataParallel, launched by torchrun.

`python -m sasrec train ...` runs unchanged under `torchrun --nproc_per_node N` and under a
multi-node torchrun rendezvous. torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; the process
group uses NCCL on GPUs and gloo on CPUs. Every rank trains on its own share of each
epoch's batches; rank 0 alone validates and writes the run directory. Decisions that end an
epoch or the run (a stop request on any rank, a diverged loss, early stopping on rank 0) are
agreed through collectives, so that no rank is left waiting on one.

Without torchrun this is a world of one process, and nothing here does anything.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Distributed":
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device) -> torch.device:
        """This rank's device: its own GPU on a multi-GPU machine."""
        if self.active and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def start(self, device: torch.device) -> None:
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over all ranks (a copy; the input is left alone)."""
        values = values.clone()
        if self.active:
            dist.all_reduce(values)
        return values

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether `flag` holds on any rank."""
        if not self.active:
            return bool(flag)
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item() > 0)

    def from_main(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's value of `flag`, on every rank."""
        if not self.active:
            return bool(flag)
        value = torch.tensor([float(flag)], device=device)
        dist.broadcast(value, src=0)
        return bool(value.item() > 0)

    def number_from_main(self, value: float, device: torch.device) -> float:
        """Rank 0's `value`, on every rank."""
        if not self.active:
            return value
        tensor = torch.tensor([float(value)], device=device, dtype=torch.float64)
        dist.broadcast(tensor, src=0)
        return tensor.item()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()
