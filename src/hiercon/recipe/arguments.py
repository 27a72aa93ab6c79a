"""The recipe's arguments: five dataclasses, one per section of a recipe YAML file.

A recipe file has the sections ``model``, ``data``, ``stage1``, ``stage2`` and ``output``; each
maps onto one dataclass below, which declares hiercon's own keys and checks their ranges in
``__post_init__``. Training settings are ``transformers.TrainingArguments`` fields, passed through
unchanged: a stage section keeps them in its ``training_args`` mapping (``stage1.learning_rate`` in
a file or on the command line lands there), and ``output.training_args`` holds the ones both
stages share. :mod:`hiercon.recipe.config` reads the file, applies command-line overrides, types
every value and builds these dataclasses.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from hiercon.errors import ConfigError
from hiercon.recipe.hierarchy_spec import parse_spec, spec_text
from hiercon.recipe.loss_registry import loss_entry, loss_name

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
# A freshly initialised head next to a pretrained encoder needs a rate of its own: at the encoder's
# rate a short BCE run stays near the label prior (benchmarks/RESULTS.md, "The template's defaults").
DEFAULT_HEAD_LEARNING_RATE = 2e-2

LabelFormat = Literal["names", "ids", "multi_hot", "paths"]
LabelSpace = Literal["nodes", "leaves"]
Stage2Mode = Literal["full", "linear_probe", "head", "head_then_full", "joint"]
ThresholdFallback = Literal["level", "global"]
HeadClassWeight = Literal["balanced", "none"]
Sampler = Literal["multilabel", "random"]
IdentityPooler = Literal["auto", "true", "false"]


@functools.cache
def training_argument_defaults() -> dict[str, Any]:
    """Every ``transformers.TrainingArguments`` field a caller may set, with its default."""
    from transformers import TrainingArguments

    defaults = {}
    for item in dataclasses.fields(TrainingArguments):
        if not item.init:
            continue
        if item.default is not dataclasses.MISSING:
            defaults[item.name] = item.default
        elif item.default_factory is not dataclasses.MISSING:
            defaults[item.name] = item.default_factory()
        else:
            defaults[item.name] = None
    return defaults


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


CLUSTER_SOURCES = ("level", "kmeans", "column")
CLUSTER_KEYS = ("source", "level", "column", "n_clusters", "every_n_epochs")


def _check_clusters(clusters: Any) -> None:
    _require(isinstance(clusters, dict), f"stage1.clusters must be a mapping, got {clusters!r}")
    unknown = sorted(set(clusters) - set(CLUSTER_KEYS))
    _require(not unknown, f"stage1.clusters has unknown keys {unknown}; it takes {list(CLUSTER_KEYS)}")
    source = clusters.get("source", "level")
    _require(source in CLUSTER_SOURCES, f"stage1.clusters.source must be one of {CLUSTER_SOURCES}, got {source!r}")
    _require(
        source != "column" or isinstance(clusters.get("column"), str),
        "stage1.clusters.source 'column' needs stage1.clusters.column: the data column holding cluster ids",
    )
    counts = clusters.get("n_clusters")
    counts = [counts] if isinstance(counts, int) else counts
    _require(
        counts is None or (isinstance(counts, list) and counts and all(isinstance(k, int) and k > 1 for k in counts)),
        f"stage1.clusters.n_clusters must be a cluster count above 1 or a list of them, got {clusters.get('n_clusters')!r}",
    )
    every = clusters.get("every_n_epochs", 1)
    _require(isinstance(every, int) and every >= 1, f"stage1.clusters.every_n_epochs must be >= 1, got {every!r}")


class TrainingSection:
    """A section that carries ``transformers.TrainingArguments`` values in its ``training_args``.

    ``TRAINING_DEFAULTS`` are the recipe's own defaults for some of those fields (where they differ
    from transformers', or pin a default the recipe relies on); they are the keys a recipe file
    shows for the section. A ``TrainingArguments`` field reads as an attribute (``stage1.max_steps``:
    ``training_args``, else ``TRAINING_DEFAULTS``, else transformers' default) and setting one
    writes it into ``training_args``.
    """

    SECTION: ClassVar[str]
    TRAINING_DEFAULTS: ClassVar[dict[str, Any]] = {}

    training_args: dict[str, Any]

    @classmethod
    def own_keys(cls) -> list[str]:
        return [item.name for item in dataclasses.fields(cls)]  # type: ignore[arg-type]

    def recipe_defaults(self) -> dict[str, Any]:
        """The recipe's defaults for ``TrainingArguments`` fields of this section."""
        return dict(self.TRAINING_DEFAULTS)

    def training_values(self) -> dict[str, Any]:
        """The ``TrainingArguments`` values this section sets: its defaults, then ``training_args``."""
        return {**self.recipe_defaults(), **self.__dict__.get("training_args", {})}

    def settings(self) -> dict[str, Any]:
        """The section as one flat mapping: its own keys and its training values."""
        own = {name: getattr(self, name) for name in self.own_keys() if name != "training_args"}
        return {**own, **self.training_values()}

    def __getattr__(self, name: str) -> Any:
        defaults = training_argument_defaults()
        if name.startswith("_") or name not in defaults:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return self.training_values().get(name, defaults[name])

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.own_keys() and name in training_argument_defaults():
            object.__setattr__(self, "training_args", {**self.training_args, name: value})
        else:
            object.__setattr__(self, name, value)

    def _check_training_args(self) -> None:
        _require(
            isinstance(self.training_args, dict),
            f"{self.SECTION}.training_args must be a mapping, got {self.training_args!r}",
        )


def stage_training_defaults(**differences: Any) -> dict[str, Any]:
    """The recipe's ``TrainingArguments`` defaults shared by both stages, with a stage's own ones."""
    return {
        "num_train_epochs": 1.0,
        "max_steps": -1,
        "per_device_train_batch_size": 32,
        "gradient_accumulation_steps": 1,
        "learning_rate": 5e-5,
        "weight_decay": 0.0,
        "warmup_steps": 0.0,
        "lr_scheduler_type": "linear",
        "logging_steps": 10,
        "save_steps": 100,
        "save_total_limit": 2,
        **differences,
    }


class StageSection(TrainingSection):
    """Checks shared by both stages."""

    def _check_schedule(self) -> None:
        section = self.SECTION
        _require(
            self.learning_rate > 0, f"{section}.learning_rate must be positive, got {self.learning_rate}"
        )
        _require(
            self.per_device_train_batch_size > 0,
            f"{section}.per_device_train_batch_size must be positive, got {self.per_device_train_batch_size}",
        )
        _require(
            self.max_steps > 0 or self.num_train_epochs > 0,
            f"{section} needs max_steps > 0 or num_train_epochs > 0",
        )


@dataclass
class ModelArguments:
    """The encoder and what sits on top of it during stage 1."""

    model_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "Folder or Hub id of the encoder; 'all-MiniLM-L6-v2' uses the packaged copy."},
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": "How token/patch states become one vector: auto (what the classification head reads), "
            "mean, cls or pooler."
        },
    )
    projection_dim: int | None = field(
        default=128, metadata={"help": "Width of the stage-1 projection head; null for none."}
    )
    max_length: int = field(default=128, metadata={"help": "Token limit for text inputs."})
    model_config: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Build a randomly initialised encoder from this config (needs 'model_type') instead of "
            "loading weights; model_name_or_path then only names it."
        },
    )
    processor_config: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "With model_config: the processor to build, e.g. {class: ViTImageProcessor, size: ...}."
        },
    )
    identity_pooler: IdentityPooler = field(
        default="auto",
        metadata={
            "help": "Start the encoder's pooler layer (read by BERT-style classification heads) as the "
            "identity: auto when the checkpoint lacks its weights or its output is near-constant "
            "(sentence-transformers models), or true / false."
        },
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the full encoder."})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        self.identity_pooler = str(self.identity_pooler).lower()  # type: ignore[assignment]
        _require(
            self.identity_pooler in ("auto", "true", "false"),
            f"model.identity_pooler must be auto, true or false, got {self.identity_pooler!r}",
        )
        _require(self.max_length > 0, f"model.max_length must be positive, got {self.max_length}")
        _require(
            self.projection_dim is None or self.projection_dim > 0,
            f"model.projection_dim must be positive or null, got {self.projection_dim}",
        )
        for name in ("model_config", "processor_config"):
            value = getattr(self, name)
            _require(
                value is None or isinstance(value, dict), f"model.{name} must be a mapping, got {value!r}"
            )
        _require(self.lora_r > 0, f"model.lora_r must be positive, got {self.lora_r}")
        _require(
            0.0 <= self.lora_dropout < 1.0, f"model.lora_dropout must be in [0, 1), got {self.lora_dropout}"
        )


@dataclass
class DataArguments:
    """Where the examples, their labels and the taxonomy come from."""

    dataset: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset name, a data file (csv/tsv/jsonl/json/parquet, optionally .gz), a folder "
            "of split files, or a DatasetDict saved with save_to_disk."
        },
    )
    dataset_config: str | None = None
    data_files: dict[str, Any] | None = field(
        default=None, metadata={"help": "Split name -> file or list of files (overrides discovery)."}
    )
    text_column: str | None = "text"
    image_column: str | None = None
    label_columns: list[str] = field(default_factory=lambda: ["labels"])
    label_format: LabelFormat = "names"
    label_template: str | None = field(
        default=None,
        metadata={"help": "Format string from a raw label to a taxonomy node, e.g. 'emotion:{}'."},
    )
    path_separator: str = "/"
    taxonomy: str | None = field(
        default=None,
        metadata={
            "help": "Taxonomy file (edges tsv/csv, json, yaml); null builds a flat one from the labels; "
            "'cooccurrence' or 'kmeans' (optionally ':k1,k2', finest first) clusters the labels into a "
            "hierarchy learned from the training data."
        },
    )
    taxonomy_root: str = "root"
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str | None = "test"
    validation_fraction: float = field(
        default=0.1, metadata={"help": "Share of train held out when there is no validation split."}
    )
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_test_samples: int | None = None
    preprocessing_num_workers: int | None = None

    def __post_init__(self) -> None:
        _require(
            (self.text_column is None) != (self.image_column is None),
            "set exactly one of data.text_column and data.image_column (the other to null)",
        )
        _require(len(self.label_columns) > 0, "data.label_columns must name at least one column")
        _require(
            self.data_files is None or isinstance(self.data_files, dict),
            f"data.data_files must be a mapping of split names to files, got {self.data_files!r}",
        )
        _require(
            0.0 < self.validation_fraction < 1.0,
            f"data.validation_fraction must be in (0, 1), got {self.validation_fraction}",
        )
        for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
            value = getattr(self, name)
            _require(value is None or value > 0, f"data.{name} must be positive or null, got {value}")
        _require(
            self.label_template is None or "{}" in self.label_template,
            f"data.label_template must contain '{{}}', got {self.label_template!r}",
        )
        self.taxonomy = spec_text(self.taxonomy)
        learned = parse_spec(self.taxonomy)
        _require(
            learned is None or self.label_format != "paths",
            f"data.taxonomy {self.taxonomy!r} builds a hierarchy above flat labels, but labels given as paths "
            "carry their own hierarchy: set data.taxonomy to null (or to a taxonomy file)",
        )


