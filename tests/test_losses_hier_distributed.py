"""Two gloo processes with gathered keys reproduce one process holding the concatenated batch, for
the hierarchical, cluster and ranked losses.

Each process embeds its share of the batch with the same linear map ``theta``. The mean of the
processes' losses equals the single-process loss, the mean of their ``theta`` gradients (what data
parallelism applies) equals the single-process gradient, and each process's gradient on its own
embeddings is ``world_size`` times the single-process one.
"""

from __future__ import annotations

import pytest
import torch
from distributed_utils import assert_data_parallel_equivalence, loss_and_gradients, rank_rows, run_distributed

from hiercon import LabelTaxonomy
from hiercon.losses import ClInfoNCELoss, HiMulConELoss, RankedContrastiveLoss

INPUT_DIM, DIM, CLASSES = 5, 6, 4

# (case name, rows held by each process, views)
CASES = [
    ("himulcone_paths", (4, 4), 2),
    ("himulcone_dedup_scalar", (3, 5), 2),
    ("himulcone_taxonomy", (5, 3), 1),
    ("ranked_class_ids", (4, 4), 2),
    ("ranked_multi_hot_mean", (3, 6), 1),
    ("ranked_per_positive", (5, 2), 2),
    ("clinfonce", (4, 3), 2),
]


def _taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(
        [("root", "a"), ("root", "b"), ("a", "x"), ("a", "y"), ("b", "z"), ("x", "x1"), ("x", "x2")]
    )


def _similarity() -> torch.Tensor:
    similarity = torch.tensor(
        [[1.0, 0.75, 0.5, 0.0], [0.75, 1.0, 0.0, 0.25], [0.5, 0.0, 1.0, 0.5], [0.0, 0.25, 0.5, 1.0]]
    )
    return similarity.double()


def _build_loss(name: str) -> torch.nn.Module:
    losses = {
        "himulcone_paths": lambda: HiMulConELoss(temperature=0.2),
        "himulcone_dedup_scalar": lambda: HiMulConELoss(
            temperature=0.2, dedup_between_levels=True, hce_reduction="scalar"
        ),
        "himulcone_taxonomy": lambda: HiMulConELoss(_taxonomy(), mode="hmc", temperature=0.2),
        "ranked_class_ids": lambda: RankedContrastiveLoss(similarity=_similarity()),
        "ranked_multi_hot_mean": lambda: RankedContrastiveLoss(
            similarity=_similarity(), rank_reduction="mean", merge_equal_similarity=False
        ),
        "ranked_per_positive": lambda: RankedContrastiveLoss(
            similarity=_similarity(), reduction="per_positive"
        ),
        "clinfonce": lambda: ClInfoNCELoss(0.2),
    }
    return losses[name]()


def _case_data(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    name, sizes, views = CASES[index]
    generator = torch.Generator().manual_seed(200 + index)
    batch = sum(sizes)
    inputs = torch.randn(batch, views, INPUT_DIM, generator=generator, dtype=torch.float64)
    if name.startswith("himulcone_paths") or name.startswith("himulcone_dedup"):
        return inputs, torch.randint(0, 2, (batch, 4), generator=generator)
    if name == "himulcone_taxonomy":
        leaves = len(_taxonomy().leaves)
        return inputs, (torch.rand(batch, leaves, generator=generator) < 0.4).double()
    if name == "ranked_multi_hot_mean":
        return inputs, (torch.rand(batch, CLASSES, generator=generator) < 0.4).double()
    return inputs, torch.randint(-1, CLASSES, (batch,), generator=generator)


def _theta() -> torch.Tensor:
    return torch.randn(INPUT_DIM, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def _run(index: int, rows: slice) -> dict[str, torch.Tensor]:
    """Loss and gradients for the rows ``rows`` of case ``index``."""
    inputs, labels = _case_data(index)
    return loss_and_gradients(_build_loss(CASES[index][0]), inputs, labels, _theta(), rows)


def _all_cases_on_rank(rank: int, world_size: int) -> list[dict[str, torch.Tensor]]:
    return [_run(index, rank_rows(sizes, rank)) for index, (_, sizes, _) in enumerate(CASES)]


@pytest.fixture(scope="module")
def per_rank_results() -> list[list[dict[str, torch.Tensor]]]:
    return run_distributed(_all_cases_on_rank, 2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{n}-{s[0]}+{s[1]}-v{v}" for n, s, v in CASES])
def test_gathered_loss_and_gradients_equal_single_process(per_rank_results, index: int) -> None:
    sizes = CASES[index][1]
    single = _run(index, slice(0, sum(sizes)))
    assert_data_parallel_equivalence(single, [results[index] for results in per_rank_results])
