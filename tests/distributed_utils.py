"""Run a function in several CPU processes joined by a ``gloo`` process group, and collect results.

``run_distributed(fn, world_size, *args)`` spawns ``world_size`` processes with
``torch.multiprocessing``; process ``rank`` calls ``fn(rank, world_size, *args)`` inside an
initialised group and its return value (anything ``torch.save`` accepts) comes back in a list
ordered by rank. ``fn`` must be importable (a module-level function of a test module).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
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


def close_process_group() -> None:
    """Wait for every process, then shut the gloo group down before the interpreter exits (a group
    left open can abort the process at exit)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def run_distributed(fn: Callable[..., Any], world_size: int = 2, *args: Any) -> list[Any]:
    """``[fn(0, world_size, *args), ..., fn(world_size - 1, world_size, *args)]``, each in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_worker, args=(world_size, fn, args, folder), nprocs=world_size, join=True)
        return [
            torch.load(Path(folder) / f"result_{rank}.pt", weights_only=False) for rank in range(world_size)
        ]


# ---- data-parallel equivalence of a loss: each process scores its share of one batch ----


def rank_rows(sizes: Sequence[int], rank: int) -> slice:
    """The rows of the whole batch that process ``rank`` holds when processes hold ``sizes`` rows in turn."""
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def loss_and_gradients(
    loss: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor | None, theta: torch.Tensor, rows: slice
) -> dict[str, torch.Tensor]:
    """The loss of the embeddings ``inputs[rows] @ theta`` and its gradients: on ``theta``, on the loss's
    own parameters (``"prototypes"``, when it has any) and on the embeddings themselves."""
    row_labels = None if labels is None else labels[rows]
    theta = theta.detach().requires_grad_(True)
    value = loss(inputs[rows] @ theta, row_labels)
    grads = torch.autograd.grad(value, [theta, *loss.parameters()])
    embeddings = (inputs[rows] @ theta).detach().requires_grad_(True)
    (embedding_grad,) = torch.autograd.grad(loss(embeddings, row_labels), embeddings)
    result = {"loss": value.detach(), "theta": grads[0], "embeddings": embedding_grad}
    if len(grads) > 1:
        result["prototypes"] = grads[1]
    return result


def assert_data_parallel_equivalence(single: dict[str, torch.Tensor], ranks: list[dict[str, torch.Tensor]]) -> None:
    """The processes' mean loss and mean parameter gradients equal one process's on the whole batch; each
    process's gradient on its own embeddings is ``world_size`` times the single-process one."""
    world = len(ranks)
    assert single["loss"] > 0
    torch.testing.assert_close(sum(r["loss"] for r in ranks) / world, single["loss"])
    for key in ("theta", "prototypes"):
        if key in single:
            torch.testing.assert_close(sum(r[key] for r in ranks) / world, single[key])
    own_rows = torch.cat([r["embeddings"] for r in ranks]) / world
    torch.testing.assert_close(own_rows, single["embeddings"])


REPO = Path(__file__).resolve().parent.parent


def torchrun_command(nproc: int = 2) -> list[str]:
    """``python -m torch.distributed.run`` on loopback with a free port (CPU, gloo)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(port),
    ]  # fmt: skip


def run_script(command: list[str], cwd: Path | None = None, timeout: int = 300):
    """Run a training script in a subprocess (offline, one thread, the checkout's ``src`` first)."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result
