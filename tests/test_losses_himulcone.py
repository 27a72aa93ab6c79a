"""HiMulConE (Zhang et al. 2022): value and gradient against the loop reference, taxonomy labels,
special cases and invariances."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_hierarchical import himulcone as himulcone_reference

from hiercon import LabelTaxonomy
from hiercon.errors import LossInputError
from hiercon.losses import HiMulConELoss, SupConLoss
from hiercon.losses.hierarchy_masks import first_of_group, prefix_group_ids, shared_prefix_depth
from hiercon.losses.himulcone import pow2_inverse_level

DIM = 5
PROPERTY_SETTINGS = settings(max_examples=12, deadline=None)


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-6)


def _path_reference(embeddings: torch.Tensor, paths: torch.Tensor, **options) -> torch.Tensor:
    rows, columns = paths.tolist(), paths.shape[1]
    return himulcone_reference(
        embeddings,
        lambda i, j, level: rows[i][: columns - level] == rows[j][: columns - level],
        lambda i, level: tuple(rows[i][: columns - level]),
        num_levels=columns - 1,
        num_columns=columns,
        **options,
    )


def _value_and_grad(loss_fn, embeddings: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings = embeddings.detach().clone().requires_grad_(True)
    value = loss_fn(embeddings, *args)
    (grad,) = torch.autograd.grad(value, embeddings)
    return value.detach(), grad


OPTION_SETS = [
    {"mode": "hmce"},
    {"mode": "hmc"},
    {"mode": "hce"},
    {"mode": "hmce", "hce_reduction": "scalar"},
    {"mode": "hce", "hce_reduction": "scalar", "dedup_between_levels": True},
    {"mode": "hmc", "dedup_between_levels": True, "normalizer": "columns"},
    {"mode": "hmce", "dedup_between_levels": True, "base_temperature": 0.07},
    {"mode": "hmce", "hce_reduction": "scalar", "dedup_between_levels": True, "normalizer": "columns"},
    {"mode": "hmce", "hce_floor": "pair", "constrained_pairs": "all"},
    {"mode": "hce", "hce_floor": "pair"},
    {"mode": "hmce", "constrained_pairs": "all", "dedup_between_levels": True},
]

SHAPES = [(8, 2, 4, 2), (6, 1, 3, 3), (5, 3, 4, 2), (1, 2, 3, 2), (2, 1, 3, 2), (7, 2, 2, 5)]


CASES = [
    (SHAPES[(2 * i + j) % len(SHAPES)], options) for i, options in enumerate(OPTION_SETS) for j in range(2)
]


@pytest.mark.parametrize(("shape", "options"), CASES)
def test_matches_reference_on_random_paths(options: dict, shape: tuple[int, int, int, int]) -> None:
    batch, views, columns, values = shape
    generator = torch.Generator().manual_seed(batch * 100 + views * 10 + columns)
    embeddings = torch.randn(batch, views, DIM, generator=generator, dtype=torch.float64)
    paths = torch.randint(0, values, (batch, columns), generator=generator)
    value, grad = _value_and_grad(HiMulConELoss(**options), embeddings, paths)
    reference_options = {k: v for k, v in options.items() if k != "dedup_between_levels"}
    reference_options["dedup"] = options.get("dedup_between_levels", False)
    reference_options["base_tau"] = reference_options.pop("base_temperature", None)
    expected, expected_grad = _value_and_grad(
        lambda e, p: _path_reference(e, p, **reference_options), embeddings, paths
    )
    _close(value, expected)
    _close(grad, expected_grad)


@pytest.mark.parametrize(
    "paths",
    [
        torch.zeros(6, 3, dtype=torch.long),  # one class everywhere
        torch.arange(18).reshape(6, 3),  # every label distinct
        torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 3], [1, 1, 2], [1, 0, 0], [0, 1, 2]]),  # repeated rows
    ],
    ids=["one_class", "all_distinct", "repeated_rows"],
)
@pytest.mark.parametrize("options", [OPTION_SETS[0], OPTION_SETS[7]])
def test_matches_reference_on_degenerate_batches(paths: torch.Tensor, options: dict) -> None:
    embeddings = torch.randn(paths.shape[0], 2, DIM, dtype=torch.float64)
    embeddings[1] = embeddings[0]  # duplicated embeddings
    value, grad = _value_and_grad(HiMulConELoss(**options), embeddings, paths)
    reference_options = {k: v for k, v in options.items() if k != "dedup_between_levels"}
    reference_options["dedup"] = options.get("dedup_between_levels", False)
    expected, expected_grad = _value_and_grad(
        lambda e, p: _path_reference(e, p, **reference_options), embeddings, paths
    )
    _close(value, expected)
    _close(grad, expected_grad)
    assert torch.isfinite(grad).all()


def test_single_view_batch_of_one_is_zero_and_differentiable() -> None:
    embeddings = torch.randn(1, 1, DIM, requires_grad=True)
    loss = HiMulConELoss()(embeddings, torch.tensor([[0, 1, 2]]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(embeddings.grad, torch.zeros_like(embeddings))


def test_default_level_penalty_is_exp_inverse_level() -> None:
    torch.manual_seed(3)
    embeddings = torch.randn(6, 2, DIM, dtype=torch.float64)
    paths = torch.randint(0, 2, (6, 4))
    parts = HiMulConELoss(mode="hmc", return_parts=True)(embeddings, paths)
    unweighted = HiMulConELoss(mode="hmc", level_penalty=lambda level: 1.0, return_parts=True)(
        embeddings, paths
    )
    for level in (1, 2, 3):
        _close(parts[f"level_{level}"], math.exp(1.0 / level) * unweighted[f"level_{level}"])
    pow2 = HiMulConELoss(mode="hmc", level_penalty=pow2_inverse_level, return_parts=True)(embeddings, paths)
    _close(pow2["level_2"], 2**0.5 * unweighted["level_2"])
    listed = HiMulConELoss(mode="hmc", level_penalty=[1.0, 2.0, 3.0], return_parts=True)(embeddings, paths)
    _close(listed["level_3"], 3.0 * unweighted["level_3"])
    _close(HiMulConELoss.total(parts), HiMulConELoss(mode="hmc")(embeddings, paths))
    assert HiMulConELoss().config()["level_penalty"] == "exp_inverse_level"
    assert HiMulConELoss(level_penalty=[1, 2]).config()["level_penalty"] == [1.0, 2.0]


def test_pair_constraint_never_lowers_the_loss() -> None:
    """Per-pair HCE only raises pair terms: HiConE >= HiMulCon with unit penalties."""
    torch.manual_seed(4)
    for _ in range(10):
        embeddings = torch.randn(8, 2, DIM)
        paths = torch.randint(0, 2, (8, 4))
        unit = {"level_penalty": lambda level: 1.0}
        assert (
            HiMulConELoss(mode="hce")(embeddings, paths)
            >= HiMulConELoss(mode="hmc", **unit)(embeddings, paths) - 1e-6
        )


def test_constraint_readings_are_ordered() -> None:
    """Each reading raises a subset of the next one's terms, to a floor no higher: HiMulCon <=
    level floor on farther pairs <= level floor on all pairs <= hardest-pair floor on all pairs,
    and level floor <= hardest-pair floor on farther pairs."""
    torch.manual_seed(9)
    unit = {"mode": "hce", "level_penalty": lambda level: 1.0}
    for _ in range(10):
        batch = (torch.randn(10, 2, DIM, dtype=torch.float64), torch.randint(0, 2, (10, 4)))

        def value(batch=batch, **options) -> float:
            return float(HiMulConELoss(**{**unit, **options})(*batch))

        default = value()
        assert value(mode="hmc") <= default + 1e-9
        assert default <= value(constrained_pairs="all") + 1e-9
        assert value(constrained_pairs="all") <= value(constrained_pairs="all", hce_floor="pair") + 1e-9
        assert default <= value(hce_floor="pair") + 1e-9
        assert value(hce_floor="pair") <= value(constrained_pairs="all", hce_floor="pair") + 1e-9


def test_constraint_raises_only_farther_pairs() -> None:
    """With two levels that make the same pairs positive, no pair is farther apart than the finer
    level's pairs: the default constraint changes nothing, the all-pairs reading raises terms."""
    generator = torch.Generator().manual_seed(10)
    embeddings = torch.randn(8, 2, DIM, generator=generator, dtype=torch.float64)
    classes = torch.randint(0, 3, (8,), generator=generator)
    paths = torch.stack([classes, classes], dim=1)
    unit = {"instance_column": False, "level_penalty": lambda level: 1.0}
    hmc = HiMulConELoss(mode="hmc", **unit)(embeddings, paths)
    _close(HiMulConELoss(mode="hce", **unit)(embeddings, paths), hmc)
    assert HiMulConELoss(mode="hce", constrained_pairs="all", **unit)(embeddings, paths) > hmc + 1e-6