@dataclass
class Stage1Arguments(StageSection):
    """Contrastive training of the encoder (skipped with ``skip: true``)."""

    SECTION: ClassVar[str] = "stage1"
    TRAINING_DEFAULTS: ClassVar[dict[str, Any]] = stage_training_defaults(num_train_epochs=1.0)

    skip: bool = False
    loss: str = field(
        default="supcon", metadata={"help": "Loss name, e.g. supcon, jaccard_supcon, mulsupcon."}
    )
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = field(
        default=None, metadata={"help": "Softmax temperature; null: the loss's recommended value."}
    )
    num_views: int | None = field(
        default=None,
        metadata={"help": "Views per example (dropout noise gives text views); null: the loss's recommended value."},
    )
    clusters: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Cluster labels of cl_infonce and hcsc: {source: level|kmeans|column, level: depth, "
            "column: name, n_clusters: [k, ...], every_n_epochs: 1}."
        },
    )
    momentum: float | None = field(
        default=None,
        metadata={"help": "EMA rate of a momentum encoder giving the keys; null: the loss's recommended value."},
    )
    sampler: Sampler = field(
        default="multilabel", metadata={"help": "'multilabel' (label-aware batches) or 'random'."}
    )
    mini_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Embed each batch this many examples at a time and cache the embedding gradients "
            "(GradCache): a large contrastive batch in the activation memory of a small one; null: off."
        },
    )
    training_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "transformers.TrainingArguments of this stage."}
    )

    def __post_init__(self) -> None:
        self._check_training_args()
        if "learning_rate" in self.training_args and self.training_args["learning_rate"] is None:
            # null asks for the loss's recommended rate, as a left-out key does
            self.training_args = {k: v for k, v in self.training_args.items() if k != "learning_rate"}
        entry = loss_entry(self.loss)
        self.temperature = entry.temperature if self.temperature is None else self.temperature
        self.num_views = entry.num_views if self.num_views is None else self.num_views
        self.momentum = entry.momentum if self.momentum is None else self.momentum
        _require(
            isinstance(self.loss_kwargs, dict),
            f"stage1.loss_kwargs must be a mapping, got {self.loss_kwargs!r}",
        )
        _require(self.temperature > 0, f"stage1.temperature must be positive, got {self.temperature}")
        _require(self.num_views >= 1, f"stage1.num_views must be at least 1, got {self.num_views}")
        _require(
            self.momentum is None or 0.0 < self.momentum < 1.0,
            f"stage1.momentum must be in (0, 1) or null, got {self.momentum}",
        )
        _check_clusters(self.clusters)
        self._check_schedule()
        self._check_mini_batch_size()

    def _check_mini_batch_size(self) -> None:
        size = self.mini_batch_size
        if size is None:
            return
        _require(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1,
            f"stage1.mini_batch_size must be a positive integer or null, got {size!r}",
        )
        _require(
            self.per_device_train_batch_size % size == 0,
            f"stage1.mini_batch_size {size} does not divide stage1.per_device_train_batch_size "
            f"{self.per_device_train_batch_size}",
        )

    def recipe_defaults(self) -> dict[str, Any]:
        """The stage defaults, with the loss's recommended learning rate."""
        return {**self.TRAINING_DEFAULTS, "learning_rate": loss_entry(self.loss).learning_rate}


