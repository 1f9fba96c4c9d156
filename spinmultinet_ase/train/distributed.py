"""Data-parallel training over processes: ranks, the split of a batch, gradient averaging.

Started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``), every rank holds the whole model and data, takes its share of each global
batch, and the ranks add their gradients before every optimiser step; rank 0 alone writes
files. Each rank's loss is already divided by the *global* batch's counts (the loss's
``counts`` argument), so the sum of the ranks' gradients is the gradient of the one-process
loss, and N ranks reproduce one process to round-off.

PyTorch's ``DistributedDataParallel`` is not used: its reducer hooks the gradients of the
first backward pass, but our forces are themselves gradients (``autograd.grad`` with
``create_graph=True`` inside ``forward``), and the loss's backward pass then goes through
that double backward, which the reducer does not account for: it gives wrong gradients.
Averaging the gradients after ``backward()`` ourselves has no such coupling.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from spinmultinet_ase import keys


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and prints."""
        return self.rank == 0


def init_from_env() -> World:
    """Join the process group that ``torchrun`` describes in the environment (gloo: training
    and every reduced tensor live on the CPU); a single process when ``WORLD_SIZE`` is unset
    or 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return world()


def world() -> World:
    """The current rank and number of ranks (one process without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing to wait for in one process)."""
    if world().size > 1:
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed over ranks, in place (unchanged in one process)."""
    if world().size > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_max(value: float) -> float:
    """The largest ``value`` over ranks (e.g. a wall time every rank must agree on)."""
    if world().size == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor)


def broadcast_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if world().size == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sum_gradients(parameters: Iterable[torch.nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
    """Sum the parameters' gradients over ranks in place, in one message with ``extra`` (e.g.
    the loss, for reporting); returns ``extra`` summed. A gradient missing on a rank counts as
    zero; one missing on every rank stays missing, as in one process."""
    parameters = [p for p in parameters if p.requires_grad]
    if world().size == 1:
        return extra
    dtype = parameters[0].dtype
    present = torch.tensor([p.grad is not None for p in parameters], dtype=dtype)
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters]
        + [present, extra.to(dtype).reshape(-1)]
    )
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    start = 0
    for p in parameters:
        p.grad = flat[start : start + p.numel()].view_as(p).clone()
        start += p.numel()
    for p, count in zip(parameters, flat[start : start + len(parameters)], strict=True):
        if count == 0:
            p.grad = None
    start += len(parameters)
    return flat[start:].reshape(extra.shape).to(extra.dtype)


def split_batch(samples: Sequence[dict[str, torch.Tensor]], size: int) -> list[list[int]]:
    """Positions of ``samples`` (one global batch) for each of ``size`` ranks.

    Frames of one ordering-partner group (equal, adjacent ``keys.PARTNER_GROUP``) stay on one
    rank, since the loss compares their energies. Groups go, largest first, to the rank with
    the fewest atoms so far (ties: the lower rank), so the work is balanced by atom count and
    the split is the same on every rank. Each rank's positions keep the global order.
    """
    groups: list[list[int]] = []
    for position, sample in enumerate(samples):
        number = int(sample[keys.PARTNER_GROUP])
        if groups and int(samples[groups[-1][0]][keys.PARTNER_GROUP]) == number:
            groups[-1].append(position)
        else:
            groups.append([position])
    atoms = [sum(len(samples[i][keys.SPECIES]) for i in group) for group in groups]
    load = [0] * size
    shares: list[list[int]] = [[] for _ in range(size)]
    for index in sorted(range(len(groups)), key=lambda g: (-atoms[g], g)):
        rank = min(range(size), key=lambda r: (load[r], r))
        load[rank] += atoms[index]
        shares[rank].extend(groups[index])
    return [sorted(share) for share in shares]


def check_batch_size(batch_size: int, size: int) -> None:
    """Raise a one-line ValueError unless the global batch divides over ``size`` ranks."""
    if batch_size % size:
        raise ValueError(
            f"optim.batch_size {batch_size} (the global batch) does not divide over {size} "
            f"ranks; choose a multiple of {size}"
        )
