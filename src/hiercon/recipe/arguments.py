"""The recipe's arguments: five dataclasses, one per section of a recipe YAML file.

A recipe file has the sections ``model``, ``data``, ``stage1``, ``stage2`` and ``output``; each
maps onto one dataclass below. :mod:`hiercon.recipe.config` reads the file, applies command-line
overrides and checks every value before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_ENCODER = "all-MiniLM-L6-v2"

LabelFormat = Literal["names", "ids", "multi_hot", "paths"]
LabelSpace = Literal["nodes", "leaves"]
Stage2Mode = Literal["linear_probe", "full"]


@dataclass
class ModelArguments:
    """The encoder and what sits on top of it during stage 1."""

    model_name_or_path: str = field(
        default=DEFAULT_ENCODER,
        metadata={"help": "Folder or Hub id of the encoder; 'all-MiniLM-L6-v2' uses the packaged copy."},
    )
    pooling: str = field(default="mean", metadata={"help": "How token/patch states become one vector."})
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
    identity_pooler: bool = field(
        default=False,
        metadata={
            "help": "Start the encoder's pooler layer (read by BERT-style classification heads) as the "
            "identity, for checkpoints whose pooler was never trained (sentence-transformers models)."
        },
    )
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters instead of the full encoder."})
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None


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
            "help": "Taxonomy file (edges tsv/csv, json, yaml); null builds a flat one from the labels."
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


@dataclass
class Stage1Arguments:
    """Contrastive training of the encoder (skipped with ``skip: true``)."""

    skip: bool = False
    loss: str = field(
        default="supcon", metadata={"help": "Loss name, e.g. supcon, jaccard_supcon, mulsupcon."}
    )
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    temperature: float = 0.1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: float = 0.0
    lr_scheduler_type: str = "linear"
    num_views: int = field(
        default=1, metadata={"help": "Views per example (dropout noise gives text views)."}
    )
    sampler: str = field(
        default="multilabel", metadata={"help": "'multilabel' (label-aware batches) or 'random'."}
    )
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    training_args: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "Further transformers.TrainingArguments for this stage."}
    )


@dataclass
class Stage2Arguments:
    """The classification head (and optionally the encoder) trained with BCE on the taxonomy's labels."""

    mode: Stage2Mode = "full"
    label_space: LabelSpace = "nodes"
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    head_learning_rate: float | None = field(
        default=None, metadata={"help": "Learning rate of the classification head; null: learning_rate."}
    )
    weight_decay: float = 0.0
    warmup_steps: float = 0.0
    lr_scheduler_type: str = "linear"
    consistency_weight: float = field(
        default=0.0, metadata={"help": "Weight of the penalty on children scoring above their parents."}
    )
    tune_thresholds: bool = field(default=True, metadata={"help": "Pick per-label thresholds on validation."})
    threshold: float = field(default=0.5, metadata={"help": "Decision threshold when not tuning."})
    logging_steps: int = 10
    save_steps: int = 100
    save_total_limit: int | None = 2
    training_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OutputArguments:
    """Where the results go, what is compared and published."""

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
    report_to: str = "none"
    dataloader_num_workers: int = 0
    use_cpu: bool = False


SECTIONS: dict[str, type] = {
    "model": ModelArguments,
    "data": DataArguments,
    "stage1": Stage1Arguments,
    "stage2": Stage2Arguments,
    "output": OutputArguments,
}


@dataclass
class RecipeArguments:
    """All sections of one recipe run."""

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    stage1: Stage1Arguments = field(default_factory=Stage1Arguments)
    stage2: Stage2Arguments = field(default_factory=Stage2Arguments)
    output: OutputArguments = field(default_factory=OutputArguments)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain nested dict (the same shape as a recipe YAML file)."""
        from dataclasses import asdict

        return {name: asdict(getattr(self, name)) for name in SECTIONS}
