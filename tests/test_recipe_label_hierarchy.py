"""Data-driven label hierarchies in the recipe: ``data.taxonomy: cooccurrence`` and ``{kmeans: [k]}``
build the hierarchy above the labels of data that has no taxonomy file, the hierarchical losses train on
it through ``hiercon train``, and the saved classifier records it; bad specs are refused before a run
writes anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
from recipe_toy import GROUPS, toy_config

from hiercon.cli import main as cli_main
from hiercon.errors import ConfigError
from hiercon.recipe.config import load_recipe
from hiercon.recipe.data import LABELS, load_recipe_data
from hiercon.recipe.hierarchy_spec import HierarchySpec, parse_spec
from hiercon.recipe.label_hierarchy import label_vector_taxonomy, label_vectors
from hiercon.taxonomy import LabelTaxonomy

SHORT = {"max_steps": 2, "per_device_train_batch_size": 8, "save_steps": 2, "logging_steps": 1}
EMOTIONS = sorted(GROUPS)


def saved_taxonomy(config) -> LabelTaxonomy:
    record = json.loads((config.parent / "model" / "config.json").read_text())["hiercon"]
    return LabelTaxonomy.from_dict(record["taxonomy"])


def assert_labels_under_clusters(taxonomy: LabelTaxonomy, clusters: int) -> None:
    """The emotions are the leaves, each under one of ``clusters`` cluster nodes ``l0:c<k>``."""
    assert sorted(taxonomy.label(int(i)) for i in taxonomy.leaf_ids) == EMOTIONS
    parents = {emotion: taxonomy.parents(emotion) for emotion in EMOTIONS}
    assert all(len(names) == 1 and names[0].startswith("l0:c") for names in parents.values()), parents
    assert len({names[0] for names in parents.values()}) == clusters


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.parametrize(
    ("taxonomy", "clusters", "levels"),
    [("cooccurrence", 2, 2), ({"kmeans": [2]}, 2, 2), ({"cooccurrence": [3, 2]}, 3, 3)],
)
def test_himulcone_trains_on_a_learned_hierarchy(tmp_path, taxonomy, clusters, levels) -> None:
    config = toy_config(
        tmp_path,
        data={"taxonomy": taxonomy},
        stage1={"loss": "himulcone", **SHORT},
        stage2={**SHORT, "max_steps": 1},
    )
    assert cli_main(["train", str(config)]) == 0
    learned = saved_taxonomy(config)
    assert_labels_under_clusters(learned, clusters)
    assert learned.num_levels == levels
    metrics = json.loads((config.parent / "model" / "metrics.json").read_text())
    assert 0.0 <= metrics["macro_f1"] <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ranked", "cl_infonce", "hcsc"])
def test_the_other_hierarchical_losses_train_on_a_cooccurrence_hierarchy(tmp_path, loss) -> None:
    config = toy_config(
        tmp_path,
        data={"taxonomy": "cooccurrence"},
        stage1={"loss": loss, **SHORT},
        stage2={**SHORT, "max_steps": 1, "label_space": "leaves"},
    )
    assert cli_main(["train", str(config)]) == 0
    assert_labels_under_clusters(saved_taxonomy(config), 2)


def test_cooccurrence_groups_labels_that_occur_together(tmp_path) -> None:
    """Labels that only ever occur in pairs end in the same cluster; the labels become multi-hots over
    the learned nodes (ancestors switched on) with the data's label-space kind."""
    config = toy_config(tmp_path, data={"dataset": "pairs", "taxonomy": "cooccurrence"})
    data_dir = tmp_path / "pairs"
    data_dir.mkdir()
    pairs = [["joy", "love"], ["anger", "fear"]]
    rows = [{"text": f"text {index}", "labels": pairs[index % 2]} for index in range(12)]
    for split in ("train", "validation", "test"):
        (data_dir / f"{split}.jsonl").write_text(
            "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
        )
    arguments = load_recipe(config)
    data = load_recipe_data(arguments.data, label_space="nodes")
    taxonomy = data.taxonomy
    assert taxonomy.parents("joy") == taxonomy.parents("love") != taxonomy.parents("anger")
    assert taxonomy.parents("anger") == taxonomy.parents("fear")
    assert data.label_space.names == list(taxonomy.labels)
    first = np.asarray(data.train[LABELS][0])
    on = {data.label_space.names[i] for i in np.flatnonzero(first)}
    assert on == {"joy", "love", *taxonomy.parents("joy")}
    leaves = load_recipe_data(arguments.data, label_space="leaves")
    assert leaves.label_space.names == ["anger", "fear", "joy", "love"]
    assert leaves.taxonomy == taxonomy