def _mean_pairwise_cosine(embeddings: torch.Tensor) -> torch.Tensor:
    rows = torch.nn.functional.normalize(embeddings.reshape(-1, embeddings.shape[-1]), dim=-1)
    total = rows.sum(dim=0)
    return (total @ total - rows.shape[0]) / (rows.shape[0] * (rows.shape[0] - 1))


def _contraction(loss: HiMulConELoss, embeddings: torch.Tensor, paths: torch.Tensor) -> float:
    """Cosine between the loss's descent direction and the direction that raises the batch's
    mean pairwise cosine: positive when a step pulls the whole batch together."""
    embeddings = embeddings.clone().requires_grad_(True)
    (loss_grad,) = torch.autograd.grad(loss(embeddings, paths), embeddings)
    (cosine_grad,) = torch.autograd.grad(_mean_pairwise_cosine(embeddings), embeddings)
    return float(-(loss_grad * cosine_grad).sum() / (loss_grad.norm() * cosine_grad.norm()))


@pytest.mark.parametrize("seed", range(4))
def test_concentrated_batch_is_not_pulled_together(seed: int) -> None:
    """The collapse mechanism: on a batch concentrated around one direction (mean cosine 0.99, two
    near-identical views, half the batch shares the coarse label), a floor at the anchor's hardest
    finer positive makes a descent step pull the whole batch together; the default does not."""
    generator = torch.Generator().manual_seed(seed)
    center = torch.randn(16, generator=generator, dtype=torch.float64)
    items = center / center.norm() + 0.1 * torch.randn(32, 16, generator=generator, dtype=torch.float64) / 4
    noise = 0.01 * torch.randn(32, 16, generator=generator, dtype=torch.float64)
    embeddings = torch.stack([items, items + noise], dim=1)
    fine = torch.randint(0, 6, (32,), generator=generator)
    paths = torch.stack([fine // 3, fine], dim=1)
    options = {"instance_column": False, "temperature": 0.05}
    hardest = HiMulConELoss(hce_floor="pair", constrained_pairs="all", **options)
    assert _contraction(hardest, embeddings, paths) > 0.15
    assert _contraction(HiMulConELoss(**options), embeddings, paths) < 0.1


def test_paths_without_instance_column_use_every_column() -> None:
    generator = torch.Generator().manual_seed(8)
    embeddings = torch.randn(7, 2, DIM, generator=generator, dtype=torch.float64)
    paths = torch.randint(0, 2, (7, 3), generator=generator)
    with_instances = torch.cat([paths, torch.arange(7)[:, None]], dim=1)
    for options in OPTION_SETS:
        _close(
            HiMulConELoss(instance_column=False, **options)(embeddings, paths),
            HiMulConELoss(**options)(embeddings, with_instances),
        )
    single = HiMulConELoss(instance_column=False, level_penalty=lambda level: 1.0)
    _close(single(embeddings, paths[:, :1]), SupConLoss()(embeddings, paths[:, 0]))


# ------------------------------------------------------------------------------------------- taxonomy labels


@pytest.fixture(scope="module")
def taxonomy() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(
        [
            ("root", "a"),
            ("root", "b"),
            ("a", "a1"),
            ("a", "a2"),
            ("b", "b1"),
            ("b", "b2"),
            ("a1", "x"),
            ("a1", "y"),
        ]
    )


def test_taxonomy_single_path_labels_equal_prefix_paths(taxonomy: LabelTaxonomy) -> None:
    """For single-path data, sharing a node at a depth equals sharing the path prefix; the taxonomy's
    levels are the path's columns followed by an instance column."""
    generator = torch.Generator().manual_seed(5)
    leaves = torch.randint(0, len(taxonomy.leaves), (9,), generator=generator)
    embeddings = torch.randn(9, 2, DIM, generator=generator, dtype=torch.float64)
    paths = torch.cat([taxonomy.leaf_paths[leaves], torch.arange(9)[:, None]], dim=1)
    leaf_multi_hot = torch.nn.functional.one_hot(leaves, len(taxonomy.leaves)).double()
    node_ids = taxonomy.leaf_ids[leaves]
    for options in OPTION_SETS[:5:2]:
        expected = HiMulConELoss(**options)(embeddings, paths)
        _close(HiMulConELoss(taxonomy, **options)(embeddings, leaf_multi_hot), expected)
        _close(HiMulConELoss(taxonomy, **options)(embeddings, node_ids), expected)
        nodes = taxonomy.encode([[taxonomy.label(int(i))] for i in node_ids])
        _close(HiMulConELoss(taxonomy, **options)(embeddings, nodes), expected)


def test_taxonomy_multi_label_matches_reference(taxonomy: LabelTaxonomy) -> None:
    generator = torch.Generator().manual_seed(6)
    label_sets = [["x", "b1"], ["y"], ["a2"], ["b2", "b1"], [], ["x"], ["a2", "y"]]
    labels = taxonomy.encode(label_sets)
    embeddings = torch.randn(len(label_sets), 2, DIM, generator=generator, dtype=torch.float64)

    def nodes_at(item: int, depth: int) -> set[str]:
        names = {n for n in label_sets[item]} | {a for n in label_sets[item] for a in taxonomy.ancestors(n)}
        return {
            n
            for n in names
            if taxonomy.depth(n) == depth or (taxonomy.is_leaf(n) and taxonomy.depth(n) < depth)
        }

    levels = taxonomy.num_levels
    for options in OPTION_SETS[::2]:
        reference_options = {k: v for k, v in options.items() if k != "dedup_between_levels"}
        reference_options["dedup"] = options.get("dedup_between_levels", False)
        reference_options["base_tau"] = reference_options.pop("base_temperature", None)
        value, grad = _value_and_grad(HiMulConELoss(taxonomy, **options), embeddings, labels)
        expected, expected_grad = _value_and_grad(
            lambda e, _, reference_options=reference_options: himulcone_reference(
                e,
                lambda i, j, level: bool(nodes_at(i, levels - level) & nodes_at(j, levels - level)),
                lambda i, level: tuple(
                    sorted(set().union(*(nodes_at(i, d) for d in range(levels - level + 1))))
                ),
                num_levels=levels,
                num_columns=levels + 1,
                **reference_options,
            ),
            embeddings,
            labels,
        )
        _close(value, expected)
        _close(grad, expected_grad)


# ------------------------------------------------------------------------------------------- properties


@st.composite
def path_batches(draw):
    batch = draw(st.integers(1, 7))
    views = draw(st.integers(1, 2))
    columns = draw(st.integers(2, 4))
    cells = draw(st.lists(st.integers(0, 2), min_size=batch * columns, max_size=batch * columns))
    seed = draw(st.integers(0, 2**31 - 1))
    embeddings = torch.randn(
        batch, views, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    return embeddings, torch.tensor(cells).reshape(batch, columns)


@PROPERTY_SETTINGS
@given(path_batches(), st.randoms(use_true_random=False), st.sampled_from(OPTION_SETS))
def test_batch_order_does_not_matter(batch, rng, options) -> None:
    """Holds without ``dedup_between_levels``, whose representative is the first item in batch order."""
    embeddings, paths = batch
    options = {**options, "dedup_between_levels": False}
    order = list(range(paths.shape[0]))
    rng.shuffle(order)
    loss = HiMulConELoss(**options)
    _close(loss(embeddings[order], paths[order]), loss(embeddings, paths))


@PROPERTY_SETTINGS
@given(path_batches(), st.sampled_from(OPTION_SETS))
def test_renaming_label_ids_does_not_matter(batch, options) -> None:
    embeddings, paths = batch
    renamed = (paths * 7 + 3) % 23 + 100 * torch.arange(paths.shape[1])
    loss = HiMulConELoss(**options)
    _close(loss(embeddings, renamed), loss(embeddings, paths))


@PROPERTY_SETTINGS
@given(path_batches())
def test_one_level_equals_supcon(batch) -> None:
    embeddings, paths = batch
    classes = paths[:, 0]
    one_level = torch.stack([classes, torch.arange(paths.shape[0])], dim=1)
    for mode in ("hmce", "hmc", "hce"):
        loss = HiMulConELoss(mode=mode, level_penalty=lambda level: 1.0)
        _close(loss(embeddings, one_level), SupConLoss()(embeddings, classes))


# ------------------------------------------------------------------------------------------- utilities, errors


def test_prefix_utilities() -> None:
    paths = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 2, 2], [1, 1, 2], [0, 1, 2]])
    depth = shared_prefix_depth(paths, paths)
    assert depth[0].tolist() == [3, 2, 1, 0, 3]
    groups = prefix_group_ids(paths, 2)
    assert groups[0] == groups[1] == groups[4] and len(set(groups.tolist())) == 3
    assert first_of_group(groups).tolist() == [True, False, True, True, False]
    views = torch.tensor([0, 0, 1, 1, 2, 2])
    assert first_of_group(torch.tensor([0, 0, 0, 0, 1, 1]), views).tolist() == [
        True,
        True,
        False,
        False,
        True,
        True,
    ]


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 1, 2]), "label paths of shape"),
        (torch.tensor([[0.5, 1.0], [0.0, 1.0], [1.0, 1.0]]), "integer ids"),
        (torch.tensor([[0], [1], [2]]), "at least 2 columns"),
    ],
)
def test_bad_paths_are_refused(labels: torch.Tensor, message: str) -> None:
    with pytest.raises(LossInputError, match=message):
        HiMulConELoss()(torch.randn(3, 2, DIM), labels)