@dataclass
class Stage2Arguments(StageSection):
    """The classification head (and optionally the encoder) trained with BCE on the taxonomy's labels.

    ``mode``: ``full`` fine-tunes encoder and head; ``linear_probe`` trains the head alone by gradient
    descent; ``head`` fits the head to convergence on the frozen encoder's features (L-BFGS, no gradient
    steps); ``head_then_full`` fits the head, then fine-tunes everything (LP-FT); ``joint`` trains BCE
    plus ``contrastive_weight`` times the ``stage1.loss`` in one run, and stage 1 does not run.
    """

    SECTION: ClassVar[str] = "stage2"
    TRAINING_DEFAULTS: ClassVar[dict[str, Any]] = stage_training_defaults(
        num_train_epochs=3.0, per_device_eval_batch_size=64
    )

    mode: Stage2Mode = field(
        default="full", metadata={"help": "full | linear_probe | head | head_then_full | joint."}
    )
    label_space: LabelSpace = "nodes"
    head_learning_rate: float | None = field(
        default=DEFAULT_HEAD_LEARNING_RATE,
        metadata={"help": "Learning rate of the new classification head; null: learning_rate."},
    )
    consistency_weight: float = field(
        default=0.0, metadata={"help": "Weight of the penalty on children scoring above their parents."}
    )
    head_l2: float = field(
        default=3.0,
        metadata={"help": "L2 penalty of the head fit (modes head, head_then_full); scikit-learn's 1 / C."},
    )
    head_class_weight: HeadClassWeight = field(
        default="balanced",
        metadata={
            "help": "Weights of the head fit's BCE terms: balanced (each label's positives weigh as much "
            "as its negatives in total, scikit-learn's class_weight='balanced') or none."
        },
    )
    contrastive_weight: float = field(
        default=0.1, metadata={"help": "Weight of the stage-1 loss added to BCE in the joint mode."}
    )
    tune_thresholds: bool = field(default=True, metadata={"help": "Pick per-label thresholds on validation."})
    threshold_min_positives: int = field(
        default=5,
        metadata={"help": "Validation positives a label needs for a tuned threshold of its own."},
    )
    threshold_fallback: ThresholdFallback = field(
        default="level",
        metadata={
            "help": "Threshold of a label with fewer positives: the micro-F1 one of its taxonomy level "
            "pooled (level) or of all labels pooled (global)."
        },
    )
    threshold_shrinkage: float = field(
        default=5.0,
        metadata={
            "help": "Pseudo-count of that pooled threshold in a label's own: (n t_own + k t_pooled) / (n + k) "
            "for a label with n validation positives; 0 keeps its own threshold."
        },
    )
    threshold: float = field(default=0.5, metadata={"help": "Decision threshold when not tuning."})
    training_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "transformers.TrainingArguments of this stage."}
    )

    def __post_init__(self) -> None:
        self._check_training_args()
        _require(
            self.head_learning_rate is None or self.head_learning_rate > 0,
            f"stage2.head_learning_rate must be positive or null, got {self.head_learning_rate}",
        )
        _require(0.0 < self.threshold < 1.0, f"stage2.threshold must be in (0, 1), got {self.threshold}")
        _require(
            self.consistency_weight >= 0,
            f"stage2.consistency_weight must be >= 0, got {self.consistency_weight}",
        )
        _require(self.head_l2 >= 0, f"stage2.head_l2 must be >= 0, got {self.head_l2}")
        _require(
            self.contrastive_weight >= 0,
            f"stage2.contrastive_weight must be >= 0, got {self.contrastive_weight}",
        )
        _require(
            self.threshold_min_positives >= 0,
            f"stage2.threshold_min_positives must be >= 0, got {self.threshold_min_positives}",
        )
        _require(
            self.threshold_shrinkage >= 0,
            f"stage2.threshold_shrinkage must be >= 0, got {self.threshold_shrinkage}",
        )
        self._check_schedule()


