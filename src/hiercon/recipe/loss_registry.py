"""The stage-1 losses the recipe offers by name: each loss's class, what it must be fed, and the
settings the recipe uses when a config leaves them out.

``feeds`` says how the recipe wires a loss:

- ``"labels"``: the run's label space (the loss gets the multi-hot labels, label paths or the
  taxonomy it needs: HiMulConE its levels, the ranked loss the class similarity of the columns);
- ``"clusters"``: cluster ids (Cl-InfoNCE), from a taxonomy level, a data column or k-means over the
  encoder's embeddings (``stage1.clusters``);
- ``"prototypes"``: hierarchical k-means prototypes of the training set, refreshed by the cluster
  callback, with a momentum encoder giving the keys (HCSC).

The recommended settings follow each paper's recipe where it fits a pretrained text encoder, and the
measurements in ``benchmarks/RESULTS.md`` otherwise (every loss but HiMulConE trained well at
temperature 0.1 and learning rate 1e-4 on GoEmotions with all-MiniLM-L6-v2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hiercon.errors import ConfigError
from hiercon.taxonomy.names import suggest

Feeds = Literal["labels", "clusters", "prototypes"]


@dataclass(frozen=True)
class LossEntry:
    """One stage-1 loss of the recipe.

    Attributes:
        class_name: the class in :mod:`hiercon.losses`.
        temperature: the recommended ``stage1.temperature``.
        num_views: the recommended ``stage1.num_views`` (text views differ by dropout).
        learning_rate: the recommended stage-1 learning rate.
        feeds: what the recipe gives the loss (see the module docstring).
        momentum: the momentum encoder's EMA rate, for losses that read keys from it.
        loss_kwargs: constructor arguments the recipe passes unless ``stage1.loss_kwargs`` sets them.
    """

    class_name: str
    temperature: float = 0.1
    num_views: int = 1
    learning_rate: float = 1e-4
    feeds: Feeds = "labels"
    momentum: float | None = None
    loss_kwargs: dict[str, Any] = field(default_factory=dict)


LOSSES: dict[str, LossEntry] = {
    "supcon": LossEntry("SupConLoss", num_views=2),
    "jaccard_supcon": LossEntry("JaccardSupConLoss"),
    "mulsupcon": LossEntry("MulSupConLoss"),
    "abalone": LossEntry("AbaloneLoss"),
    # Measured on the GoEmotions benchmark split (benchmarks/RESULTS.md, stage-2 head): temperature
    # 0.05, learning rate 2e-4 and two dropout views reach dev macro-F1 0.437, against 0.351 at the
    # family's 0.1 / 1e-4 / one view.
    "reg": LossEntry("RegLoss", temperature=0.05, num_views=2, learning_rate=2e-4),
    "prototype": LossEntry("PrototypeLoss"),
    "himulcone": LossEntry("HiMulConELoss", num_views=2),
    "cl_infonce": LossEntry("ClInfoNCELoss", num_views=2, feeds="clusters"),
    # The batch's keys join the queue's as negatives, so the first steps (empty queue) learn too.
    "hcsc": LossEntry(
        "HCSCLoss",
        temperature=0.2,
        num_views=2,
        feeds="prototypes",
        momentum=0.999,
        loss_kwargs={"batch_negatives": True},
    ),
    "ranked": LossEntry("RankedContrastiveLoss", num_views=2),
}


def loss_name(name: str) -> str:
    """The registry name of a loss given by its recipe name (``jaccard_supcon``) or class name."""
    lowered = name.lower()
    if lowered in LOSSES:
        return lowered
    for key, entry in LOSSES.items():
        if entry.class_name == name:
            return key
    raise ConfigError(f"unknown stage1.loss {name!r}{suggest(lowered, list(LOSSES))}; choose one of {', '.join(LOSSES)}")


def loss_entry(name: str) -> LossEntry:
    """The registry entry of a loss given by recipe or class name."""
    return LOSSES[loss_name(name)]
