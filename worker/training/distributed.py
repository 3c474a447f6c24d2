"""Data parallel training (training.devices > 1): one rank's share of each global batch, and every
collective the Trainer makes. The Trainer's distributed lines all call into this module.

Each rank runs the whole Trainer on the same seeded data order; of each global batch of B rows it
trains on its chunk B_r (torch.tensor_split: the first B % N ranks get one row more). DDP averages the
gradients over the N ranks, so each rank's mean loss is scaled by N * B_r / B: the average is then the
gradient of the global batch's mean loss, as one process computes it (docs/equivalence.md).
"""
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from app.ml.errors import SpecError

# A rank waits at most this long in a collective for the others (init_process_group's timeout): a rank
# that hangs rather than dies ends the attempt after it, instead of holding every rank forever.
COLLECTIVE_TIMEOUT_SECONDS = 120.0


class Ranks:
    """This process's place among the job's ranks (rank 0 leads: it alone writes and decides to stop)."""

    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device
        self.leader = rank == 0

    @classmethod
    def join(cls, device_type: str) -> "Ranks":
        """Joins the process group the launcher's environment describes (RANK, WORLD_SIZE, MASTER_ADDR...):
        NCCL, one GPU per local rank, on CUDA; gloo on the CPU."""
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_type == "cuda":
            wanted = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # on every rank: all of them fail alike
            if wanted > torch.cuda.device_count():  # routing gives a job for N GPUs to a worker with N
                raise SpecError("training.devices", f"{wanted} ranks on a worker that sees "
                                f"{torch.cuda.device_count()} GPUs (CUDA_VISIBLE_DEVICES, --gpus-per-worker)")
            torch.cuda.set_device(local)
            device, backend = torch.device("cuda", local), "nccl"
        else:
            device, backend = torch.device("cpu"), "gloo"
        dist.init_process_group(backend, timeout=timedelta(seconds=COLLECTIVE_TIMEOUT_SECONDS))
        return cls(dist.get_rank(), dist.get_world_size(), device)

    def leave(self) -> None:
        """Leaves the group together: a rank that tore its gloo connections down while a peer still
        used them aborted ("terminate called without an active exception", about 1 launch in 20 here)."""
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model the steps run forward and backward through: DDP averages its gradients."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sharded(self, forward):
        """``forward(xb, yb)`` on this rank's chunk of the global batch, its mean loss scaled by N * B_r / B.

        A rank whose chunk is empty (a last batch shorter than N) still takes part in the all-reduce:
        it runs the first row with the weight 0, so that its gradients are zeros."""
        def forward_chunk(xb: torch.Tensor, yb) -> torch.Tensor:
            rows = xb.shape[0]
            lo, hi = _chunk(rows, self.world, self.rank)
            if hi == lo:
                return forward(xb[:1], _rows(yb, 0, 1)) * 0.0
            return forward(xb[lo:hi], _rows(yb, lo, hi)) * (self.world * (hi - lo) / rows)
        return forward_chunk

    def step_sum(self, loss: torch.Tensor, flush_due: bool) -> tuple[torch.Tensor, bool]:
        """The global batch's mean loss (the sum over ranks of mean_r * B_r / B) and rank 0's decision to
        flush at this step, in one all-reduce: every rank flushes, checks divergence and stops at the
        same step."""
        packed = torch.stack([loss.detach().float() / self.world,
                              torch.tensor(float(flush_due and self.leader), device=loss.device)])
        dist.all_reduce(packed)
        return packed[0].to(loss.dtype), bool(packed[1] > 0)

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag, on every rank (whether to stop: rank 0 alone asks the database)."""
        packed = torch.tensor([float(flag and self.leader)], device=self.device)
        dist.all_reduce(packed)
        return bool(packed[0] > 0)


def _chunk(rows: int, world: int, rank: int) -> tuple[int, int]:
    """Rank ``rank``'s rows [lo, hi) of a batch of ``rows``, as torch.tensor_split splits it."""
    base, extra = divmod(rows, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _rows(yb, lo: int, hi: int):
    """Rows [lo, hi) of the targets (distill: the (targets, teacher outputs) pair)."""
    return tuple(t[lo:hi] for t in yb) if isinstance(yb, tuple) else yb[lo:hi]

