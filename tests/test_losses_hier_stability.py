"""Numerical stability of the hierarchical, cluster, prototype and ranked losses: thousands of random
small batches at temperature 0.01, with duplicated, zero, huge and tiny embeddings, and under bf16
autocast, never give a NaN or infinite loss or gradient."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from hiercon import LabelTaxonomy
from hiercon.losses import ClInfoNCELoss, HCSCLoss, HiMulConELoss, RankedContrastiveLoss

DIM = 8
CLASSES = 4


def _taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges([("root", "a"), ("root", "b"), ("a", "x"), ("a", "y"), ("b", "z")])


def _similarity() -> torch.Tensor:
    return torch.tensor(
        [[1.0, 0.75, 0.5, 0.0], [0.75, 1.0, 0.0, 0.25], [0.5, 0.0, 1.0, 0.5], [0.0, 0.25, 0.5, 1.0]]
    )


def _embeddings(generator: torch.Generator, batch: int, views: int) -> torch.Tensor:
    """Random embeddings with, at random, duplicated rows, a zero row and extreme scales."""
    embeddings = torch.randn(batch, views, DIM, generator=generator)
    kind = int(torch.randint(0, 5, (1,), generator=generator))
    if kind == 1:
        embeddings[:] = embeddings[0]  # every item identical
    elif kind == 2 and batch > 1:
        embeddings[1] = embeddings[0]
        embeddings[-1, -1] = 0.0  # a zero vector
    elif kind == 3:
        embeddings = embeddings * 1e4
    elif kind == 4:
        embeddings = embeddings * 1e-4
    return embeddings


def _class_ids(generator: torch.Generator, batch: int) -> torch.Tensor:
    return torch.randint(-1, CLASSES, (batch,), generator=generator)


def _multi_hot(generator: torch.Generator, batch: int, width: int = CLASSES) -> torch.Tensor:
    return (torch.rand(batch, width, generator=generator) < 0.4).float()


def _paths(generator: torch.Generator, batch: int) -> torch.Tensor:
    return torch.randint(0, 2, (batch, 3), generator=generator)


def _hcsc() -> tuple[HCSCLoss, torch.Tensor]:
    loss = HCSCLoss(temperature=0.01, queue_size=16, batch_negatives=True, seed=0)
    prototypes = loss.fit_prototypes(torch.randn(40, DIM, generator=torch.Generator().manual_seed(1)), (6, 3))
    return loss, prototypes.assignments


CASES: dict[
    str, tuple[Callable[[], torch.nn.Module], Callable[[torch.Generator, int], torch.Tensor], int]
] = {
    "himulcone": (lambda: HiMulConELoss(temperature=0.01), _paths, 250),
    "himulcone_code_options": (
        lambda: HiMulConELoss(
            temperature=0.01, dedup_between_levels=True, hce_reduction="scalar", normalizer="columns"
        ),
        _paths,
        120,
    ),
    "himulcone_hardest_pair_floor": (
        lambda: HiMulConELoss(temperature=0.01, hce_floor="pair", constrained_pairs="all"),
        _paths,
        120,
    ),
    "himulcone_taxonomy": (
        lambda: HiMulConELoss(_taxonomy(), temperature=0.01),
        lambda generator, batch: _multi_hot(generator, batch, 3),
        150,
    ),
    "clinfonce": (lambda: ClInfoNCELoss(temperature=0.01), _class_ids, 400),
    "ranked": (
        lambda: RankedContrastiveLoss(similarity=_similarity(), tau_min=0.01, tau_max=0.05),
        _class_ids,
        200,
    ),
    "ranked_multi_hot": (
        lambda: RankedContrastiveLoss(similarity=_similarity(), tau_min=0.01, reduction="per_positive"),
        _multi_hot,
        150,
    ),
}


def _assert_finite(
    loss_fn: torch.nn.Module, embeddings: torch.Tensor, labels: torch.Tensor, case: str
) -> None:
    embeddings = embeddings.clone().requires_grad_(True)
    value = loss_fn.total(loss_fn(embeddings, labels))
    value.backward()
    assert torch.isfinite(value), f"{case}: loss {value} for labels {labels.tolist()}"
    assert torch.isfinite(embeddings.grad).all(), f"{case}: non-finite gradient for labels {labels.tolist()}"


@pytest.mark.parametrize("case", list(CASES))
def test_random_batches_stay_finite(case: str) -> None:
    build, make_labels, rounds = CASES[case]
    loss_fn = build()
    generator = torch.Generator().manual_seed(len(case))
    for _ in range(rounds):
        batch = int(torch.randint(1, 7, (1,), generator=generator))
        views = int(torch.randint(1, 3, (1,), generator=generator))
        _assert_finite(loss_fn, _embeddings(generator, batch, views), make_labels(generator, batch), case)


def test_hcsc_random_batches_stay_finite() -> None:
    for selection in ("exclude", "zero_logit"):
        loss_fn, assignments = _hcsc()
        loss_fn.selection = selection
        generator = torch.Generator().manual_seed(4)
        for _ in range(60):
            batch = int(torch.randint(1, 7, (1,), generator=generator))
            labels = assignments[torch.randint(0, 40, (batch,), generator=generator)]
            _assert_finite(loss_fn, _embeddings(generator, batch, 2), labels, f"hcsc-{selection}")


@pytest.mark.parametrize("case", [*CASES, "hcsc"])
def test_bf16_autocast_embeddings_stay_finite(case: str) -> None:
    """Embeddings produced under bf16 autocast: the losses compute their logits in float32."""
    if case == "hcsc":
        loss_fn, assignments = _hcsc()

        def make_labels(generator, batch):
            return assignments[torch.randint(0, 40, (batch,), generator=generator)]
    else:
        build, make_labels, _ = CASES[case]
        loss_fn = build()
    projection = torch.nn.Linear(DIM, DIM)
    generator = torch.Generator().manual_seed(5)
    for _ in range(20):
        batch = int(torch.randint(1, 7, (1,), generator=generator))
        inputs = _embeddings(generator, batch, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            embeddings = projection(inputs)
            assert embeddings.dtype == torch.bfloat16
            value = loss_fn.total(loss_fn(embeddings, make_labels(generator, batch)))
        assert value.dtype == torch.float32
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(projection.weight.grad).all()
        projection.zero_grad()
