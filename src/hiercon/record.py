"""``HierconRecord``: what hiercon stores in a classifier's ``config.json``, read and written in one place.

A hiercon classifier is a stock ``AutoModelFor*Classification``; its label names are the config's
``id2label``, and what hiercon adds lives in one JSON-safe dict, ``config.hiercon``::

    {"taxonomy": LabelTaxonomy.to_dict() or None,
     "label_space": "nodes" | "leaves",
     "thresholds": [float per label id],
     "threshold_rule": {"min_positives", "fallback", "split", ...} or absent (how they were chosen),
     "stage1": {"loss", "loss_config", "citation", "pooling", "head_pooling", "pooling_mismatch",
                "base_model", "peft"},
     "stage2": {"loss", "loss_config", "consistency_weight", "citation", "freeze_encoder", "peft"}}

``stage2`` is absent before stage 2. A model without the dict (any transformers classifier) reads as
flat labels (``label_space="leaves"``, no taxonomy) with thresholds of 0.5.

The builder, the trainers, inference, the model card and the push read and write this record
through :class:`HierconRecord`; the functions at the end of this module are short forms of its
methods. The record sits below the layers that use it and depends only on the taxonomy.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiercon.errors import ConfigError
from hiercon.taxonomy.graph import LabelTaxonomy
from hiercon.taxonomy.label_space import LabelSpace

CONFIG_KEY = "hiercon"
LABEL_SPACES = ("nodes", "leaves")
DEFAULT_THRESHOLD = 0.5
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class HierconRecord:
    """The labels of a multi-label classifier and what hiercon knows about them and about its training.

    Args:
        labels: the label names in label-id order (the config's ``id2label``; not part of
            ``config.hiercon``).
        taxonomy: the label taxonomy, or None for flat labels.
        label_space: ``"nodes"`` (every taxonomy node is a label) or ``"leaves"`` (the leaves only;
            also the space of flat labels).
        thresholds: one decision threshold in ``[0, 1]`` per label (default 0.5 each); stored as a
            tuple.
        stage1: provenance of the stage-1 encoder (loss, its settings and citation, pooling, base
            model, peft adapter).
        stage2: how the classifier was trained (mode, loss, consistency weight, probe or LoRA), or None.
        threshold_rule: how the thresholds were chosen (see
            :func:`hiercon.metrics.thresholds.tune_thresholds_with_fallback`: ``min_positives``,
            ``fallback``, the tuning split; or ``{"fixed": t}``), or None when not recorded.

    The record is immutable and checked when built: a label space that is neither value, a
    threshold count or range that does not fit the labels, or labels that are not the taxonomy's
    nodes or leaves (in the taxonomy's order) raise :class:`~hiercon.errors.ConfigError`.
    """

    labels: tuple[str, ...]
    taxonomy: LabelTaxonomy | None = None
    label_space: str = "leaves"
    thresholds: Sequence[float] | None = None
    stage1: Mapping[str, Any] = field(default_factory=dict)
    stage2: Mapping[str, Any] | None = None
    threshold_rule: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        labels = tuple(str(label) for label in self.labels)
        object.__setattr__(self, "labels", labels)
        if self.label_space not in LABEL_SPACES:
            raise ConfigError(f"label_space must be one of {LABEL_SPACES}, got {self.label_space!r}")
        thresholds = (DEFAULT_THRESHOLD,) * len(labels) if self.thresholds is None else self.thresholds
        object.__setattr__(self, "thresholds", _checked_thresholds(thresholds, len(labels)))
        object.__setattr__(self, "stage1", copy.deepcopy(dict(self.stage1 or {})))
        if self.stage2 is not None:
            object.__setattr__(self, "stage2", copy.deepcopy(dict(self.stage2)))
        if self.threshold_rule is not None:
            object.__setattr__(self, "threshold_rule", copy.deepcopy(dict(self.threshold_rule)))
        if self.taxonomy is not None:
            self._check_taxonomy_columns()

    def _check_taxonomy_columns(self) -> None:
        expected = LabelSpace(self.taxonomy, self.label_space).names  # type: ignore[arg-type]
        if list(self.labels) != expected:
            raise ConfigError(
                f"the classifier's {len(self.labels)} labels are not the taxonomy's {len(expected)} "
                f"{self.label_space} in the taxonomy's order (first labels {list(self.labels[:3])}, "
                f"expected {expected[:3]})"
            )

    # ---- reading -------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Any) -> HierconRecord:
        """The record of a transformers config, or of a ``config.json`` already read into a dict.

        A config without ``hiercon`` gives the defaults for its labels (flat, thresholds 0.5).
        """
        labels = config_labels(config)
        stored = config.get(CONFIG_KEY) if isinstance(config, Mapping) else getattr(config, CONFIG_KEY, None)
        if stored is None:
            return cls(labels)
        return cls.from_dict(stored, labels)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], labels: Sequence[str]) -> HierconRecord:
        """The record of a ``config.hiercon`` dict (as :meth:`to_dict` writes it) for these labels."""
        if not isinstance(data, Mapping) or not {"label_space", "thresholds"} <= set(data):
            raise ConfigError(
                f"config.{CONFIG_KEY} is malformed: it needs 'label_space' and 'thresholds', got {data!r}"
            )
        taxonomy = data.get("taxonomy")
        return cls(
            labels=tuple(labels),
            taxonomy=LabelTaxonomy.from_dict(taxonomy) if taxonomy is not None else None,
            label_space=data["label_space"],
            thresholds=tuple(data["thresholds"]),
            stage1=data.get("stage1") or {},
            stage2=data.get("stage2"),
            threshold_rule=data.get("threshold_rule"),
        )

    @classmethod
    def from_folder(cls, folder: str | Path) -> HierconRecord:
        """The record of a saved model folder, read from its ``config.json`` (no weights are loaded)."""
        path = Path(folder) / CONFIG_FILE
        if not path.is_file():
            raise ConfigError(f"{folder} has no {CONFIG_FILE}; it is not a saved transformers model")
        return cls.from_config(json.loads(path.read_text(encoding="utf-8")))

    @staticmethod
    def is_stored_in(config: Any) -> bool:
        """Whether ``config`` carries a hiercon record (a model built by hiercon) or only defaults."""
        if isinstance(config, Mapping):
            return config.get(CONFIG_KEY) is not None
        return getattr(config, CONFIG_KEY, None) is not None

    # ---- writing -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe ``config.hiercon`` dict (``labels`` stay in the config's ``id2label``)."""
        data: dict[str, Any] = {
            "taxonomy": self.taxonomy.to_dict() if self.taxonomy is not None else None,
            "label_space": self.label_space,
            "thresholds": list(self.thresholds),
            "stage1": copy.deepcopy(dict(self.stage1)),
        }
        if self.stage2 is not None:
            data["stage2"] = copy.deepcopy(dict(self.stage2))
        if self.threshold_rule is not None:
            data["threshold_rule"] = copy.deepcopy(dict(self.threshold_rule))
        return data

    def to_config(self, config: Any) -> None:
        """Store the record on a transformers config (it round-trips through ``save_pretrained``).

        The config's ``id2label`` must already name the record's labels, in the same order.
        """
        found = config_labels(config)
        if found != self.labels:
            raise ConfigError(
                f"the config has labels {list(found[:5])} ({len(found)} in all) but the record has "
                f"{list(self.labels[:5])} ({len(self.labels)} in all)"
            )
        setattr(config, CONFIG_KEY, self.to_dict())

    def replace(self, **changes: Any) -> HierconRecord:
        """A copy with some fields changed (checked like a new record)."""
        return dataclasses.replace(self, **changes)

    # ---- views ---------------------------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def is_hierarchical(self) -> bool:
        """A taxonomy whose every node is a label: predictions can be closed under ancestors."""
        return self.taxonomy is not None and self.label_space == "nodes"

    def space(self) -> LabelSpace:
        """The :class:`~hiercon.taxonomy.LabelSpace` of the classifier's columns."""
        if self.taxonomy is None:
            return LabelSpace.flat(self.labels)
        return LabelSpace(self.taxonomy, self.label_space)  # type: ignore[arg-type]


def config_labels(config: Any) -> tuple[str, ...]:
    """The label names of a transformers config (or ``config.json`` dict), in label-id order."""
    if isinstance(config, Mapping):
        id2label = config.get("id2label") or {}
        count = len(id2label) or int(config.get("num_labels", 0) or 0)
    else:
        id2label = getattr(config, "id2label", None) or {}
        count = len(id2label) or int(getattr(config, "num_labels", 0) or 0)
    by_id = {int(key): str(value) for key, value in id2label.items()}
    missing = [i for i in range(count) if i not in by_id]
    if missing and by_id:
        raise ConfigError(f"config.id2label has no names for label ids {missing[:5]}")
    return tuple(by_id.get(i, f"LABEL_{i}") for i in range(count))


def _checked_thresholds(thresholds: Sequence[Any], num_labels: int) -> tuple[float, ...]:
    try:
        values = tuple(float(value) for value in thresholds)
    except (TypeError, ValueError):
        raise ConfigError(f"thresholds must be numbers, got {list(thresholds)!r}") from None
    if len(values) != num_labels:
        raise ConfigError(f"got {len(values)} thresholds for {num_labels} labels")
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise ConfigError(f"thresholds must lie in [0, 1], got {list(values)}")
    return values


# ---- short forms ---------------------------------------------------------------------------------


def read_hiercon_config(config: Any) -> dict[str, Any]:
    """The ``config.hiercon`` dict of ``config`` (defaults for a model built without hiercon)."""
    return HierconRecord.from_config(config).to_dict()


def read_labels(config: Any) -> list[str]:
    """The classifier's label names in label-id order."""
    return list(config_labels(config))


def read_taxonomy(config: Any) -> LabelTaxonomy | None:
    """The taxonomy stored in ``config.hiercon`` (None for flat labels)."""
    return HierconRecord.from_config(config).taxonomy


def set_thresholds(
    config: Any, thresholds: Sequence[float], rule: Mapping[str, Any] | None = None
) -> list[float]:
    """Store per-label decision thresholds in ``config.hiercon`` and return them.

    ``rule`` says how they were chosen (``config.hiercon["threshold_rule"]``); without it a rule
    stored before is dropped, since it no longer describes the thresholds.
    """
    record = HierconRecord.from_config(config).replace(thresholds=tuple(thresholds), threshold_rule=rule)
    record.to_config(config)
    return list(record.thresholds)


def set_stage2(config: Any, stage2: Mapping[str, Any]) -> dict[str, Any]:
    """Record how stage 2 trains the classifier in ``config.hiercon["stage2"]``; return the dict."""
    record = HierconRecord.from_config(config).replace(stage2=stage2)
    record.to_config(config)
    return record.to_dict()
