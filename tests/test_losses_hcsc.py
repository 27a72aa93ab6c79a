"""HCSC (Guo et al. 2022): loop reference with recorded selections, seeded selection, the two masking
modes, hierarchical prototypes, and the momentum encoder / key queue."""

from __future__ import annotations

import math

import pytest
import torch
from reference_hierarchical import cross_entropy_first
from reference_hierarchical import hcsc as hcsc_reference

from hiercon.errors import LossInputError
from hiercon.losses import HCSCLoss, MomentumQueue
from hiercon.losses.clustering import concentration, fit_hierarchical_prototypes
from hiercon.losses.momentum import MomentumEncoder

DIM = 6
BATCH = 8


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def dataset() -> torch.Tensor:
    return torch.randn(60, DIM, generator=torch.Generator().manual_seed(0))


def _loss_with_queue(dataset: torch.Tensor, n_clusters=(6, 3, 2), **options) -> tuple[HCSCLoss, object]:
    loss = HCSCLoss(queue_size=10, seed=3, **options)
    prototypes = loss.fit_prototypes(dataset, n_clusters)
    loss.queue.enqueue(torch.randn(7, DIM, generator=torch.Generator().manual_seed(1)), gather=False)
    return loss, prototypes


def _record_draws(loss: HCSCLoss) -> list[torch.Tensor]:
    draws: list[torch.Tensor] = []
    draw = loss._bernoulli

    def recording(probabilities: torch.Tensor) -> torch.Tensor:
        result = draw(probabilities)
        draws.append(result.detach().clone())
        return result

    loss._bernoulli = recording
    return draws


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"selection": "zero_logit"},
        {"batch_negatives": True},
        {"selection": "zero_logit", "batch_negatives": True, "last_prototype_never_negative": True},
        {"instance_level_reduction": "sum", "prototype_level_reduction": "sum"},
    ],
)
def test_matches_reference(dataset: torch.Tensor, options: dict) -> None:
    loss, prototypes = _loss_with_queue(dataset, **options)
    queue = loss.queue.contents()[0].clone()
    draws = _record_draws(loss)
    generator = torch.Generator().manual_seed(2)
    embeddings = torch.randn(BATCH, 2, DIM, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = prototypes.assignments[torch.randint(0, 60, (BATCH,), generator=generator)]
    parts = loss(embeddings, labels)
    (grad,) = torch.autograd.grad(parts["instance"] + parts["prototype"], embeddings)

    reference_embeddings = embeddings.detach().clone().requires_grad_(True)
    instance, prototype, probabilities = hcsc_reference(
        reference_embeddings,
        queue,
        labels.tolist(),
        loss._prototypes,
        loss._concentrations,
        [parent.tolist() for parent in loss._parents],
        draws,
        selection=options.get("selection", "exclude"),
        batch_negatives=options.get("batch_negatives", False),
        last_prototype_never_negative=options.get("last_prototype_never_negative", False),
        level_reduction=(
            options.get("instance_level_reduction", "mean"),
            options.get("prototype_level_reduction", "mean"),
        ),
    )
    (expected_grad,) = torch.autograd.grad(instance + prototype, reference_embeddings)
    _close(parts["instance"].detach(), instance.detach())
    _close(parts["prototype"].detach(), prototype.detach())
    _close(grad, expected_grad)
    assert len(draws) == len(probabilities) == 3 + 2
    assert len(loss.queue) == 10  # the batch's keys were enqueued


def test_selection_probabilities_match_the_equation(dataset: torch.Tensor) -> None:
    loss, prototypes = _loss_with_queue(dataset)
    queue = loss.queue.contents()[0].clone()
    seen: list[torch.Tensor] = []
    draw = loss._bernoulli
    loss._bernoulli = lambda probabilities: seen.append(probabilities.clone()) or draw(probabilities)
    embeddings = torch.randn(BATCH, 2, DIM, dtype=torch.float64)
    labels = prototypes.assignments[:BATCH]
    loss(embeddings, labels)
    _, _, expected = hcsc_reference(
        embeddings,
        queue,
        labels.tolist(),
        loss._prototypes,
        loss._concentrations,
        [parent.tolist() for parent in loss._parents],
        [torch.ones(BATCH, 64)] * 5,
    )
    for actual, rows in zip(seen, expected):
        _close(actual.double(), torch.tensor(rows, dtype=torch.float64))


def test_seeded_selection_is_reproducible(dataset: torch.Tensor) -> None:
    def run(seed: int) -> list[torch.Tensor]:
        loss = HCSCLoss(queue_size=16, seed=seed)
        prototypes = loss.fit_prototypes(dataset, (6, 3))
        draws = _record_draws(loss)
        generator = torch.Generator().manual_seed(5)
        for _ in range(3):
            embeddings = torch.randn(BATCH, 2, DIM, generator=generator)
            loss(embeddings, prototypes.assignments[torch.randint(0, 60, (BATCH,), generator=generator)])
        return draws

    first, again, other = run(7), run(7), run(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert any(not torch.equal(a, b) for a, b in zip(first, other))


def test_zero_logit_adds_one_per_unselected_negative(dataset: torch.Tensor) -> None:
    """One query, one level: exp(L_zero) - exp(L_exclude) = (number unselected) * exp(-q.k / T)."""
    losses = {}
    for selection in ("exclude", "zero_logit"):
        loss, prototypes = _loss_with_queue(dataset, n_clusters=(4,), selection=selection)
        draws = _record_draws(loss)
        embeddings = torch.randn(1, 2, DIM, generator=torch.Generator().manual_seed(4))
        losses[selection] = loss(embeddings, prototypes.assignments[:1])["instance"]
    unselected = int((draws[0] == 0).sum())
    assert 0 < unselected < 7
    q, k = torch.nn.functional.normalize(embeddings[0], dim=-1)
    gap = torch.exp(losses["zero_logit"]) - torch.exp(losses["exclude"])
    _close(gap, unselected * torch.exp(-(q @ k) / 0.2))


def test_without_prototypes_it_is_infonce_with_every_negative() -> None:
    loss = HCSCLoss(queue_size=4)
    queue = torch.nn.functional.normalize(torch.randn(4, DIM), dim=-1)
    loss.queue.enqueue(queue, gather=False)
    embeddings = torch.randn(3, 2, DIM, dtype=torch.float64)
    parts = loss(embeddings, torch.zeros(3, 2, dtype=torch.long))
    assert set(parts) == {"instance"}
    q = torch.nn.functional.normalize(embeddings[:, 0], dim=-1)
    k = torch.nn.functional.normalize(embeddings[:, 1], dim=-1)
    expected = sum(cross_entropy_first(q[i], [k[i], *queue.double()], [0.2] * 5) for i in range(3)) / 3
    _close(parts["instance"], expected)


def test_momentum_keys_carry_no_gradient(dataset: torch.Tensor) -> None:
    torch.manual_seed(0)
    encoder = torch.nn.Linear(DIM, DIM)
    momentum = MomentumEncoder(encoder, momentum=0.9)
    inputs = torch.randn(BATCH, 2, DIM)
    queries, keys = encoder(inputs[:, 0]), momentum(inputs[:, 1])
    assert not keys.requires_grad
    first, prototypes = _loss_with_queue(dataset)
    second, _ = _loss_with_queue(dataset)
    labels = prototypes.assignments[:BATCH]
    with_keys = first(queries, labels, key_embeddings=keys)
    stacked = second(torch.stack([queries, keys], dim=1), labels)
    _close(with_keys["instance"], stacked["instance"])
    _close(with_keys["prototype"], stacked["prototype"])
    HCSCLoss.total(with_keys).backward()
    assert encoder.weight.grad is not None and momentum.encoder.weight.grad is None


def test_finest_level_labels_and_callback_style_prototypes(dataset: torch.Tensor) -> None:
    """Finest-level ids ``[B]`` imply the coarser ones; ``set_prototypes(centroids, assignments)``
    derives the parent maps from the assignments and uses ``temperature`` as every concentration."""
    fitted, prototypes = _loss_with_queue(dataset)
    labels = prototypes.assignments[:BATCH]
    embeddings = torch.randn(BATCH, 2, DIM)
    fitted.eval()  # keep the queue, hence the sequence of draws, unchanged between the calls
    full = fitted(embeddings, labels)
    fitted._generators.clear()
    finest = fitted(embeddings, labels[:, 0])
    _close(finest["instance"], full["instance"])
    _close(finest["prototype"], full["prototype"])

    plain = HCSCLoss(queue_size=4, seed=0)
    plain.set_prototypes(prototypes.centroids, prototypes.assignments)
    for derived, fitted_parent in zip(plain._parents, prototypes.parents):
        assert torch.equal(derived, fitted_parent)
    assert all(bool((phi == plain.temperature).all()) for phi in plain._concentrations)
    key_views = torch.randn(BATCH, 2, DIM)
    plain.eval()
    one = plain(embeddings, labels, key_embeddings=key_views)
    plain._generators.clear()
    two = plain(torch.stack([embeddings[:, 0], key_views[:, 1]], dim=1), labels)
    _close(one["instance"], two["instance"])
    _close(one["prototype"], two["prototype"])


# ------------------------------------------------------------------------------------------- prototypes


def test_fit_hierarchical_prototypes(dataset: torch.Tensor) -> None:
    prototypes = fit_hierarchical_prototypes(dataset, (8, 4, 2), temperature=0.2, seed=0)
    assert prototypes.num_levels == 3 and prototypes.assignments.shape == (60, 3)
    for level, (centroids, phi) in enumerate(zip(prototypes.centroids, prototypes.concentrations)):
        assert centroids.shape == ((8, 4, 2)[level], DIM)
        _close(centroids.norm(dim=1), torch.ones(centroids.shape[0]))
        assert bool((phi > 0).all())
        _close(phi.mean(), torch.tensor(0.2))
    for level, parent in enumerate(prototypes.parents):
        assert torch.equal(parent[prototypes.assignments[:, level]], prototypes.assignments[:, level + 1])


def test_concentration_follows_pcl() -> None:
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    members = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [10.0, 2.0], [10.0, -2.0], [10.0, 0.0], [0.0, 10.0]])
    assignments = torch.tensor([0, 0, 1, 1, 1, 2])
    phi = concentration(members, centroids, assignments, temperature=0.5, percentiles=(0.0, 100.0))
    raw = torch.tensor([1.0 / math.log(12), (4.0 / 3) / math.log(13), (4.0 / 3) / math.log(13)])
    _close(phi, (0.5 * raw / raw.mean()).float())  # the singleton takes the largest value


