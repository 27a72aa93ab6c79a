"""Two gloo processes with gathered keys reproduce one process holding the concatenated batch.

Each process embeds its share of the batch with the same small linear map ``theta``. The mean of
the processes' losses equals the single-process loss, and the mean of their ``theta`` (and
prototype) gradients, which is what data parallelism applies, equals the single-process gradient;
each process's gradient on its own embeddings is ``world_size`` times the single-process one.
"""

from __future__ import annotations

import pytest
import torch
from distributed_utils import assert_data_parallel_equivalence, loss_and_gradients, rank_rows, run_distributed

from hiercon.losses import AbaloneLoss, JaccardSupConLoss, MulSupConLoss, PrototypeLoss, RegLoss, SupConLoss

NUM_LABELS = 4
INPUT_DIM, DIM = 5, 6

# (loss name, rows held by each process, views)
CASES = [
    ("supcon_class_ids", (4, 4), 2),
    ("supcon_class_ids", (2, 5), 1),
    ("simclr", (3, 4), 2),
    ("supcon_any", (3, 6), 1),
    ("jaccard", (5, 2), 2),
    ("mulsupcon", (3, 6), 2),
    ("mulsupcon_weighted", (4, 4), 1),
    ("abalone", (2, 6), 1),
    ("reg", (5, 3), 2),
    ("prototype", (3, 4), 1),
]


def _build_loss(name: str) -> torch.nn.Module:
    torch.manual_seed(7)
    losses = {
        "supcon_class_ids": lambda: SupConLoss(0.2),
        "simclr": lambda: SupConLoss(0.2),
        "supcon_any": lambda: SupConLoss(0.2, positives="any", variant="in"),
        "jaccard": lambda: JaccardSupConLoss(0.2),
        "mulsupcon": lambda: MulSupConLoss(0.2),
        "mulsupcon_weighted": lambda: MulSupConLoss(0.2, with_weight=True),
        "abalone": lambda: AbaloneLoss(NUM_LABELS, DIM, 0.2),
        "reg": lambda: RegLoss(NUM_LABELS, DIM, 0.2),
        "prototype": lambda: PrototypeLoss(NUM_LABELS, DIM, 0.2),
    }
    return losses[name]().double()


def _case_data(index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    name, sizes, views = CASES[index]
    generator = torch.Generator().manual_seed(100 + index)
    batch = sum(sizes)
    inputs = torch.randn(batch, views, INPUT_DIM, generator=generator, dtype=torch.float64)
    if name == "simclr":
        return inputs, None
    if name == "supcon_class_ids":
        return inputs, torch.randint(0, 3, (batch,), generator=generator)
    labels = (torch.rand(batch, NUM_LABELS, generator=generator) < 0.4).double()
    labels[0] = 0.0
    return inputs, labels


def _theta() -> torch.Tensor:
    return torch.randn(INPUT_DIM, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _run(index: int, rows: slice) -> dict[str, torch.Tensor]:
    """Loss and gradients for the rows ``rows`` of case ``index``."""
    inputs, labels = _case_data(index)
    return loss_and_gradients(_build_loss(CASES[index][0]), inputs, labels, _theta(), rows)


def _all_cases_on_rank(rank: int, world_size: int) -> list[dict[str, torch.Tensor]]:
    results = [_run(index, rank_rows(sizes, rank)) for index, (_, sizes, _) in enumerate(CASES)]
    inputs, labels = _case_data(0)
    rows = slice(4 * rank, 4 * rank + 4)
    local = SupConLoss(0.2, gather_across_processes=False)(inputs[rows] @ _theta(), labels[rows])
    results.append({"loss": local})
    return results


@pytest.fixture(scope="module")
def per_rank_results() -> list[list[dict[str, torch.Tensor]]]:
    return run_distributed(_all_cases_on_rank, 2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{n}-{s[0]}+{s[1]}-v{v}" for n, s, v in CASES])
def test_gathered_loss_and_gradients_equal_single_process(per_rank_results, index: int) -> None:
    sizes = CASES[index][1]
    single = _run(index, slice(0, sum(sizes)))
    assert_data_parallel_equivalence(single, [results[index] for results in per_rank_results])


def test_without_gathering_each_process_uses_its_own_batch(per_rank_results) -> None:
    inputs, labels = _case_data(0)
    for rank, results in enumerate(per_rank_results):
        rows = slice(4 * rank, 4 * rank + 4)
        expected = SupConLoss(0.2)(inputs[rows] @ _theta(), labels[rows])
        torch.testing.assert_close(results[-1]["loss"], expected)
