"""Recipe configuration: a YAML file plus command-line overrides, checked before anything runs.

A recipe file has up to five sections (``model``, ``data``, ``stage1``, ``stage2``, ``output``;
see :mod:`hiercon.recipe.arguments`). Overrides name a section and a key, in either form::

    --stage1.learning_rate 1e-4        --stage1.learning_rate=1e-4        stage1.learning_rate=1e-4

A key that a recipe file shows in one section only may drop the section (``--seed 3``). Values
are read as YAML (``true``, ``[a, b]``, ``{margin: 0.5}``). A key of ``stage1``, ``stage2`` or
``output`` that is not hiercon's own but a ``transformers.TrainingArguments`` field goes to that
section's ``training_args`` (``output``: both stages). :class:`transformers.HfArgumentParser` types
every value from its dataclass field (hiercon's sections, or ``TrainingArguments``), and the
sections check their ranges as they are built, so a bad configuration fails with a
:class:`~hiercon.errors.ConfigError` that names the key, the closest valid key, the missing file or
the bad value.

Relative input paths written in a recipe file (data files, taxonomy, encoder folder) are read
from the file's folder when they exist there, else from the current directory; paths given on the
command line, and ``output_dir``, are relative to the current directory.

``data.taxonomy`` may instead name a hierarchy learned from the data (``cooccurrence``,
``{kmeans: [8, 3]}``; see :mod:`hiercon.recipe.hierarchy_spec`): a mapping is written as its string
form (``"kmeans:8,3"``) before the section is built, and such a value is not read as a path.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser, TrainingArguments
from transformers.hf_argparser import string_to_bool

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import (
    SECTIONS,
    RecipeArguments,
    section_keys,
    takes_training_arguments,
    training_argument_defaults,
)
from hiercon.recipe.hierarchy_spec import parse_spec, spec_text

DATA_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".arrow", ".txt")
COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")


RESERVED_TRAINING_KEYS = {"output_dir": "output.work_dir"}


def closest(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate most similar to ``name`` (difflib), or None when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return matches[0] if matches else None


def unknown_key_error(
    key: str, candidates: Sequence[str], where: str, more: Sequence[str] = ()
) -> ConfigError:
    """An error naming ``key`` and the closest of ``candidates`` (else of ``more``, else the valid keys)."""
    suggestion = closest(key, candidates) or closest(key, more)
    hint = (
        f"; did you mean {suggestion!r}?" if suggestion else f"; valid keys: {', '.join(sorted(candidates))}"
    )
    return ConfigError(f"unknown key {key!r} in {where}{hint}")


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


def check_key(section: str, key: str) -> None:
    """Refuse a key that ``section`` neither declares nor passes to ``TrainingArguments``."""
    if key in section_keys(section):
        return
    if takes_training_arguments(section) and key in training_argument_defaults():
        if key in RESERVED_TRAINING_KEYS:
            raise ConfigError(f"{section}.{key} is set by the recipe; use {RESERVED_TRAINING_KEYS[key]}")
        return
    more = list(training_argument_defaults()) if takes_training_arguments(section) else []
    raise unknown_key_error(key, section_keys(section), f"section {section!r}", more)


def locate_key(dotted_key: str) -> tuple[str, str]:
    """``(section, key)`` for ``section.key`` or for a key that a recipe file shows in one section only."""
    if "." in dotted_key:
        section, key = dotted_key.split(".", 1)
        if section not in SECTIONS:
            raise unknown_key_error(section, list(SECTIONS), "the recipe sections")
        check_key(section, key)
        return section, key
    owners = [section for section in SECTIONS if dotted_key in section_keys(section)]
    if len(owners) == 1:
        return owners[0], dotted_key
    if len(owners) > 1:
        raise ConfigError(
            f"key {dotted_key!r} exists in several sections ({', '.join(owners)}); write e.g. {owners[0]}.{dotted_key}"
        )
    every_key = [f"{section}.{name}" for section in SECTIONS for name in section_keys(section)]
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
            check_key(section, str(key))
            merged[section][key] = value
    for dotted_key, raw_value in parse_overrides(overrides):
        section, key = locate_key(dotted_key)
        merged[section][key] = yaml.safe_load(raw_value) if raw_value != "" else ""
    return merged


# ---- typing the values -----------------------------------------------------------------------------------


@functools.cache
def argument_parser(cls: type) -> HfArgumentParser:
    """The ``HfArgumentParser`` of one dataclass, raising instead of exiting on a bad value."""
    return HfArgumentParser(cls, exit_on_error=False)


def _as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _reads_text(action: argparse.Action) -> bool:
    """Whether the parser turns text into this field's type (dict fields are taken as written)."""
    return callable(action.type) and not isinstance(action.type, types.GenericAlias)