@dataclass
class OutputArguments(TrainingSection):
    """Where the results go, what is compared and published; ``training_args`` apply to both stages."""

    SECTION: ClassVar[str] = "output"
    TRAINING_DEFAULTS: ClassVar[dict[str, Any]] = {
        "report_to": "none",
        "dataloader_num_workers": 0,
        "use_cpu": False,
    }

    output_dir: str = "outputs/hiercon-model"
    work_dir: str | None = field(
        default=None, metadata={"help": "Checkpoints of both stages; defaults to '<output_dir>-work'."}
    )
    overwrite_output_dir: bool = False
    resume: bool = field(
        default=True, metadata={"help": "Continue from the last checkpoint found in work_dir."}
    )
    seed: int = 42
    compare_baseline: bool = field(
        default=False, metadata={"help": "Also fine-tune the encoder with plain BCE on the same budget."}
    )
    baseline_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the baseline; defaults to stage2.learning_rate."}
    )
    plots: bool = True
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_private: bool = False
    training_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "transformers.TrainingArguments shared by both stages."}
    )

    def __post_init__(self) -> None:
        self._check_training_args()
        _require(
            self.baseline_learning_rate is None or self.baseline_learning_rate > 0,
            f"output.baseline_learning_rate must be positive or null, got {self.baseline_learning_rate}",
        )
        _require(
            not self.push_to_hub or bool(self.hub_model_id),
            "output.push_to_hub is true but output.hub_model_id is not set",
        )


