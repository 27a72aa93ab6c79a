"""Recipe configuration: YAML sections, command-line overrides and the errors of a bad config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import DEFAULT_ENCODER, SECTIONS, RecipeArguments, section_keys
from hiercon.recipe.config import load_recipe, merge_config, parse_overrides, read_yaml

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_config(folder: Path, content: dict, name: str = "recipe.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(content), encoding="utf-8")
    return path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n', encoding="utf-8")
    return path


@pytest.fixture
def minimal(tmp_path: Path, data_file: Path) -> dict:
    return {"data": {"dataset": data_file.name}, "output": {"output_dir": str(tmp_path / "out")}}


def test_yaml_sections_are_typed_and_relative_paths_resolve_beside_the_file(tmp_path, minimal, data_file):
    minimal["stage1"] = {"learning_rate": "3e-5", "max_steps": 7, "loss_kwargs": {"margin": 0.5}}
    minimal["stage2"] = {"mode": "linear_probe", "tune_thresholds": False}
    arguments = load_recipe(write_config(tmp_path, minimal))
    assert isinstance(arguments, RecipeArguments)
    assert arguments.stage1.learning_rate == pytest.approx(3e-5)
    assert arguments.stage1.max_steps == 7
    assert arguments.stage1.loss_kwargs == {"margin": 0.5}
    assert arguments.stage2.mode == "linear_probe" and arguments.stage2.tune_thresholds is False
    assert Path(arguments.data.dataset) == data_file.resolve()
    assert arguments.model.model_name_or_path == DEFAULT_ENCODER


@pytest.mark.parametrize(
    "overrides",
    [
        ["--stage1.learning_rate", "1e-4", "--stage2.label_space", "leaves", "--seed", "3"],
        ["--stage1.learning_rate=1e-4", "--stage2.label_space=leaves", "--output.seed=3"],
        ["stage1.learning_rate=1e-4", "stage2.label_space=leaves", "seed=3"],
    ],
)
def test_overrides_in_every_spelling_win_over_the_file(tmp_path, minimal, overrides):
    minimal["stage1"] = {"learning_rate": 5e-5}
    arguments = load_recipe(write_config(tmp_path, minimal), overrides)
    assert arguments.stage1.learning_rate == pytest.approx(1e-4)
    assert arguments.stage2.label_space == "leaves"
    assert arguments.output.seed == 3


def test_override_values_are_read_as_yaml(tmp_path, minimal):
    arguments = load_recipe(
        write_config(tmp_path, minimal),
        [
            "--data.label_columns",
            "[a, b]",
            "--stage1.loss_kwargs",
            "{margin: 0.2}",
            "--output.compare_baseline",
        ],
    )
    assert arguments.data.label_columns == ["a", "b"]
    assert arguments.stage1.loss_kwargs == {"margin": 0.2}
    assert arguments.output.compare_baseline is True


def test_a_single_label_column_may_be_a_plain_string(tmp_path, minimal):
    minimal["data"]["label_columns"] = "emotions"
    assert load_recipe(write_config(tmp_path, minimal)).data.label_columns == ["emotions"]


def test_unknown_key_names_the_key_and_the_closest_valid_one(tmp_path, minimal):
    minimal["stage1"] = {"learning_rat": 1e-4}
    with pytest.raises(ConfigError, match=r"'learning_rat'.*stage1.*did you mean 'learning_rate'"):
        load_recipe(write_config(tmp_path, minimal))


def test_unknown_section_and_unknown_override_are_refused_with_a_suggestion(tmp_path, minimal):
    minimal["stage_1"] = {"learning_rate": 1e-4}
    with pytest.raises(ConfigError, match=r"'stage_1'.*did you mean 'stage1'"):
        load_recipe(write_config(tmp_path, minimal))
    del minimal["stage_1"]
    path = write_config(tmp_path, minimal)
    with pytest.raises(
        ConfigError, match=r"'per_device_batch_size'.*did you mean 'per_device_train_batch_size'"
    ):
        load_recipe(path, ["--stage1.per_device_batch_size", "8"])
    with pytest.raises(ConfigError, match=r"'lerning_rate'.*did you mean 'stage\d.learning_rate'"):
        load_recipe(path, ["--lerning_rate", "1e-4"])
    with pytest.raises(ConfigError, match=r"several sections.*stage1.learning_rate"):
        load_recipe(path, ["--learning_rate", "1e-4"])


def test_missing_files_are_named(tmp_path, minimal):
    with pytest.raises(ConfigError, match=r"config file .*nowhere.yaml.* does not exist"):
        load_recipe(tmp_path / "nowhere.yaml")
    minimal["data"]["taxonomy"] = "missing_taxonomy.tsv"
    with pytest.raises(ConfigError, match=r"data.taxonomy 'missing_taxonomy.tsv' does not exist"):
        load_recipe(write_config(tmp_path, minimal))
    minimal["data"] = {"dataset": "absent/train.jsonl.gz"}
    with pytest.raises(ConfigError, match=r"data.dataset 'absent/train.jsonl.gz' does not exist"):
        load_recipe(write_config(tmp_path, minimal))
    minimal["data"] = {"data_files": {"train": "train.jsonl", "test": "gone.csv"}}
    with pytest.raises(ConfigError, match=r"data.data_files.test 'gone.csv' does not exist"):
        load_recipe(write_config(tmp_path, minimal))


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("stage1", "learning_rate", "fast", r"stage1.learning_rate must be a number, got 'fast'"),
        ("stage1", "max_steps", 2.5, r"stage1.max_steps must be an integer"),
        ("stage2", "mode", "linear-probe", r"stage2.mode must be one of .*did you mean 'linear_probe'"),
        ("stage2", "tune_thresholds", "maybe", r"stage2.tune_thresholds must be true or false"),
        ("stage1", "loss_kwargs", [1, 2], r"stage1.loss_kwargs must be a mapping"),
        ("stage1", "temperature", 0.0, r"stage1.temperature must be positive"),
        ("stage2", "threshold", 1.5, r"stage2.threshold must be in \(0, 1\)"),
        ("data", "label_template", "emotion:", r"label_template must contain"),
        ("output", "push_to_hub", True, r"hub_model_id is not set"),
    ],
)
def test_bad_values_name_key_and_value(tmp_path, minimal, section, key, value, message):
    minimal.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError, match=message):
        load_recipe(write_config(tmp_path, minimal))


def test_training_arguments_keys_of_a_stage_go_to_its_training_args_typed(tmp_path, minimal):
    minimal["stage1"] = {"max_steps": 2, "training_args": {"adam_beta2": "0.98"}}
    minimal["stage2"] = {"lr_scheduler_type": "cosine"}
    arguments = load_recipe(
        write_config(tmp_path, minimal),
        ["--stage1.max_steps", "5", "stage2.num_train_epochs=2", "--output.dataloader_drop_last", "true"],
    )
    stage1, stage2, output = arguments.stage1, arguments.stage2, arguments.output
    assert stage1.training_args == {"adam_beta2": 0.98, "max_steps": 5}
    assert stage1.max_steps == 5 and stage1.logging_steps == 10 and stage1.num_train_epochs == 1.0
    assert stage2.training_args == {"lr_scheduler_type": "cosine", "num_train_epochs": 2.0}
    assert isinstance(stage2.num_train_epochs, float) and stage2.per_device_eval_batch_size == 64
    assert output.training_args == {"dataloader_drop_last": True} and output.report_to == "none"
    stage1.max_steps = 9
    assert stage1.training_args["max_steps"] == 9
    settings = arguments.settings()["stage1"]
    assert settings["max_steps"] == 9 and settings["temperature"] == 0.1 and "training_args" not in settings


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--stage1.adam_bta2=0.9", r"'adam_bta2'.*stage1.*did you mean 'adam_beta2'"),
        (
            "--stage2.lr_scheduler_type=cosin",
            r"stage2.lr_scheduler_type must be one of .*did you mean 'cosine'",
        ),
        ("--stage1.warmup_steps=some", r"stage1.warmup_steps must be a number, got 'some'"),
        ("--stage1.output_dir=elsewhere", r"stage1.output_dir is set by the recipe; use output.work_dir"),
        ("--stage2.learning_rate=-1", r"stage2.learning_rate must be positive"),
        ("--model.lora_target_modules=query", None),
    ],
)
def test_training_arguments_keys_are_checked_like_the_recipe_keys(tmp_path, minimal, override, message):
    path = write_config(tmp_path, minimal)
    if message is None:
        assert load_recipe(path, [override]).model.lora_target_modules == ["query"]
        return
    with pytest.raises(ConfigError, match=message):
        load_recipe(path, [override])


def test_a_training_args_mapping_with_an_unknown_key_is_refused(tmp_path, minimal):
    minimal["output"]["training_args"] = {"bf17": True}
    with pytest.raises(ConfigError, match=r"'bf17'.*output.training_args.*did you mean 'bf16'"):
        load_recipe(write_config(tmp_path, minimal))


def test_text_and_image_columns_are_exclusive(tmp_path, minimal):
    minimal["data"]["image_column"] = "image"
    with pytest.raises(ConfigError, match="exactly one of data.text_column and data.image_column"):
        load_recipe(write_config(tmp_path, minimal))


def test_existing_output_folder_is_refused_unless_overwrite(tmp_path, minimal):
    out = Path(minimal["output"]["output_dir"])
    out.mkdir()
    (out / "config.json").write_text("{}")
    path = write_config(tmp_path, minimal)
    with pytest.raises(ConfigError, match="already holds files"):
        load_recipe(path)
    assert load_recipe(path, ["--output.overwrite_output_dir", "true"]).output.overwrite_output_dir


def test_malformed_override_and_yaml_are_errors(tmp_path, minimal):
    with pytest.raises(ConfigError, match="cannot read override 'stage1'"):
        parse_overrides(["stage1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage1: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_parse(name, tmp_path):
    overrides = ["--output.output_dir", str(tmp_path / "out")]
    if name == "template.yaml":
        # The template names the user's own files; it must still show every key of every section.
        content = read_yaml(REPO_ROOT / "configs" / name)
        merge_config(content, [])
        for section in SECTIONS:
            assert set(section_keys(section)) == set(content[section]), section
        return
    arguments = load_recipe(REPO_ROOT / "configs" / name, overrides)
    assert arguments.data.label_columns


def test_demo_stages_get_the_training_arguments_they_always_had(tmp_path):
    """The demo is seeded: its stages must keep every TrainingArguments value (recipe defaults included)."""
    from transformers import TrainingArguments

    from hiercon.recipe.prepare import accelerator_available, training_arguments

    arguments = load_recipe(
        REPO_ROOT / "configs" / "goemotions_demo.yaml", [f"output.output_dir={tmp_path / 'out'}"]
    )
    common = {"seed": 42, "report_to": "none", "dataloader_num_workers": 0, "use_cpu": False}
    common |= {"save_strategy": "steps", "save_only_model": False, "gradient_accumulation_steps": 1}
    common |= {"weight_decay": 0.0, "lr_scheduler_type": "linear", "save_total_limit": 2}
    common |= {"dataloader_pin_memory": accelerator_available()}  # pinned only with an accelerator
    expected = {
        "stage1": dict(
            common,
            num_train_epochs=1.0,
            max_steps=48,
            per_device_train_batch_size=32,
            learning_rate=2e-4,  # the REG registry rate
            warmup_steps=0.1,
            logging_steps=8,
            save_steps=24,
        ),
        "stage2": dict(
            common,
            num_train_epochs=3.0,
            max_steps=-1,
            per_device_train_batch_size=32,
            per_device_eval_batch_size=64,
            learning_rate=5e-5,
            warmup_steps=0.1,
            logging_steps=10,
            save_steps=50,
            train_sampling_strategy="group_by_length",
        ),
    }
    for name, values in expected.items():
        built = training_arguments(getattr(arguments, name), arguments.output, tmp_path / name)
        reference = TrainingArguments(output_dir=str(tmp_path / name), **values)
        assert built.to_dict() == reference.to_dict(), name


def test_run_wide_training_arguments_reach_both_stages_and_a_stage_wins(tmp_path, minimal):
    from hiercon.recipe.prepare import training_arguments

    arguments = load_recipe(
        write_config(tmp_path, minimal),
        ["--output.weight_decay", "0.1", "--stage2.weight_decay", "0.2", "--output.seed", "7"],
    )
    stage1 = training_arguments(arguments.stage1, arguments.output, tmp_path / "stage1")
    stage2 = training_arguments(arguments.stage2, arguments.output, tmp_path / "stage2")
    assert (stage1.weight_decay, stage2.weight_decay) == (0.1, 0.2)
    assert stage1.seed == stage2.seed == 7 and stage1.output_dir == str(tmp_path / "stage1")
    assert (stage1.save_total_limit, stage1.per_device_train_batch_size) == (2, 32)


def test_template_stage1_takes_the_losss_recommended_settings(tmp_path):
    """The template's ``stage1.learning_rate: null`` (like its null temperature and views) is the
    loss's registry value, so the template trains the loss as the demo does; a value still wins."""
    from hiercon.recipe.loss_registry import loss_entry

    overrides = ["--data.dataset", str(tmp_path), "--output.output_dir", str(tmp_path / "out")]
    arguments = load_recipe(REPO_ROOT / "configs" / "template.yaml", overrides)
    entry = loss_entry(arguments.stage1.loss)
    assert arguments.stage1.learning_rate == entry.learning_rate
    assert (arguments.stage1.temperature, arguments.stage1.num_views) == (entry.temperature, entry.num_views)
    demo = load_recipe(REPO_ROOT / "configs" / "goemotions_demo.yaml", overrides[2:])
    assert arguments.stage1.warmup_steps == demo.stage1.warmup_steps
    changed = load_recipe(REPO_ROOT / "configs" / "template.yaml", [*overrides, "--stage1.learning_rate", "3e-4"])
    assert changed.stage1.learning_rate == 3e-4
