"""Recipe configuration: a YAML file plus command-line overrides, checked before anything runs.

A recipe file has up to five sections (``model``, ``data``, ``stage1``, ``stage2``, ``output``;
see :mod:`hiercon.recipe.arguments`). Overrides name a section and a key, in either form::

    --stage1.learning_rate 1e-4        --stage1.learning_rate=1e-4        stage1.learning_rate=1e-4

A key that exists in one section only may drop the section (``--seed 3``). Values are read as YAML
(``true``, ``[a, b]``, ``{margin: 0.5}``). Each section is built with
:class:`transformers.HfArgumentParser` after every key and value has been checked here, so a bad
configuration fails with a :class:`~hiercon.errors.ConfigError` that names the key, the closest
valid key, the missing file or the bad value.

Relative input paths written in a recipe file (data files, taxonomy, encoder folder) are read
from the file's folder when they exist there, else from the current directory; paths given on the
command line, and ``output_dir``, are relative to the current directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import SECTIONS, RecipeArguments

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".arrow", ".txt")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")


def closest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate most similar to ``name`` (difflib), or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_key_error(key: str, candidates: Sequence[str], where: str) -> ConfigError:
    suggestion = closest(key, candidates)
    hint = (
        f"; did you mean {suggestion!r}?" if suggestion else f"; valid keys: {', '.join(sorted(candidates))}"
    )
    return ConfigError(f"unknown key {key!r} in {where}{hint}")


def field_names(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(SECTIONS[section])]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping stored in a recipe file (an error names a missing or malformed file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, got {type(content).__name__}"
        )
    return content


def parse_overrides(overrides: Sequence[str]) -> list[tuple[str, str]]:
    """``[(dotted_key, raw_value), ...]`` from ``--a.b v``, ``--a.b=v`` or ``a.b=v`` tokens."""
    pairs: list[tuple[str, str]] = []
    tokens = list(overrides)
    position = 0
    while position < len(tokens):
        token = tokens[position]
        position += 1
        if token.startswith("--"):
            key = token[2:]
            if "=" in key:
                key, value = key.split("=", 1)
            elif position < len(tokens) and not tokens[position].startswith("--"):
                value = tokens[position]
                position += 1
            else:
                value = "true"
        elif "=" in token:
            key, value = token.split("=", 1)
        else:
            raise ConfigError(
                f"cannot read override {token!r}: write --section.key value or section.key=value"
            )
        if not key:
            raise ConfigError(f"override {token!r} has no key")
        pairs.append((key.replace("-", "_"), value))
    return pairs


def locate_key(dotted_key: str) -> tuple[str, str]:
    """``(section, key)`` for ``section.key`` or for a key that only one section has."""
    if "." in dotted_key:
        section, key = dotted_key.split(".", 1)
        if section not in SECTIONS:
            raise unknown_key_error(section, list(SECTIONS), "the recipe sections")
        if key not in field_names(section):
            raise unknown_key_error(key, field_names(section), f"section {section!r}")
        return section, key
    owners = [section for section in SECTIONS if dotted_key in field_names(section)]
    if len(owners) == 1:
        return owners[0], dotted_key
    if len(owners) > 1:
        raise ConfigError(
            f"key {dotted_key!r} exists in several sections ({', '.join(owners)}); write e.g. {owners[0]}.{dotted_key}"
        )
    every_key = [f"{section}.{name}" for section in SECTIONS for name in field_names(section)]
    raise unknown_key_error(dotted_key, every_key, "any section")


def merge_config(content: dict[str, Any], overrides: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Sections of the file with the overrides applied; unknown sections or keys are refused."""
    merged: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for section, values in content.items():
        if section not in SECTIONS:
            raise unknown_key_error(str(section), list(SECTIONS), "the recipe sections")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} must be a mapping of keys to values, got {values!r}")
        for key, value in values.items():
            if key not in field_names(section):
                raise unknown_key_error(str(key), field_names(section), f"section {section!r}")
            merged[section][key] = value
    for dotted_key, raw_value in parse_overrides(overrides):
        section, key = locate_key(dotted_key)
        merged[section][key] = yaml.safe_load(raw_value) if raw_value != "" else ""
    return merged