def _expected(action: argparse.Action) -> str:
    if action.choices:
        return "one of " + ", ".join(repr(choice) for choice in action.choices)
    names = {string_to_bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(action.type, f"a {getattr(action.type, '__name__', 'valid')} value")


def typed_values(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` typed by the fields of dataclass ``cls`` through its ``HfArgumentParser``.

    Text and numbers (a recipe file's ``3e-5``, a command line's ``true``) are parsed as the parser
    parses command-line arguments; mappings, lists of non-list fields and nulls are taken as written.
    """
    parser = argument_parser(cls)
    actions = {
        action.dest: action for action in parser._actions if f"--{action.dest}" in action.option_strings
    }
    tokens: list[str] = []
    parsed: list[str] = []
    for key, value in values.items():
        action = actions[key]
        if not _reads_text(action):
            continue
        if isinstance(value, (str, int, float, bool)):
            tokens.append(f"--{key}={_as_text(value)}")
        elif isinstance(value, list) and action.nargs == "+" and value:
            tokens += [f"--{key}", *map(_as_text, value)]
        else:
            continue
        parsed.append(key)
    try:
        namespace, _ = parser.parse_known_args(tokens)
    except argparse.ArgumentError as error:
        key = (error.argument_name or "").split("/")[0].lstrip("-")
        action = actions[key]
        value = values[key]
        suggestion = closest(str(value), [str(choice) for choice in action.choices or ()])
        hint = f"; did you mean {suggestion!r}?" if suggestion else ""
        raise ConfigError(f"{where}.{key} must be {_expected(action)}, got {value!r}{hint}") from None
    return {key: getattr(namespace, key) if key in parsed else value for key, value in values.items()}


def build_section(section: str, values: dict[str, Any]) -> Any:
    """One section's dataclass from its checked keys: hiercon's own keys typed by the section's
    fields, the others typed by ``TrainingArguments`` and kept in ``training_args``."""
    cls = SECTIONS[section]
    own_keys = {item.name for item in dataclasses.fields(cls)}
    own = typed_values(cls, {key: value for key, value in values.items() if key in own_keys}, section)
    if takes_training_arguments(section):
        given = own.get("training_args") or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{section}.training_args must be a mapping, got {given!r}")
        for key in given:
            if key not in training_argument_defaults() or key in RESERVED_TRAINING_KEYS:
                raise unknown_key_error(
                    str(key),
                    list(training_argument_defaults()),
                    f"{section}.training_args (TrainingArguments)",
                )
        passed = {**given, **{key: value for key, value in values.items() if key not in own_keys}}
        own["training_args"] = typed_values(TrainingArguments, passed, section)
    (instance,) = argument_parser(cls).parse_dict(own)
    return instance


def load_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> RecipeArguments:
    """The checked arguments of a recipe file with ``overrides`` applied (no file: defaults only)."""
    content = read_yaml(path) if path is not None else {}
    if path is not None:
        anchor_file_paths(content, Path(path).resolve().parent)
    merged = merge_config(content, overrides)
    if "taxonomy" in merged["data"]:
        merged["data"]["taxonomy"] = spec_text(merged["data"]["taxonomy"])
    arguments = RecipeArguments(**{section: build_section(section, merged[section]) for section in SECTIONS})
    resolve_paths(arguments)
    check_run(arguments)
    return arguments


def _anchored(value: Any, base_dir: Path) -> Any:
    if isinstance(value, list):
        return [_anchored(item, base_dir) for item in value]
    if isinstance(value, dict):
        return {key: _anchored(item, base_dir) for key, item in value.items()}
    if isinstance(value, str) and not Path(value).expanduser().is_absolute() and (
        (base_dir / value).exists() or in_local_folder(value, base_dir)
    ):
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
    """A local path by its spelling, never a Hub name (``name`` or ``owner/name``): ``./x``, ``../x``,
    ``/x``, ``~``, a Windows path, more than one ``/``, or a data file suffix."""
    lowered = value.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
    return (
        value.startswith((".", "/", "~"))
        or "\\" in value
        or re.match(r"^[A-Za-z]:", value) is not None
        or value.count("/") > 1
        or lowered.endswith(DATA_SUFFIXES)
    )


def in_local_folder(value: str, base_dir: Path = Path(".")) -> bool:
    """``owner/name`` whose ``owner`` is an existing folder (under ``base_dir``): a local path spelled
    like a Hub id (``data/mine`` where ``data/`` exists), never sent to the Hub."""
    return value.count("/") == 1 and not value.endswith("/") and (base_dir / value).parent.is_dir()


def looks_local(value: str) -> bool:
    """A local path by its spelling (:func:`looks_like_path`) or by an existing parent folder."""
    return looks_like_path(value) or in_local_folder(value)


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
        elif looks_local(data.dataset):
            raise ConfigError(
                f"data.dataset {data.dataset!r} does not exist (a local path, read from the recipe file's "
                "folder, then the current directory; a Hub dataset is named 'name' or 'owner/name')"
            )
    if data.data_files is not None:
        data.data_files = {
            split: (
                [require_local(str(file), f"data.data_files.{split}") for file in files]
                if isinstance(files, list)
                else require_local(str(files), f"data.data_files.{split}")
            )
            for split, files in data.data_files.items()
        }
    if data.taxonomy is not None and parse_spec(data.taxonomy) is None:
        data.taxonomy = require_local(data.taxonomy, "data.taxonomy")
    model_path = find_local(arguments.model.model_name_or_path)
    if model_path is not None:
        arguments.model.model_name_or_path = str(model_path)
    elif looks_local(arguments.model.model_name_or_path):
        raise ConfigError(f"model.model_name_or_path {arguments.model.model_name_or_path!r} does not exist")


def check_run(arguments: RecipeArguments) -> None:
    """What a run needs beyond each section's own checks: data to read, and a free output folder."""
    data, output = arguments.data, arguments.output
    if data.dataset is None and not data.data_files:
        raise ConfigError("data.dataset or data.data_files must be set")
    final = Path(output.output_dir)
    if not output.overwrite_output_dir and final.exists() and any(final.iterdir()):
        raise ConfigError(
            f"output.output_dir {output.output_dir!r} already holds files; set output.overwrite_output_dir: true"
        )