# ------------------------------------------------------------------------------------------- momentum parts


def test_momentum_encoder_update_is_an_ema() -> None:
    online = torch.nn.Linear(3, 2)
    momentum = MomentumEncoder(online, momentum=0.75)
    before = momentum.encoder.weight.detach().clone()
    with torch.no_grad():
        online.weight.add_(1.0)
    momentum.update()
    _close(momentum.encoder.weight, 0.75 * before + 0.25 * online.weight.detach())
    assert "_online" not in dict(momentum.named_modules())
    assert not any(p.requires_grad for p in momentum.parameters())
    with pytest.raises(LossInputError, match="momentum"):
        momentum.update(1.5)


def test_queue_is_first_in_first_out() -> None:
    queue = MomentumQueue(5)
    keys = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    queue.enqueue(keys[:3], torch.tensor([0, 1, 2]))
    assert len(queue) == 3
    queue.enqueue(keys[3:], torch.tensor([3, 4, 5, 6]))
    stored, labels = queue.contents()
    _close(stored, keys[2:])
    assert labels.tolist() == [2, 3, 4, 5, 6]
    with pytest.raises(LossInputError, match="dim"):
        queue.enqueue(torch.randn(2, 4))
    with pytest.raises(LossInputError, match="rows"):
        queue.enqueue(torch.randn(2, 3), torch.tensor([1]))
    unlabelled = MomentumQueue(2)
    unlabelled.enqueue(torch.randn(3, 3))
    assert unlabelled.contents()[1] is None and len(unlabelled) == 2