SECTIONS: dict[str, type] = {
    "model": ModelArguments,
    "data": DataArguments,
    "stage1": Stage1Arguments,
    "stage2": Stage2Arguments,
    "output": OutputArguments,
}


def section_keys(section: str) -> list[str]:
    """The keys a recipe file shows for ``section``: its own, then its training defaults."""
    cls = SECTIONS[section]
    own = [item.name for item in dataclasses.fields(cls)]
    return own + [key for key in getattr(cls, "TRAINING_DEFAULTS", {}) if key not in own]


def takes_training_arguments(section: str) -> bool:
    """Whether ``section`` passes further ``TrainingArguments`` fields through."""
    return issubclass(SECTIONS[section], TrainingSection)


@dataclass
class RecipeArguments:
    """All sections of one recipe run."""

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    stage1: Stage1Arguments = field(default_factory=Stage1Arguments)
    stage2: Stage2Arguments = field(default_factory=Stage2Arguments)
    output: OutputArguments = field(default_factory=OutputArguments)

    def __post_init__(self) -> None:
        feeds = loss_entry(self.stage1.loss).feeds
        _require(
            self.stage2.mode != "joint" or feeds == "labels",
            f"stage2.mode 'joint' trains stage1.loss on the classifier's labelled batches, but "
            f"{loss_name(self.stage1.loss)!r} is fed with {feeds}; choose a loss fed with labels "
            "(e.g. supcon, jaccard_supcon, mulsupcon, reg) or another stage2.mode",
        )

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (the same shape as a recipe YAML file)."""
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def settings(self) -> dict[str, dict[str, Any]]:
        """Each section as one flat mapping (training values beside the section's own keys)."""
        sections = self.to_dict()
        for name in SECTIONS:
            section = getattr(self, name)
            if isinstance(section, TrainingSection):
                sections[name] = section.settings()
        return sections
