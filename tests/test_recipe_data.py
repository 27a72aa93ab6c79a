"""Recipe data loading: every file format and label format becomes a taxonomy multi-hot ``labels``."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from hiercon.errors import ConfigError, UnknownLabelError
from hiercon.recipe import data as recipe_data
from hiercon.recipe.arguments import DataArguments
from hiercon.recipe.config import load_recipe
from hiercon.recipe.data import LABELS, load_recipe_data

EDGES = "parent\tchild\nroot\tpositive\nroot\tnegative\npositive\tjoy\npositive\tlove\nnegative\tanger\n"
ROWS = {
    "train": [("so happy", ["joy"]), ("love it", ["love", "joy"]), ("so mad", ["anger"]), ("ugh", ["anger"])],
    "validation": [("glad", ["joy"]), ("rage", ["anger"])],
    "test": [("nice", ["love"]), ("bad", ["anger"])],
}


@pytest.fixture
def taxonomy_file(tmp_path: Path) -> Path:
    path = tmp_path / "taxonomy.tsv"
    path.write_text(EDGES, encoding="utf-8")
    return path


def frame(split: str) -> pd.DataFrame:
    return pd.DataFrame({"text": [t for t, _ in ROWS[split]], "labels": [ls for _, ls in ROWS[split]]})


def expected_sets(taxonomy, split: str) -> list[set[str]]:
    return [
        set(labels) | {a for label in labels for a in taxonomy.ancestors(label)} for _, labels in ROWS[split]
    ]


def decoded(data, split: str) -> list[set[str]]:
    taxonomy = data.taxonomy
    rows = data.splits()[split][LABELS]
    return [{taxonomy.label(i) for i, value in enumerate(row) if value > 0.5} for row in rows]


def write_split_files(folder: Path, suffix: str) -> None:
    folder.mkdir(exist_ok=True)
    for split in ROWS:
        table = frame(split)
        path = folder / f"{split}_part{suffix}"
        if suffix == ".csv":
            table.assign(labels=table["labels"].str.join("|")).to_csv(path, index=False)
        elif suffix == ".tsv":
            table.assign(labels=table["labels"].str.join("|")).to_csv(path, index=False, sep="\t")
        elif suffix == ".parquet":
            table.to_parquet(path)
        else:
            text = "".join(json.dumps(record) + "\n" for record in table.to_dict("records"))
            if suffix.endswith(".gz"):
                with gzip.open(path, "wt", encoding="utf-8") as handle:
                    handle.write(text)
            else:
                path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".parquet"])
def test_folder_of_split_files_in_each_format(tmp_path, taxonomy_file, suffix):
    write_split_files(tmp_path / "data", suffix)
    data = load_recipe_data(DataArguments(dataset=str(tmp_path / "data"), taxonomy=str(taxonomy_file)))
    for split in ROWS:
        assert decoded(data, split) == expected_sets(data.taxonomy, split)
    assert data.modality == "text" and data.input_column == "text"
    assert set(data.train.column_names) == {"text", LABELS}


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_delimited_files_through_data_files_with_paths_of_one_label(tmp_path, taxonomy_file, suffix):
    write_split_files(tmp_path / "data", suffix)
    files = {split: str(tmp_path / "data" / f"{split}_part{suffix}") for split in ROWS}
    args = DataArguments(
        data_files=files, taxonomy=str(taxonomy_file), label_format="paths", path_separator="|"
    )
    data = load_recipe_data(args)
    # "love|joy" read as a path names its last part only.
    assert decoded(data, "train")[1] == {"joy", "positive"}
    assert decoded(data, "test") == expected_sets(data.taxonomy, "test")


def test_saved_dataset_dict_with_class_label_ids_and_no_taxonomy(tmp_path):
    names = ["joy", "love", "anger"]
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=names)})
    splits = {
        split: Dataset.from_dict(
            {"sentence": [t for t, _ in rows], "label": [names.index(ls[0]) for _, ls in rows]},
            features=features,
        )
        for split, rows in ROWS.items()
    }
    DatasetDict(splits).save_to_disk(str(tmp_path / "saved"))
    args = DataArguments(
        dataset=str(tmp_path / "saved"), text_column="sentence", label_columns=["label"], label_format="ids"
    )
    data = load_recipe_data(args)
    assert data.taxonomy.labels == names and data.taxonomy.num_levels == 1
    assert decoded(data, "train") == [{"joy"}, {"love"}, {"anger"}, {"anger"}]


def test_ids_through_a_template_and_sequence_of_ids(tmp_path, taxonomy_file):
    table = pd.DataFrame({"text": ["a", "b"], "ids": [[0, 2], [1]]})
    table.to_json(tmp_path / "train.jsonl", orient="records", lines=True)
    mapping = tmp_path / "ids.tsv"
    mapping.write_text(
        "parent\tchild\nroot\tgroup:x\ngroup:x\tc:0\ngroup:x\tc:1\nroot\tc:2\n", encoding="utf-8"
    )
    args = DataArguments(
        dataset=str(tmp_path / "train.jsonl"),
        taxonomy=str(mapping),
        label_columns=["ids"],
        label_format="ids",
        label_template="c:{}",
        validation_split=None,
        test_split=None,
        validation_fraction=0.5,
    )
    data = load_recipe_data(args)
    rows = sorted(decoded(data, "train") + decoded(data, "validation"), key=len)
    assert rows == [{"c:1", "group:x"}, {"c:0", "c:2", "group:x"}]
    assert len(data.test) == len(data.validation)


def test_multi_hot_vector_and_one_column_per_label(tmp_path, taxonomy_file):
    from hiercon.taxonomy import LabelTaxonomy

    taxonomy = LabelTaxonomy.from_file(taxonomy_file)
    leaves = taxonomy.leaves
    vectors = [
        [1.0 if leaf == "joy" else 0.0 for leaf in leaves],
        [1.0 if leaf != "joy" else 0.0 for leaf in leaves],
    ]
    Dataset.from_dict({"text": ["a", "b"], "hot": vectors}).to_parquet(tmp_path / "train.parquet")
    args = DataArguments(
        dataset=str(tmp_path / "train.parquet"),
        taxonomy=str(taxonomy_file),
        label_columns=["hot"],
        label_format="multi_hot",
        validation_split=None,
        test_split=None,
        validation_fraction=0.5,
    )
    data = load_recipe_data(args, seed=0)
    assert sorted(map(sorted, decoded(data, "train") + decoded(data, "validation"))) == sorted(
        [["joy", "positive"], sorted(["love", "anger", "positive", "negative"])]
    )
    Dataset.from_dict({"text": ["a", "b"], "joy": [1, 0], "anger": [1, 1]}).to_csv(tmp_path / "cols.csv")
    args = DataArguments(
        dataset=str(tmp_path / "cols.csv"),
        taxonomy=str(taxonomy_file),
        label_columns=["joy", "anger"],
        label_format="multi_hot",
        validation_split=None,
        test_split=None,
        validation_fraction=0.5,
    )
    data = load_recipe_data(args, seed=0)
    assert sorted(map(sorted, decoded(data, "train") + decoded(data, "validation"))) == [
        ["anger", "joy", "negative", "positive"],
        ["anger", "negative"],
    ]


def test_names_without_taxonomy_give_a_flat_one_and_subsampling_is_seeded(tmp_path):
    write_split_files(tmp_path / "data", ".jsonl")
    args = DataArguments(dataset=str(tmp_path / "data"), max_train_samples=2)
    first, second = load_recipe_data(args, seed=1), load_recipe_data(args, seed=1)
    assert first.taxonomy.labels == ["anger", "joy", "love"]
    assert len(first.train) == 2 and first.train["text"] == second.train["text"]


def test_missing_column_is_named_with_a_suggestion(tmp_path, taxonomy_file):
    write_split_files(tmp_path / "data", ".jsonl")
    args = DataArguments(dataset=str(tmp_path / "data"), taxonomy=str(taxonomy_file), label_columns=["label"])
    with pytest.raises(
        ConfigError, match=r"column 'label' is missing from the train split.*did you mean 'labels'"
    ):
        load_recipe_data(args)


def test_unknown_label_names_row_and_suggests_a_template(tmp_path):
    write_split_files(tmp_path / "data", ".jsonl")
    taxonomy = tmp_path / "prefixed.tsv"
    taxonomy.write_text("parent\tchild\nroot\temotion:joy\nroot\temotion:love\nroot\temotion:anger\n")
    args = DataArguments(dataset=str(tmp_path / "data"), taxonomy=str(taxonomy), label_template="emotions:{}")
    with pytest.raises(
        UnknownLabelError,
        match=r"unknown label 'emotions:joy' in row 0 of the train labels.*emotion:joy.*"
        r'data.label_template: "emotion:\{\}" \(it maps every label\)',
    ):
        load_recipe_data(args)
    args.label_template = "emotion:{}"
    assert len(load_recipe_data(args).train) == 4
    args.label_template = None
    assert decoded(load_recipe_data(args), "train")[0] == {"emotion:joy"}


def test_missing_split_and_unreadable_suffix(tmp_path, taxonomy_file):
    write_split_files(tmp_path / "data", ".jsonl")
    with pytest.raises(ConfigError, match=r"no split 'training'.*splits: \["):
        load_recipe_data(
            DataArguments(dataset=str(tmp_path / "data"), train_split="training", validation_split="training")
        )
    (tmp_path / "notes.xml").write_text("<a/>")
    with pytest.raises(ConfigError, match=r"cannot read data files with suffix \['.xml'\]"):
        load_recipe_data(DataArguments(data_files={"train": str(tmp_path / "notes.xml")}))


def test_shipped_goemotions_sample_loads_with_its_taxonomy(shipped_data):
    folder = shipped_data / "goemotions"
    args = DataArguments(
        dataset=str(folder),
        label_columns=["emotions"],
        label_template="emotion:{}",
        taxonomy=str(folder / "taxonomy_edges.tsv"),
        validation_split="dev",
        max_train_samples=50,
        max_eval_samples=20,
        max_test_samples=20,
    )
    data = load_recipe_data(args)
    assert data.taxonomy.num_labels == 4 + 7 + 28 and data.taxonomy.num_levels == 3
    assert (len(data.train), len(data.validation), len(data.test)) == (50, 20, 20)
    for row in decoded(data, "train"):
        emotions = [label for label in row if label.startswith("emotion:")]
        assert emotions and all(a in row for e in emotions for a in data.taxonomy.ancestors(e))


def test_a_named_split_missing_from_the_data_is_an_error_unless_null_asks_for_the_fallback(tmp_path):
    write_split_files(tmp_path / "data", ".jsonl")
    (tmp_path / "data" / "test_part.jsonl").unlink()
    args = DataArguments(dataset=str(tmp_path / "data"))
    with pytest.raises(ConfigError) as error:
        load_recipe_data(args)
    message = str(error.value)
    assert "no split 'test' (data.test_split)" in message
    assert "splits found: ['train', 'validation']" in message
    assert "'train_part.jsonl', 'validation_part.jsonl'" in message and "data.test_split: null" in message
    args.test_split = None
    data = load_recipe_data(args)
    assert data.test["text"] == data.validation["text"] == ["glad", "rage"]


def test_a_missing_validation_split_is_an_error_unless_it_is_held_out(tmp_path):
    write_split_files(tmp_path / "data", ".jsonl")
    args = DataArguments(dataset=str(tmp_path / "data"), validation_split="dev")
    with pytest.raises(ConfigError, match=r"no split 'dev' \(data.validation_split\).*validation_split: null"):
        load_recipe_data(args)
    args.validation_split, args.validation_fraction = None, 0.5
    data = load_recipe_data(args)
    assert (len(data.train), len(data.validation), len(data.test)) == (2, 2, 2)


@pytest.mark.parametrize(
    "name", ["./absent", "absent.jsonl", "data/absent/train", "~/hiercon-absent-folder", "{tmp}/absent"]
)
def test_a_missing_local_path_is_named_at_once_without_the_hub(tmp_path, monkeypatch, name):
    def no_hub(*args, **kwargs):
        raise AssertionError(f"the Hub was asked for {args[0]!r}")

    monkeypatch.setattr(recipe_data, "load_dataset", no_hub)
    source = name.format(tmp=tmp_path)
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_recipe_data(DataArguments(dataset=source))
    assert time.perf_counter() - started < 2.0


def test_a_recipe_file_names_its_missing_data_folder_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe_data, "load_dataset", lambda *args, **kwargs: pytest.fail("the Hub was asked"))
    config = tmp_path / "recipe.yaml"
    config.write_text("data:\n  dataset: data/goemotions/raw\n", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"data.dataset 'data/goemotions/raw' does not exist"):
        load_recipe(config)
    assert time.perf_counter() - started < 2.0


def test_label_encoding_has_a_deterministic_fingerprint(tmp_path, taxonomy_file):
    write_split_files(tmp_path / "data", ".jsonl")
    args = DataArguments(dataset=str(tmp_path / "data"), taxonomy=str(taxonomy_file))
    first, second = load_recipe_data(args), load_recipe_data(args)
    for split in ("train", "validation", "test"):
        assert first.splits()[split]._fingerprint == second.splits()[split]._fingerprint
    args.label_template = "{}"
    assert load_recipe_data(args).train._fingerprint != first.train._fingerprint


def test_an_owner_name_path_inside_an_existing_folder_is_local(tmp_path, monkeypatch):
    """``data/mine`` reads like a Hub id ``owner/name``; when ``data/`` is a folder beside the recipe file
    (or in the current directory) it is a missing local path, named at once without the Hub."""
    monkeypatch.setattr(recipe_data, "load_dataset", lambda *args, **kwargs: pytest.fail("the Hub was asked"))
    (tmp_path / "data").mkdir()
    config = tmp_path / "recipe.yaml"
    config.write_text("data:\n  dataset: data/mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data.dataset '.*data/mine' does not exist"):
        load_recipe(config)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'data/mine' does not exist"):
        load_recipe_data(DataArguments(dataset="data/mine"))
