"""``hiercon check``: the summary of a valid recipe, and each bad input refused with its message, no
stack trace, and nothing written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from recipe_toy import toy_config

from hiercon.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO = REPO_ROOT / "configs" / "goemotions_demo.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """A toy recipe file (tiny BERT, 2-level taxonomy over 4 emotions) in its own folder."""
    root = tmp_path_factory.mktemp("check")
    toy_config(root)
    return root / "recipe.yaml"


def write_rows(folder: Path, rows: list[dict], splits=("train", "validation", "test")) -> Path:
    """The same ``rows`` as every split's jsonl file in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        (folder / f"{split}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
        )
    return folder


def checked(argv: list[str], capsys) -> tuple[int, str, str]:
    status = main(["check", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def refused(argv: list[str], capsys, message: str) -> None:
    """``hiercon check`` exits with status 2 and prints ``message`` (a regex) without a stack trace."""
    status, out, err = checked(argv, capsys)
    assert status == 2, out
    assert re.search(message, err), err
    assert "Traceback" not in err and "hiercon check:" not in out


def test_demo_config_summary(tmp_path, capsys) -> None:
    output = tmp_path / "demo-model"
    status, out, _ = checked([str(DEMO), "--output.output_dir", str(output)], capsys)
    assert status == 0
    assert "3 levels (level 0: 4, level 1: 7, level 2: 28); 39 nodes" in out
    assert "label space: nodes (39 columns: every taxonomy node, ancestors switched on; 28 leaves)" in out
    for split, rows in (("train", 1600), ("validation", 600), ("test", 1200)):
        line = re.search(
            rf"  {split}: {rows} rows; 39/39 labels seen; (\d\.\d\d) labels per example \((\d\.\d\d) leaves\)",
            out,
        )
        assert line, out
        assert 1.0 < float(line[2]) < 1.5 and 3.0 < float(line[1]) < 4.0
    assert "encoder: all-MiniLM-L6-v2 (bert, hidden size 384)" in out
    assert "stage-1 loss: reg" in out
    assert not output.exists() and not output.with_name("demo-model-work").exists()


def test_demo_without_label_template_names_the_template(tmp_path, capsys) -> None:
    refused(
        [str(DEMO), "--output.output_dir", str(tmp_path / "m"), "--data.label_template", "null"],
        capsys,
        r"data labels match several taxonomy nodes once a level prefix is removed \(.*'joy' -> ekman:joy, emotion:joy"
        r'.*set data.label_template: "emotion:\{\}" \(it maps every label\)',
    )


def test_summary_warns_of_labels_without_evaluation_examples(toy, capsys) -> None:
    status, out, _ = checked([str(toy), "--data.max_eval_samples", "1"], capsys)
    assert status == 0
    assert re.search(r"  validation: 1 rows; [1-5]/7 labels seen", out)
    assert re.search(
        r"warning: \d labels have no validation example, so their validation scores are undefined", out
    )
    assert "warning: " not in out.split("splits:")[0]


def test_learned_hierarchy_is_reported_as_learned_at_training_time(toy, capsys) -> None:
    status, out, _ = checked(
        [str(toy), "--data.taxonomy", "{kmeans: [2]}", "--stage1.loss", "himulcone"], capsys
    )
    assert status == 0
    assert "taxonomy: learned at training time by k-means ('kmeans:2')" in out
    assert "4 data labels as leaves" in out
    assert re.search(r"  train: 48 rows; 4/4 labels seen", out)


def test_unprefixed_labels_are_mapped_and_logged(toy, tmp_path, capsys, caplog) -> None:
    taxonomy = tmp_path / "prefixed.tsv"
    edges = [
        ("root", "group:pos"),
        ("root", "group:neg"),
        ("group:pos", "emotion:joy"),
        ("group:pos", "emotion:curiosity"),
    ]
    edges += [("group:neg", "emotion:sadness"), ("group:neg", "emotion:anger")]
    taxonomy.write_text("".join(f"{parent}\t{child}\n" for parent, child in edges), encoding="utf-8")
    with caplog.at_level("INFO", logger="hiercon.recipe.label_mapping"):
        status, out, _ = checked([str(toy), "--data.taxonomy", str(taxonomy)], capsys)
    assert status == 0
    assert "label space: nodes (6 columns" in out
    assert "as data.label_template 'emotion:{}': anger -> emotion:anger" in caplog.text


def test_refuses_an_unknown_label_with_a_suggestion(toy, tmp_path, capsys) -> None:
    data = write_rows(
        tmp_path / "data", [{"text": "w1 w2", "labels": ["joi"]}, {"text": "w3", "labels": ["anger"]}]
    )
    refused(
        [str(toy), "--data.dataset", str(data)],
        capsys,
        r"unknown label 'joi' in row 0 of the train labels \(did you mean 'joy'\?\)",
    )


def test_refuses_a_data_file_it_cannot_parse(toy, tmp_path) -> None:
    data = write_rows(tmp_path / "data", [{"text": "w1", "labels": ["joy"]}])
    (data / "train.jsonl").write_text('{"text": "w1", "labels": ["joy"]}\n{"text": broken\n', encoding="utf-8")
    # In a process of its own: the datasets library logs the parse error through a handler it bound
    # to the stderr of whichever test first imported it.
    command = [sys.executable, "-m", "hiercon.cli", "check", str(toy), "--data.dataset", str(data)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout
    message = r"error: cannot read the data files \['test.jsonl', 'train.jsonl', 'validation.jsonl'\] as json: .*parse"
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_refuses_a_cycle_in_the_taxonomy(toy, tmp_path, capsys) -> None:
    taxonomy = tmp_path / "cycle.tsv"
    taxonomy.write_text("parent\tchild\nroot\tpositive\npositive\tjoy\njoy\tpositive\n", encoding="utf-8")
    refused([str(toy), "--data.taxonomy", str(taxonomy)], capsys, r"cycle in taxonomy: .*positive.*joy")


def test_refuses_a_missing_column(toy, capsys) -> None:
    refused(
        [str(toy), "--data.label_columns", "[label]"],
        capsys,
        r"column 'label' is missing from the train split \(columns: \[.*\]\); did you mean 'labels'\?",
    )


def test_refuses_a_missing_split(toy, capsys) -> None:
    refused(
        [str(toy), "--data.train_split", "training"],
        capsys,
        r"dataset has no split 'training' \(data.train_split\)",
    )


def test_refuses_a_missing_test_split(toy, capsys) -> None:
    refused(
        [str(toy), "--data.test_split", "exam"],
        capsys,
        r"the data has no split 'exam' \(data.test_split\); splits found: .*set data.test_split: null",
    )


def test_refuses_an_unknown_config_key(toy, capsys) -> None:
    refused(
        [str(toy), "--stage1.learning_rat", "1e-4"],
        capsys,
        r"unknown key 'learning_rat' in section 'stage1'; did you mean 'learning_rate'\?",
    )


def test_refuses_a_cluster_loss_without_levels_to_cluster(toy, capsys) -> None:
    refused(
        [str(toy), "--data.taxonomy", "null", "--stage1.loss", "cl_infonce"],
        capsys,
        r"stage1.clusters.source 'level' needs a taxonomy with at least two levels; this one is flat",
    )


def test_refuses_multi_hot_labels_of_the_wrong_width(toy, tmp_path, capsys) -> None:
    data = write_rows(
        tmp_path / "data", [{"text": "w1", "labels": [1, 0, 0]}, {"text": "w2", "labels": [0, 1, 0]}]
    )
    refused(
        [str(toy), "--data.dataset", str(data), "--data.label_format", "multi_hot"],
        capsys,
        r"must be multi-hot over the 7 taxonomy nodes or its 4 leaves",
    )


def test_refuses_a_local_data_path_that_does_not_exist(toy, capsys) -> None:
    refused(
        [str(toy), "--data.dataset", "./no_such_folder"],
        capsys,
        r"data.dataset './no_such_folder' does not exist",
    )


def test_refuses_a_negative_temperature(toy, capsys) -> None:
    refused(
        [str(toy), "--stage1.temperature", "-0.1"], capsys, r"stage1.temperature must be positive, got -0.1"
    )


def test_refuses_an_encoder_it_cannot_load(toy, tmp_path, capsys) -> None:
    (tmp_path / "empty_model").mkdir()
    refused(
        [str(toy), "--model.model_name_or_path", str(tmp_path / "empty_model")],
        capsys,
        r"cannot load the (text processor|encoder) of '.*empty_model'",
    )


def test_refuses_an_output_folder_that_holds_files(toy, tmp_path, capsys) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "kept.txt").write_text("x")
    refused(
        [str(toy), "--output.output_dir", str(tmp_path / "model")],
        capsys,
        r"output.output_dir '.*model' already holds files; set output.overwrite_output_dir: true",
    )
    assert [path.name for path in (tmp_path / "model").iterdir()] == ["kept.txt"]
