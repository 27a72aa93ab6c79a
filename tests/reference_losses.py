"""Slow references for the SupCon-family losses, written directly from the papers' equations.

Plain Python loops over anchors, keys and labels in float64; autograd through them gives the
reference gradients. Views are flattened item-major (item ``i``'s view ``v`` is row ``i * V + v``),
like the library. Anchors without a positive are skipped and not counted.
"""

from __future__ import annotations

import math

import torch

Labels = torch.Tensor | None


def unit_rows(embeddings: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Flatten ``[B, d]`` / ``[B, V, d]`` to unit rows ``[B * V, d]``; also return ``V``."""
    if embeddings.dim() == 2:
        embeddings = embeddings[:, None, :]
    batch, views, dim = embeddings.shape
    flat = embeddings.reshape(batch * views, dim).double()
    return flat / flat.norm(dim=1, keepdim=True), views


def label_set(labels: torch.Tensor, item: int) -> set[int]:
    return {c for c in range(labels.shape[1]) if labels[item, c] > 0}


def _mean(total: torch.Tensor, count: float) -> torch.Tensor:
    return total / count if count > 0 else total * 0.0


def _logsumexp(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.logsumexp(torch.stack(values), dim=0)


def supcon_reference(
    embeddings: torch.Tensor,
    labels: Labels,
    temperature: float = 0.1,
    variant: str = "out",
    positives: str = "all",
    base_temperature: float | None = None,
) -> torch.Tensor:
    z, views = unit_rows(embeddings)
    n = z.shape[0]

    def is_positive(a: int, k: int) -> bool:
        i, j = a // views, k // views
        if labels is None:
            return i == j
        if labels.dim() == 1:
            return int(labels[i]) >= 0 and int(labels[i]) == int(labels[j])
        yi, yj = label_set(labels, i), label_set(labels, j)
        return (yi == yj and len(yi) > 0) if positives == "all" else len(yi & yj) > 0

    total, count = z.sum() * 0.0, 0
    for a in range(n):
        others = [k for k in range(n) if k != a]
        pos = [k for k in others if is_positive(a, k)]
        if not pos:
            continue
        log_z = _logsumexp([z[a] @ z[k] / temperature for k in others])
        log_p = [z[a] @ z[p] / temperature - log_z for p in pos]
        if variant == "out":
            total = total - sum(log_p) / len(pos)
        else:
            total = total - torch.log(sum(torch.exp(lp) for lp in log_p) / len(pos))
        count += 1
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return scale * _mean(total, count)


def jaccard_supcon_reference(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1):
    z, views = unit_rows(embeddings)
    n = z.shape[0]
    total, count = z.sum() * 0.0, 0
    for a in range(n):
        ya = label_set(labels, a // views)
        others = [k for k in range(n) if k != a]
        weights = {}
        for k in others:
            yk = label_set(labels, k // views)
            union = len(ya | yk)
            weights[k] = len(ya & yk) / union if union else 0.0
        norm = sum(weights.values())
        if norm == 0:
            continue
        log_z = _logsumexp([z[a] @ z[k] / temperature for k in others])
        total = total - sum(
            w / norm * (z[a] @ z[k] / temperature - log_z) for k, w in weights.items() if w > 0
        )
        count += 1
    return _mean(total, count)


def mulsupcon_reference(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1, with_weight: bool = False
) -> torch.Tensor:
    z, views = unit_rows(embeddings)
    n = z.shape[0]
    total, pairs, anchors = z.sum() * 0.0, 0, 0
    for a in range(n):
        ya = label_set(labels, a // views)
        others = [k for k in range(n) if k != a]
        log_z = _logsumexp([z[a] @ z[k] / temperature for k in others]) if others else None
        anchor_total, anchor_pairs = z.new_zeros(()), 0
        for c in sorted(ya):
            pos = [k for k in others if labels[k // views, c] > 0]
            if not pos:
                continue
            anchor_total = anchor_total - sum(z[a] @ z[p] / temperature - log_z for p in pos) / len(pos)
            anchor_pairs += 1
        if anchor_pairs == 0:
            continue
        total = total + (anchor_total / len(ya) if with_weight else anchor_total)
        pairs += anchor_pairs
        anchors += 1
    return _mean(total, anchors if with_weight else pairs)


def abalone_reference(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float = 0.1,
    alpha: float = 1.0,
    beta: float = 0.1,
) -> torch.Tensor:
    z, views = unit_rows(embeddings)
    p = prototypes.double() / prototypes.double().norm(dim=1, keepdim=True)
    n, num_labels = z.shape[0], p.shape[0]
    total, count = z.sum() * 0.0, 0
    for a in range(n):
        ya = label_set(labels, a // views)
        if not ya:
            continue
        others = [k for k in range(n) if k != a]
        terms = [math.log(beta) + z[a] @ z[k] / temperature for k in others] if beta > 0 else []
        log_z = _logsumexp(terms + [z[a] @ p[c] / temperature for c in range(num_labels)])
        anchor_total = z.new_zeros(())
        for c in sorted(ya):
            sharing = [k for k in others if labels[k // views, c] > 0]
            unions = {k: len(ya | label_set(labels, k // views)) for k in sharing}
            mass = 1.0 + alpha * sum(1.0 / u for u in unions.values())
            anchor_total = anchor_total - (z[a] @ p[c] / temperature - log_z) / mass
            for k in sharing:
                anchor_total = anchor_total - alpha / unions[k] / mass * (z[a] @ z[k] / temperature - log_z)
        total = total + anchor_total / len(ya)
        count += 1
    return _mean(total, count)


def reg_items(embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor):
    """Unit vectors and label sets of REG's items: the sample views, then the prototypes."""
    z, views = unit_rows(embeddings)
    p = prototypes.double() / prototypes.double().norm(dim=1, keepdim=True)
    vectors = list(z) + list(p)
    sets = [label_set(labels, a // views) for a in range(z.shape[0])] + [{c} for c in range(p.shape[0])]
    return vectors, sets


def reg_weights_reference(sets: list[set[int]], alpha: float = 1.0) -> list[list[float]]:
    """REG's target weights ``W[a][b]`` over items with label sets ``sets``."""

    def f(a: int, b: int) -> float:
        inter = len(sets[a] & sets[b])
        if inter == 0:
            return 0.0
        x = inter / len(sets[b])
        return float(x == 1.0) if alpha < 0 else x**alpha

    size = len(sets)
    weights = [[0.0] * size for _ in range(size)]
    for a in range(size):
        for c in sets[a]:
            carriers = [b for b in range(size) if b != a and c in sets[b]]
            n_ac = sum(f(a, b) for b in carriers)
            if n_ac == 0:
                continue
            for b in carriers:
                weights[a][b] += f(a, b) / n_ac / len(sets[a])
    return weights


def reg_reference(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float = 0.1,
    alpha: float = 1.0,
    gradient_regularization: bool = True,
) -> torch.Tensor:
    vectors, sets = reg_items(embeddings, labels, prototypes)
    weights = reg_weights_reference(sets, alpha)
    size = len(vectors)
    total, count = torch.stack(vectors).sum() * 0.0, 0
    for a in range(size):
        if sum(weights[a]) == 0:
            continue
        others = [b for b in range(size) if b != a]
        logits = {b: vectors[a] @ vectors[b] / temperature for b in others}
        log_z = _logsumexp(list(logits.values()))
        for b in others:
            w = weights[a][b]
            if w == 0:
                continue
            log_p = logits[b] - log_z
            total = total - w * log_p
            if gradient_regularization:
                total = total - max(float(torch.exp(log_p.detach())) - w, 0.0) * logits[b]
        count += 1
    return _mean(total, count)


def prototype_reference(
    embeddings: torch.Tensor, labels: torch.Tensor, prototypes: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    z, views = unit_rows(embeddings)
    p = prototypes.double() / prototypes.double().norm(dim=1, keepdim=True)
    total, count = z.sum() * 0.0, 0
    for a in range(z.shape[0]):
        ya = label_set(labels, a // views)
        if not ya:
            continue
        log_z = _logsumexp([z[a] @ p[c] / temperature for c in range(p.shape[0])])
        total = total - sum(z[a] @ p[c] / temperature - log_z for c in ya) / len(ya)
        count += 1
    return _mean(total, count)
