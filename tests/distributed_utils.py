"""Run a function in several CPU processes joined by a ``gloo`` process group, and collect results.

``run_distributed(fn, world_size, *args)`` spawns ``world_size`` processes with
``torch.multiprocessing``; process ``rank`` calls ``fn(rank, world_size, *args)`` inside an
initialised group and its return value (anything ``torch.save`` accepts) comes back in a list
ordered by rank. ``fn`` must be importable (a module-level function of a test module).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world_size: int, fn: Callable[..., Any], args: tuple, folder: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(result, Path(folder) / f"result_{rank}.pt")


def run_distributed(fn: Callable[..., Any], world_size: int = 2, *args: Any) -> list[Any]:
    """``[fn(0, world_size, *args), ..., fn(world_size - 1, world_size, *args)]``, each in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(world_size, fn, args, folder), nprocs=world_size, join=True)
        return [
            torch.load(Path(folder) / f"result_{rank}.pt", weights_only=False) for rank in range(world_size)
        ]
