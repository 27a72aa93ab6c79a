"""``hiercon check CONFIG``: everything ``hiercon train`` validates before it trains, and a summary.

The check runs the recipe's own validation (:func:`hiercon.recipe.prepare.check_recipe`: the config,
the data files and columns, the labels against the taxonomy, the loss on the label space, the
encoder's config and processor, both stages' training arguments), then the stage-1 cluster set-up
and the model inputs of a few rows per split. Nothing is trained, no weights are loaded and nothing
is written to the output or work folder. A hierarchy learned from the encoder's embeddings
(``data.taxonomy: {kmeans: ...}``) is reported as learned at training time.

The summary gives the rows per split, the labels seen and unseen per split, the mean number of labels
per example, the taxonomy's levels, the label space, and a warning for labels that no validation or
test example holds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset

from hiercon.recipe.arguments import RecipeArguments
from hiercon.recipe.clusters import cluster_setup
from hiercon.recipe.data import LABELS
from hiercon.recipe.hierarchy_spec import KMEANS, parse_spec
from hiercon.recipe.inputs import model_inputs
from hiercon.recipe.prepare import Checked, check_recipe
from hiercon.taxonomy import LabelSpace

#: Rows per split passed through the processor to check that the inputs can be processed.
PROBE_ROWS = 8
#: How many label names a line lists before it says "and N more".
SHOWN = 8

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSummary:
    """The label statistics of one split over the summary's label columns."""

    split: str
    rows: int
    counts: np.ndarray
    cardinality: float
    leaf_cardinality: float

    def unseen(self, names: Sequence[str]) -> list[str]:
        """The label columns no example of this split holds."""
        return [name for name, count in zip(names, self.counts) if count == 0]


def listed(names: Sequence[str]) -> str:
    """The first :data:`SHOWN` of ``names``, joined, and how many more there are."""
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def summary_space(checked: Checked) -> LabelSpace:
    """The columns the statistics are over: the run's label space, or the data's own labels (the leaves)
    when the hierarchy above them is learned at training time."""
    space = checked.data.label_space
    if learned_by_encoder(checked.args):
        return LabelSpace(space.taxonomy, "leaves")
    return space


def learned_by_encoder(args: RecipeArguments) -> bool:
    """Whether ``data.taxonomy`` asks for a hierarchy built from the encoder's embeddings."""
    spec = parse_spec(args.data.taxonomy)
    return spec is not None and spec.method == KMEANS


def label_matrix(dataset: Dataset, space: LabelSpace, target: LabelSpace) -> np.ndarray:
    """The 0/1 ``labels`` of ``dataset`` (over ``space``) as a matrix over the columns of ``target``."""
    matrix = np.asarray(dataset[LABELS], dtype=np.float32).reshape(len(dataset), space.num_labels) > 0.5
    if target.columns == space.columns:
        return matrix
    return np.asarray(target.restrict(space.to_nodes(matrix.astype(np.float32)))) > 0.5


def split_summary(split: str, dataset: Dataset, space: LabelSpace, target: LabelSpace) -> SplitSummary:
    """Rows, per-label example counts and labels per example of one split."""
    matrix = label_matrix(dataset, space, target)
    leaves = set(target.taxonomy.leaves)
    leaf_columns = np.asarray([name in leaves for name in target.names], dtype=bool)
    rows = max(len(dataset), 1)
    return SplitSummary(
        split=split,
        rows=len(dataset),
        counts=matrix.sum(axis=0),
        cardinality=float(matrix.sum()) / rows,
        leaf_cardinality=float(matrix[:, leaf_columns].sum()) / rows,
    )


