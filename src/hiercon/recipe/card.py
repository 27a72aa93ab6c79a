"""The model card (README.md) of a recipe's final folder, built with :mod:`hiercon.hub`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hiercon.hub.card_data import HierconCardData
from hiercon.recipe.data import LABELS

PLOT_CAPTIONS = {
    "embeddings_by_level.png": "Stage-1 embeddings of the test split, coloured by taxonomy level",
    "per_label_f1.png": "Test F1 per label",
    "training_curves_stage1.png": "Stage-1 training curves",
    "training_curves_stage2.png": "Stage-2 training curves",
}
STAGE1_KEYS = (
    "temperature",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "learning_rate",
    "num_views",
    "sampler",
    "loss_kwargs",
)
STAGE2_KEYS = (
    "mode",
    "label_space",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "learning_rate",
    "consistency_weight",
    "head_l2",
    "head_class_weight",
    "contrastive_weight",
    "tune_thresholds",
    "threshold_min_positives",
    "threshold_fallback",
    "threshold_shrinkage",
)
# Settings that only apply in some stage-2 modes.
MODE_KEYS = {
    "head_l2": ("head", "head_then_full"),
    "head_class_weight": ("head", "head_then_full"),
    "contrastive_weight": ("joint",),
}
MODE_NAMES = {"joint": "hiercon (joint)"}


def applies(key: str, mode: str) -> bool:
    """Whether a stage-2 setting applies in ``mode``."""
    return key not in MODE_KEYS or mode in MODE_KEYS[key]


def dataset_name(prepared: Any) -> str:
    data = prepared.args.data
    source = data.dataset or next(iter((data.data_files or {}).values()), "data")
    return Path(str(source[0] if isinstance(source, list) else source)).name


def hub_datasets(prepared: Any) -> list[str]:
    """The run's data as Hub dataset ids: ``data.dataset`` when it names a Hub dataset (no local path
    and no ``data_files``), else nothing."""
    from hiercon.hub.model_ids import is_local_path
    from hiercon.recipe.config import looks_like_path

    data = prepared.args.data
    source = data.dataset
    if not source or data.data_files or is_local_path(source) or looks_like_path(source) or Path(source).exists():
        return []
    return [str(source)]


def split_statistics(prepared: Any, label_names: list[str]) -> dict[str, dict[str, Any]]:
    from hiercon.hub.model_card import dataset_statistics

    return {
        split: dataset_statistics(np.asarray(dataset[LABELS]), label_names)
        for split, dataset in prepared.data.splits().items()
    }


def example_input(prepared: Any) -> str | None:
    column = prepared.args.data.text_column
    if not column:
        return None
    return str(prepared.data.test[0][column])


def write_recipe_card(
    folder: Path,
    prepared: Any,
    config: Any,
    results: dict[str, Any],
    per_label: list,
    card_data: HierconCardData | None = None,
) -> Path:
    """README.md for ``folder`` (which already holds the model, its plots and metrics).

    ``card_data`` is the stage-2 trainer's (its training settings and logs); the classifier's record,
    the recipe's settings, data statistics, test metrics, comparison and plots are added to it.
    """
    from hiercon.hub import save_model_card
    from hiercon.record import HierconRecord

    args = prepared.args
    settings = args.stage1.settings()
    data = card_data if card_data is not None else HierconCardData()
    data.set_record(HierconRecord.from_config(config), config)
    data.model_id = args.output.hub_model_id or Path(args.output.output_dir).name
    data.base_model = args.model.model_name_or_path
    data.stage1_hyperparameters = {key: settings[key] for key in STAGE1_KEYS}
    data.stage2 = {"loss": "bce", **data.stage2}
    data.stage2_hyperparameters = {
        **data.stage2_hyperparameters,
        **{key: getattr(args.stage2, key) for key in STAGE2_KEYS if applies(key, args.stage2.mode)},
    }
    data.dataset_name = dataset_name(prepared)
    data.datasets = hub_datasets(prepared) or data.datasets
    data.dataset_statistics = split_statistics(prepared, data.label_names)
    data.metrics, data.eval_split, data.per_label = results["test"], "test", per_label
    if results.get("baseline"):
        data.comparison = {
            MODE_NAMES.get(args.stage2.mode, "hiercon (two-stage)"): results["test"],
            "BCE baseline (same budget)": results["baseline"],
        }
    data.example_input = example_input(prepared) or data.example_input
    data.plots = {
        caption: f"plots/{name}"
        for name, caption in PLOT_CAPTIONS.items()
        if (folder / "plots" / name).is_file()
    }
    return save_model_card(data, folder)