# ------------------------------------------------------------------------------------------- errors


def test_bad_inputs_are_refused(dataset: torch.Tensor) -> None:
    with pytest.raises(LossInputError, match="negatives"):
        HCSCLoss(queue_size=0)
    with pytest.raises(LossInputError, match="selection"):
        HCSCLoss(selection="multiply")
    loss, prototypes = _loss_with_queue(dataset)
    with pytest.raises(LossInputError, match=r"\[batch, 3\]"):
        loss(torch.randn(4, 2, DIM), prototypes.assignments[:4, :2])
    with pytest.raises(LossInputError, match="outside"):
        loss(torch.randn(2, 2, DIM), torch.tensor([[0, 0, 0], [99, 0, 0]]))
    with pytest.raises(LossInputError, match="2, dim"):
        loss(torch.randn(4, DIM), prototypes.assignments[:4])
    with pytest.raises(LossInputError, match="dim"):
        loss(torch.randn(4, 2, DIM + 1), prototypes.assignments[:4])
    with pytest.raises(LossInputError, match="parent maps"):
        loss.set_prototypes([torch.randn(3, DIM), torch.randn(2, DIM)], parents=[])
    with pytest.raises(LossInputError, match="positive"):
        loss.set_prototypes([torch.randn(3, DIM)], concentrations=[torch.zeros(3)])
    with pytest.raises(LossInputError, match="finest"):
        loss(torch.randn(2, 2, DIM), torch.tensor([0, 6]))
    with pytest.raises(LossInputError, match="key_embeddings"):
        loss(torch.randn(2, DIM), prototypes.assignments[:2], key_embeddings=torch.randn(3, DIM))
