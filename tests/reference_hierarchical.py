"""Slow float64 references written straight from the equations, with Python loops over pairs.

Views are flattened item-major (item ``i``'s view ``v`` is row ``i * V + v``), as the losses do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable

import torch


def flatten_views(embeddings: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """L2-normalised rows in float64 and the item of each row."""
    if embeddings.dim() == 2:
        embeddings = embeddings[:, None, :]
    batch, views, dim = embeddings.shape
    rows = torch.nn.functional.normalize(embeddings.double().reshape(batch * views, dim), dim=-1)
    return rows, [i for i in range(batch) for _ in range(views)]


def _log_sum_exp(values: list[torch.Tensor]) -> torch.Tensor:
    stacked = torch.stack(values)
    top = stacked.max().detach()
    return top + torch.log(torch.exp(stacked - top).sum())


def himulcone(
    embeddings: torch.Tensor,
    level_positive: Callable[[int, int, int], bool],
    level_prefix: Callable[[int, int], Hashable],
    num_levels: int,
    num_columns: int,
    mode: str = "hmce",
    penalty: Callable[[int], float] = lambda level: math.exp(1.0 / level),
    dedup: bool = False,
    hce_reduction: str = "pair",
    normalizer: str = "levels",
    tau: float = 0.1,
    base_tau: float | None = None,
    constrained_pairs: str = "farther",
    hce_floor: str = "level",
) -> torch.Tensor:
    """HiMulCon / HiConE / HiMulConE with loops.

    ``level_positive(i, j, l)``: items ``i`` and ``j`` share their level-``l`` group;
    ``level_prefix(i, l)``: the key whose first item is kept when de-duplicating after level ``l``.
    Per-pair HCE raises the level-``l`` pairs that are not positives at level ``l - 1``
    (``constrained_pairs="farther"``) or every level-``l`` pair (``"all"``) to the anchor's floor:
    the largest of its finer level losses (``hce_floor="level"``) or finer pair terms (``"pair"``).
    """
    z, items = flatten_views(embeddings)
    n_rows, n_items = len(items), max(items) + 1
    present = set(range(n_items))
    running = [None] * n_rows
    level_losses = []
    for level in range(1, num_levels + 1):
        if dedup and level > 1:
            firsts: dict[Hashable, int] = {}
            for item in range(n_items):
                firsts.setdefault(level_prefix(item, level - 1), item)
            present = set(firsts.values())
        anchor_losses = []
        for a in range(n_rows):
            if items[a] not in present:
                continue
            keys = [k for k in range(n_rows) if k != a and items[k] in present]
            if not keys:
                continue
            log_z = _log_sum_exp([z[a] @ z[k] / tau for k in keys])
            positives = [k for k in keys if items[k] == items[a] or level_positive(items[a], items[k], level)]
            if not positives:
                continue
            terms = []
            for p in positives:
                term = log_z - z[a] @ z[p] / tau
                finer = items[p] == items[a] or (level > 1 and level_positive(items[a], items[p], level - 1))
                raise_term = constrained_pairs == "all" or not finer
                if mode != "hmc" and hce_reduction == "pair" and running[a] is not None and raise_term:
                    term = term if term > running[a] else running[a]
                terms.append(term)
            if mode != "hmc" and hce_reduction == "pair":
                best = sum(terms) / len(terms) if hce_floor == "level" else max(terms, key=lambda t: t.item())
                running[a] = best if running[a] is None or best > running[a] else running[a]
            anchor_losses.append(sum(terms) / len(terms))
        level_losses.append(sum(anchor_losses) / len(anchor_losses) if anchor_losses else z.sum() * 0.0)

    total, previous = z.sum() * 0.0, None
    for level, loss in enumerate(level_losses, start=1):
        if mode != "hmc" and hce_reduction == "scalar" and previous is not None:
            loss = loss if loss > previous else previous
        previous = loss
        weight = 1.0 if mode == "hce" else penalty(level)
        total = total + weight * loss
    divisor = num_levels if normalizer == "levels" else num_columns
    scale = 1.0 if base_tau is None else tau / base_tau
    return total * scale / divisor


def supcon(
    embeddings: torch.Tensor,
    positive: Callable[[int, int], bool],
    tau: float = 0.1,
    base_tau: float | None = None,
    own_views: bool = True,
) -> torch.Tensor:
    """SupCon ``L_out``; with ``own_views`` the item's other views are always positives, otherwise
    only when ``positive(i, i)``. Anchors without a positive are skipped."""
    z, items = flatten_views(embeddings)
    losses = []
    for a in range(len(items)):
        keys = [k for k in range(len(items)) if k != a]
        if not keys:
            continue
        log_z = _log_sum_exp([z[a] @ z[k] / tau for k in keys])
        positives = [k for k in keys if (own_views and items[k] == items[a]) or positive(items[a], items[k])]
        if positives:
            losses.append(sum(log_z - z[a] @ z[p] / tau for p in positives) / len(positives))
    loss = sum(losses) / len(losses) if losses else z.sum() * 0.0
    return loss * (1.0 if base_tau is None else tau / base_tau)


def ranked(
    embeddings: torch.Tensor,
    rank: Callable[[int, int], int],
    rank_similarity: Callable[[int, int], float],
    num_ranks: int,
    tau_min: float = 0.1,
    tau_max: float = 0.6,
    reduction: str = "sum_in_log",
    rank_reduction: str = "sum",
) -> torch.Tensor:
    """Ranked InfoNCE: ``rank(i, j)`` is item ``j``'s rank for item ``i`` (0: negative; the own
    other views are rank 1); ``rank_similarity(i, r)`` the similarity of rank ``r`` for item ``i``.
    Per rank, the mean over the anchors that have a positive of that rank; then summed (or
    averaged over ``num_ranks``)."""
    z, items = flatten_views(embeddings)
    total = z.sum() * 0.0
    for r in range(1, num_ranks + 1):
        losses = []
        for a in range(len(items)):
            i = items[a]

            def rank_of(k: int, a: int = a, i: int = i) -> int:
                return 1 if items[k] == i else rank(i, items[k])

            tau = tau_min + (1.0 - rank_similarity(i, r)) * (tau_max - tau_min)
            keys = [k for k in range(len(items)) if k != a and (rank_of(k) == 0 or rank_of(k) >= r)]
            positives = [k for k in keys if rank_of(k) == r]
            if not positives:
                continue
            negatives = [k for k in keys if rank_of(k) != r]
            if reduction == "sum_in_log":
                log_z = _log_sum_exp([z[a] @ z[k] / tau for k in keys])
                losses.append(log_z - _log_sum_exp([z[a] @ z[p] / tau for p in positives]))
            else:
                terms = []
                for p in positives:
                    log_z = _log_sum_exp([z[a] @ z[k] / tau for k in [p, *negatives]])
                    terms.append(log_z - z[a] @ z[p] / tau)
                losses.append(sum(terms) / len(terms))
        if losses:
            total = total + sum(losses) / len(losses)
    return total / num_ranks if rank_reduction == "mean" else total


def cross_entropy_first(
    query: torch.Tensor,
    candidates: list[torch.Tensor],
    temperatures: list[float],
    zero_logits: list[bool] | None = None,
) -> torch.Tensor:
    """``-log softmax`` of candidate 0 with a temperature per candidate; a candidate flagged in
    ``zero_logits`` enters with logit 0 (the HCSC reference code's masking)."""
    logits = []
    for index, (candidate, temperature) in enumerate(zip(candidates, temperatures)):
        if zero_logits is not None and zero_logits[index]:
            logits.append(query.new_zeros(()))
        else:
            logits.append(query @ candidate / temperature)
    return _log_sum_exp(logits) - logits[0]


def class_rankings(
    similarity: list[list[float]],
    label_sets: list[set[int]],
    threshold: float = 0.0,
    max_ranks: int | None = None,
    merge_equal: bool = True,
) -> tuple[Callable[[int, int], int], Callable[[int, int], float], int]:
    """``(rank, rank_similarity, deepest rank)`` for :func:`ranked`, from a class similarity and
    each item's label set: item ``i``'s row is ``max_{c in y_i} S[c, :]``; a key's rank is the best
    rank among its classes."""
    classes = range(len(similarity))

    def row(i: int) -> list[float]:
        return [max([similarity[c][k] for c in label_sets[i]], default=0.0) for k in classes]

    def class_ranks(i: int) -> dict[int, int]:
        values = row(i)
        above = [k for k in classes if values[k] > threshold]
        if merge_equal:
            distinct = sorted({values[k] for k in above}, reverse=True)
            ranks = {k: distinct.index(values[k]) + 1 for k in above}
        else:
            ranks = {k: n + 1 for n, k in enumerate(sorted(above, key=lambda k: (-values[k], k)))}
        return {k: r for k, r in ranks.items() if max_ranks is None or r <= max_ranks}

    def rank(i: int, j: int) -> int:
        ranks = class_ranks(i)
        return min([ranks[c] for c in label_sets[j] if c in ranks], default=0)

    def rank_similarity(i: int, r: int) -> float:
        if r == 1:
            return 1.0
        values, ranks = row(i), class_ranks(i)
        return next((values[k] for k, kr in ranks.items() if kr == r), 0.0)

    deepest = max([max(class_ranks(i).values(), default=0) for i in range(len(label_sets))] + [1])
    return rank, rank_similarity, deepest


def hcsc(
    embeddings: torch.Tensor,
    queue: torch.Tensor,
    assignments: list[list[int]],
    prototypes: list[torch.Tensor],
    concentrations: list[torch.Tensor],
    parents: list[list[int]],
    draws: list[torch.Tensor],
    tau: float = 0.2,
    selection: str = "exclude",
    batch_negatives: bool = False,
    last_prototype_never_negative: bool = False,
    level_reduction: tuple[str, str] = ("mean", "mean"),
) -> tuple[torch.Tensor, torch.Tensor, list[list[list[float]]]]:
    """HCSC's instance and prototype terms, consuming the 0/1 selection ``draws`` in the loss's
    order (instance levels, then prototype levels below the top). Also returns each draw's keep
    probability ``[query][candidate]`` (candidates: batch keys then queue; or prototypes)."""
    batch = embeddings.shape[0]
    queries = torch.nn.functional.normalize(embeddings[:, 0].double(), dim=-1)
    keys = torch.nn.functional.normalize(embeddings[:, 1].double(), dim=-1)
    queue = queue.double()
    protos = [p.double() for p in prototypes]
    phis = [[float(v) for v in phi] for phi in concentrations]
    levels = len(protos)

    def keep_probability(point: torch.Tensor, level: int, cluster: int, low: float) -> float:
        logits = torch.stack([point @ protos[level][c] / phis[level][c] for c in range(len(phis[level]))])
        return min(max(1.0 - torch.softmax(logits, 0)[cluster].item(), low), 0.999)

    def coded(i: int, positive: torch.Tensor, positive_tau: float, negatives: list, draw: torch.Tensor):
        candidates, temperatures, zeroed = [positive], [positive_tau], [False]
        for column, vector, temperature in negatives:
            selected = bool(draw[i, column])
            if selected or selection == "zero_logit":
                candidates.append(vector)
                temperatures.append(temperature)
                zeroed.append(not selected)
        return cross_entropy_first(queries[i], candidates, temperatures, zeroed)

    probabilities: list[list[list[float]]] = []
    instance_levels = []
    all_keys = [keys[j] for j in range(batch)] + [queue[j] for j in range(queue.shape[0])]
    for level in range(levels):
        rows, terms = [], []
        for i in range(batch):
            negatives = [
                (j, u, tau) for j, u in enumerate(all_keys) if j >= batch or (batch_negatives and j != i)
            ]
            rows.append([keep_probability(u, level, assignments[i][level], 0.0) for u in all_keys])
            terms.append(coded(i, keys[i], tau, negatives, draws[level]))
        probabilities.append(rows)
        instance_levels.append(sum(terms) / batch)
    prototype_levels = []
    for level in range(levels):
        used = {assignments[i][level] for i in range(batch)}
        count = len(phis[level])
        candidates = [c for c in range(count) if c not in used]
        if last_prototype_never_negative:
            candidates = [c for c in candidates if c != count - 1]
        rows, terms = [], []
        for i in range(batch):
            own = assignments[i][level]
            negatives = [(c, protos[level][c], phis[level][c]) for c in candidates]
            if level + 1 < levels:
                parent = parents[level][own]
                rows.append(
                    [keep_probability(protos[level][c], level + 1, parent, 1e-4) for c in range(count)]
                )
                draw = draws[levels + level]
            else:
                draw = torch.ones(batch, count)
            terms.append(coded(i, protos[level][own], phis[level][own], negatives, draw))
        if rows:
            probabilities.append(rows)
        prototype_levels.append(sum(terms) / batch)
    instance = sum(instance_levels) / (levels if level_reduction[0] == "mean" else 1)
    prototype = sum(prototype_levels) / (levels if level_reduction[1] == "mean" else 1)
    return instance, prototype, probabilities