def test_bad_taxonomy_labels_and_options_are_refused(taxonomy: LabelTaxonomy) -> None:
    with pytest.raises(LossInputError, match="nodes or"):
        HiMulConELoss(taxonomy)(torch.randn(3, 2, DIM), torch.ones(3, 4))
    with pytest.raises(LossInputError, match="outside"):
        HiMulConELoss(taxonomy)(torch.randn(2, 2, DIM), torch.tensor([0, 99]))
    with pytest.raises(LossInputError, match="mode"):
        HiMulConELoss(mode="hmcee")
    with pytest.raises(LossInputError, match="constrained_pairs"):
        HiMulConELoss(constrained_pairs="some")
    with pytest.raises(LossInputError, match="hce_floor"):
        HiMulConELoss(hce_floor="mean")
    with pytest.raises(LossInputError, match="temperature"):
        HiMulConELoss(temperature=0.0)
    with pytest.raises(LossInputError, match="rows"):
        HiMulConELoss()(torch.randn(3, 2, DIM), torch.zeros(4, 3, dtype=torch.long))


def test_goemotions_taxonomy_levels(shipped_data) -> None:
    """On the shipped GoEmotions taxonomy (sentiment > Ekman > emotion) the loss has three levels;
    multi-label texts give finite parts and gradients."""
    folder = shipped_data / "goemotions"
    taxonomy = LabelTaxonomy.from_file(folder / "taxonomy_edges.tsv")
    with gzip.open(folder / "dev_hier.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for _, line in zip(range(32), handle)]
    labels = taxonomy.encode([[f"emotion:{name}" for name in record["emotions"]] for record in records])
    embeddings = torch.randn(len(records), 2, DIM, requires_grad=True)
    parts = HiMulConELoss(taxonomy, return_parts=True)(embeddings, labels)
    assert list(parts) == ["level_1", "level_2", "level_3"]
    HiMulConELoss.total(parts).backward()
    assert all(torch.isfinite(part) for part in parts.values())
    assert torch.isfinite(embeddings.grad).all()
    leaf_labels = labels[:, taxonomy.leaf_ids]
    _close(HiMulConELoss(taxonomy)(embeddings, leaf_labels), HiMulConELoss.total(parts))