def _bad_value(where: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{where} must be {expected}, got {value!r}")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to the type ``hint`` (YAML and command-line spellings accepted)."""
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [argument for argument in arguments if argument is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where} has an unusable value {value!r}")
    if origin is typing.Literal:
        if value in arguments:
            return value
        suggestion = closest(str(value), [str(argument) for argument in arguments])
        hint_text = f"; did you mean {suggestion!r}?" if suggestion else ""
        choices = ", ".join(map(repr, arguments))
        raise ConfigError(f"{where} must be one of {choices}, got {value!r}{hint_text}")
    if origin is list:
        items = value if isinstance(value, (list, tuple)) else [value]
        item_hint = arguments[0] if arguments else Any
        return [coerce(item, item_hint, f"{where}[{index}]") for index, item in enumerate(items)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _bad_value(where, value, "a mapping")
        return dict(value)
    return _coerce_scalar(value, hint, where)


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "yes", "1", "false", "no", "0"}:
            return value.lower() in {"true", "yes", "1"}
        raise _bad_value(where, value, "true or false")
    if hint is int:
        if isinstance(value, bool):
            raise _bad_value(where, value, "an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise _bad_value(where, value, "an integer")
    if hint is float:
        if isinstance(value, bool):
            raise _bad_value(where, value, "a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise _bad_value(where, value, "a number")
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _bad_value(where, value, "a string")
    return value


def build_section(section: str, values: dict[str, Any]) -> Any:
    """One section's dataclass, values typed and the instance made by ``HfArgumentParser``."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    typed = {key: coerce(value, hints[key], f"{section}.{key}") for key, value in values.items()}
    (instance,) = HfArgumentParser(cls).parse_dict(typed)
    return instance


def load_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> RecipeArguments:
    """The checked arguments of a recipe file with ``overrides`` applied (no file: defaults only)."""
    content = read_yaml(path) if path is not None else {}
    if path is not None:
        anchor_file_paths(content, Path(path).resolve().parent)
    merged = merge_config(content, overrides)
    arguments = RecipeArguments(**{section: build_section(section, merged[section]) for section in SECTIONS})
    resolve_paths(arguments)
    check_values(arguments)
    return arguments


def _anchored(value: Any, base_dir: Path) -> Any:
    if isinstance(value, list):
        return [_anchored(item, base_dir) for item in value]
    if isinstance(value, dict):
        return {key: _anchored(item, base_dir) for key, item in value.items()}
    if isinstance(value, str) and not Path(value).expanduser().is_absolute() and (base_dir / value).exists():
        return str((base_dir / value).resolve())
    return value


def anchor_file_paths(content: dict[str, Any], base_dir: Path) -> None:
    """Make the input paths of a recipe file that exist beside it absolute (in place)."""
    for section, key in (
        ("data", "dataset"),
        ("data", "data_files"),
        ("data", "taxonomy"),
        ("model", "model_name_or_path"),
    ):
        values = content.get(section)
        if isinstance(values, dict) and key in values:
            values[key] = _anchored(values[key], base_dir)


def find_local(value: str) -> Path | None:
    """The existing file or folder ``value`` names, made absolute."""
    candidate = Path(value).expanduser()
    return candidate.resolve() if candidate.exists() else None


def looks_like_path(value: str) -> bool:
    """A local path by its spelling: ``./x``, ``../x``, ``/x``, ``~`` or a data file suffix."""
    lowered = value.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
    return value.startswith((".", "/", "~")) or lowered.endswith(DATA_SUFFIXES)


def require_local(value: str, what: str) -> str:
    found = find_local(value)
    if found is None:
        raise ConfigError(
            f"{what} {value!r} does not exist (relative to the recipe file or the current directory)"
        )
    return str(found)


def resolve_paths(arguments: RecipeArguments) -> None:
    """Turn relative local paths into absolute ones; missing local files are named in an error."""
    data = arguments.data
    if data.dataset is not None:
        found = find_local(data.dataset)
        if found is not None:
            data.dataset = str(found)
        elif looks_like_path(data.dataset):
            raise ConfigError(f"data.dataset {data.dataset!r} does not exist")
    if data.data_files is not None:
        data.data_files = {
            split: (
                [require_local(str(file), f"data.data_files.{split}") for file in files]
                if isinstance(files, list)
                else require_local(str(files), f"data.data_files.{split}")
            )
            for split, files in data.data_files.items()
        }
    if data.taxonomy is not None:
        data.taxonomy = require_local(data.taxonomy, "data.taxonomy")
    model_path = find_local(arguments.model.model_name_or_path)
    if model_path is not None:
        arguments.model.model_name_or_path = str(model_path)
    elif looks_like_path(arguments.model.model_name_or_path):
        raise ConfigError(f"model.model_name_or_path {arguments.model.model_name_or_path!r} does not exist")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_values(arguments: RecipeArguments) -> None:
    """Cross-field and range checks that need no data."""
    data, stage1, stage2, output = arguments.data, arguments.stage1, arguments.stage2, arguments.output
    _require(data.dataset is not None or bool(data.data_files), "data.dataset or data.data_files must be set")
    _require(
        (data.text_column is None) != (data.image_column is None),
        "set exactly one of data.text_column and data.image_column (the other to null)",
    )
    _require(len(data.label_columns) > 0, "data.label_columns must name at least one column")
    _require(
        0.0 < data.validation_fraction < 1.0,
        f"data.validation_fraction must be in (0, 1), got {data.validation_fraction}",
    )
    for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
        value = getattr(data, name)
        _require(value is None or value > 0, f"data.{name} must be positive or null, got {value}")
    if data.label_template is not None:
        _require(
            "{}" in data.label_template,
            f"data.label_template must contain '{{}}', got {data.label_template!r}",
        )
    _require(
        arguments.model.max_length > 0, f"model.max_length must be positive, got {arguments.model.max_length}"
    )
    projection = arguments.model.projection_dim
    _require(
        projection is None or projection > 0,
        f"model.projection_dim must be positive or null, got {projection}",
    )
    for section_name, stage in (("stage1", stage1), ("stage2", stage2)):
        _require(
            stage.learning_rate > 0,
            f"{section_name}.learning_rate must be positive, got {stage.learning_rate}",
        )
        _require(
            stage.per_device_train_batch_size > 0,
            f"{section_name}.per_device_train_batch_size must be positive, got {stage.per_device_train_batch_size}",
        )
        _require(
            stage.max_steps > 0 or stage.num_train_epochs > 0,
            f"{section_name} needs max_steps > 0 or num_train_epochs > 0",
        )
    head_rate = stage2.head_learning_rate
    _require(
        head_rate is None or head_rate > 0,
        f"stage2.head_learning_rate must be positive or null, got {head_rate}",
    )
    _require(stage1.temperature > 0, f"stage1.temperature must be positive, got {stage1.temperature}")
    _require(stage1.num_views >= 1, f"stage1.num_views must be at least 1, got {stage1.num_views}")
    _require(
        stage1.sampler in ("multilabel", "random"),
        f"stage1.sampler must be 'multilabel' or 'random', got {stage1.sampler!r}",
    )
    _require(0.0 < stage2.threshold < 1.0, f"stage2.threshold must be in (0, 1), got {stage2.threshold}")
    _require(
        stage2.consistency_weight >= 0,
        f"stage2.consistency_weight must be >= 0, got {stage2.consistency_weight}",
    )
    _require(
        not output.push_to_hub or bool(output.hub_model_id),
        "output.push_to_hub is true but output.hub_model_id is not set",
    )
    final = Path(output.output_dir)
    _require(
        output.overwrite_output_dir or not (final.exists() and any(final.iterdir())),
        f"output.output_dir {output.output_dir!r} already holds files; set output.overwrite_output_dir: true",
    )