def shown_path(path: str) -> str:
    """``path`` relative to the current directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def taxonomy_lines(checked: Checked) -> list[str]:
    """The taxonomy's levels, with the number of nodes on each."""
    args = checked.args
    taxonomy = checked.data.taxonomy
    if learned_by_encoder(args):
        return [
            f"taxonomy: learned at training time by k-means ({args.data.taxonomy!r}) above the data's labels"
        ]
    source = shown_path(args.data.taxonomy) if args.data.taxonomy else "flat, built from the data's labels"
    sizes = [len(taxonomy.level_labels(depth)) for depth in range(taxonomy.num_levels)]
    levels = ", ".join(f"level {depth}: {size}" for depth, size in enumerate(sizes))
    return [f"taxonomy: {source}", f"  {taxonomy.num_levels} levels ({levels}); {taxonomy.num_labels} nodes"]


def label_space_line(checked: Checked, target: LabelSpace) -> str:
    """The label space the classifier is trained over: its kind and number of columns."""
    space = checked.data.label_space
    if learned_by_encoder(checked.args):
        return (
            f"label space: {space.columns} ({target.num_labels} data labels as leaves; the learned cluster "
            "nodes are added at training time)"
        )
    what = (
        "every taxonomy node, ancestors switched on" if space.columns == "nodes" else "the taxonomy's leaves"
    )
    return f"label space: {space.columns} ({space.num_labels} columns: {what}; {space.num_leaves} leaves)"


def split_lines(summaries: Sequence[SplitSummary], target: LabelSpace) -> list[str]:
    """Per split: rows, labels seen and unseen, labels per example."""
    lines = []
    for summary in summaries:
        unseen = summary.unseen(target.names)
        seen = target.num_labels - len(unseen)
        lines.append(
            f"  {summary.split}: {summary.rows} rows; {seen}/{target.num_labels} labels seen; "
            f"{summary.cardinality:.2f} labels per example ({summary.leaf_cardinality:.2f} leaves)"
        )
        if unseen:
            lines.append(f"    unseen: {listed(unseen)}")
    return lines


def warning_lines(summaries: Sequence[SplitSummary], target: LabelSpace) -> list[str]:
    """A warning per evaluation split for the labels none of its examples holds."""
    lines = []
    for summary in summaries:
        if summary.split == "train":
            continue
        unseen = summary.unseen(target.names)
        if unseen:
            lines.append(
                f"warning: {len(unseen)} labels have no {summary.split} example, so their "
                f"{summary.split} scores are undefined: {listed(unseen)}"
            )
    return lines


def model_lines(checked: Checked) -> list[str]:
    """The encoder, its processor and the stage-1 loss."""
    args = checked.args
    config = checked.encoder_config
    return [
        f"encoder: {args.model.model_name_or_path} ({config.model_type}, hidden size {config.hidden_size}); "
        f"processor: {type(checked.processor).__name__}",
        f"stage-1 loss: {args.stage1.loss} (temperature {args.stage1.temperature}, views {args.stage1.num_views})",
    ]


def summary_text(checked: Checked) -> str:
    """The summary ``hiercon check`` prints."""
    target = summary_space(checked)
    space = checked.data.label_space
    summaries = [
        split_summary(split, dataset, space, target) for split, dataset in checked.data.splits().items()
    ]
    lines = [
        "hiercon check: the config, data, labels, loss and model are valid",
        *model_lines(checked),
        *taxonomy_lines(checked),
        label_space_line(checked, target),
        "splits:",
        *split_lines(summaries, target),
        *warning_lines(summaries, target),
    ]
    return "\n".join(lines)


def probe_processing(checked: Checked) -> None:
    """Pass the first rows of each split through the processor as training will."""
    args = checked.args
    for split, dataset in checked.data.splits().items():
        rows = dataset.select(range(min(PROBE_ROWS, len(dataset))))
        model_inputs(rows, checked.processor, args.data, args.model, checked.encoder_config, split)


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No ``datasets`` progress bars inside the block (restored afterwards)."""
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def check(args: RecipeArguments) -> str:
    """Validate a recipe as ``hiercon train`` does before training, without training or writing, and
    return the summary; a bad input raises its :class:`~hiercon.errors.HierconError`."""
    with quiet_progress():
        checked = check_recipe(args, learn_hierarchy=False)
        cluster_setup(args.stage1, checked.data.label_space, checked.data.train, args.output.seed)
        probe_processing(checked)
        return summary_text(checked)