# ---------------------------------------------------------------------------------------------- k-means


def test_label_vectors_average_the_normalised_embeddings_of_their_examples() -> None:
    embeddings = np.array([[2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    multi_hot = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
    vectors = label_vectors(embeddings, multi_hot)
    np.testing.assert_allclose(vectors[0], [0.5, 0.5])
    np.testing.assert_allclose(vectors[1], [0.0, 1.0])
    np.testing.assert_allclose(vectors[2], [1 / 3, 2 / 3])  # no examples: the mean of all


def test_kmeans_puts_two_groups_of_labels_under_two_clusters() -> None:
    rng = np.random.default_rng(0)
    near_x = rng.normal([4.0, 0.0, 0.0], 0.2, size=(30, 3))
    near_y = rng.normal([0.0, 4.0, 0.0], 0.2, size=(30, 3))
    embeddings = np.concatenate([near_x, near_y])
    names = ["a", "b", "c", "d", "e"]
    multi_hot = np.zeros((60, 5), dtype=np.float32)
    multi_hot[:30, 0] = 1
    multi_hot[:30:2, 2] = 1
    multi_hot[30:, 1] = 1
    multi_hot[30::3, 3] = 1
    multi_hot[31::2, 4] = 1
    taxonomy = label_vector_taxonomy(embeddings, multi_hot, names, HierarchySpec("kmeans", (2,)))
    assert list(taxonomy.labels[:5]) == names
    assert taxonomy.parents("a") == taxonomy.parents("c")
    assert taxonomy.parents("b") == taxonomy.parents("d") == taxonomy.parents("e")
    assert taxonomy.parents("a") != taxonomy.parents("b")
    assert sorted(taxonomy.roots) == ["l0:c0", "l0:c1"]


# ---------------------------------------------------------------------------------------------- the config


def test_a_mapping_in_the_file_or_on_the_command_line_becomes_the_string_spec(tmp_path) -> None:
    config = toy_config(tmp_path, data={"taxonomy": {"kmeans": [3, 2]}})
    assert load_recipe(config).data.taxonomy == "kmeans:3,2"
    assert load_recipe(config, ["--data.taxonomy", "{cooccurrence: 2}"]).data.taxonomy == "cooccurrence:2"
    assert load_recipe(config, ["--data.taxonomy", "cooccurrence"]).data.taxonomy == "cooccurrence"
    assert parse_spec("kmeans:3,2") == HierarchySpec("kmeans", (3, 2))
    assert (
        parse_spec(load_recipe(toy_config(tmp_path, data={"taxonomy": "data/taxonomy.tsv"})).data.taxonomy)
        is None
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"taxonomy": "coocurrence"}, "did you mean 'cooccurrence'"),
        ({"taxonomy": {"kmean": [2]}}, "unknown hierarchy method 'kmean'"),
        ({"taxonomy": {"kmeans": [2, 3]}}, "strictly decreasing"),
        ({"taxonomy": "kmeans:2,x"}, "integers separated by commas"),
        ({"taxonomy": {"kmeans": [2], "cooccurrence": [2]}}, "names one method"),
        ({"taxonomy": "kmeans", "label_format": "paths"}, "labels given as paths carry their own hierarchy"),
    ],
)
def test_a_bad_spec_is_a_config_error(tmp_path, data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_recipe(toy_config(tmp_path, data=data))


@pytest.mark.parametrize("taxonomy", ["kmeans:4", {"cooccurrence": [5, 2]}])
def test_too_many_clusters_are_refused_before_anything_is_written(tmp_path, capsys, taxonomy) -> None:
    config = toy_config(tmp_path, data={"taxonomy": taxonomy})
    assert cli_main(["train", str(config)]) == 2
    assert "every cluster count must be below the number of labels (4)" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and not (tmp_path / "model-work").exists()
