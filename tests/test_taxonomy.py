"""LabelTaxonomy: loaders, exports and their round trips, graph queries, on a small hand-checked DAG."""

from __future__ import annotations

import json

import networkx as nx
import pytest
from datasets import ClassLabel, List, Sequence

from hiercon import LabelTaxonomy
from hiercon.errors import TaxonomyError, UnknownLabelError

# animal ─┬─ mammal ─┬─ dog ── puppy        plant (a root and a leaf)
#         │          └─ bat  (two parents: mammal and flyer)
#         ├─ bird ──── eagle
#         └─ flyer ─── bat
EDGES = [
    ("root", "animal"),
    ("root", "plant"),
    ("animal", "mammal"),
    ("animal", "bird"),
    ("animal", "flyer"),
    ("mammal", "dog"),
    ("mammal", "bat"),
    ("flyer", "bat"),
    ("bird", "eagle"),
    ("dog", "puppy"),
]
ORDER = ["animal", "plant", "mammal", "bird", "flyer", "dog", "bat", "eagle", "puppy"]
NESTED = {
    "animal": {"mammal": {"dog": ["puppy"], "bat": None}, "bird": ["eagle"], "flyer": "bat"},
    "plant": None,
}
PATHS = ["animal/mammal/dog/puppy", "animal/mammal/bat", "animal/bird/eagle", "animal/flyer/bat", "plant"]
CHILD_TO_PARENT = {
    "animal": None,
    "plant": None,
    "mammal": "animal",
    "bird": "animal",
    "flyer": "animal",
    "dog": "mammal",
    "bat": ["mammal", "flyer"],
    "eagle": "bird",
    "puppy": "dog",
}


@pytest.fixture(scope="module")
def dag() -> LabelTaxonomy:
    return LabelTaxonomy.from_edges(EDGES)


# ---------------------------------------------------------------------------------------------- loaders


def test_from_edges_drops_structural_root_and_keeps_first_appearance_order(dag):
    assert dag.labels == ORDER
    assert "root" not in dag
    assert dag.roots == ["animal", "plant"]
    assert len(dag) == 9 and dag.num_labels == 9 and list(dag) == ORDER


def test_root_none_keeps_root_as_a_label():
    kept = LabelTaxonomy.from_edges(EDGES, root=None)
    assert kept.roots == ["root"] and kept.num_levels == 5


@pytest.mark.parametrize(
    "build",
    [
        lambda: LabelTaxonomy.from_dict(NESTED),
        lambda: LabelTaxonomy.from_dict({"root": NESTED}),
        lambda: LabelTaxonomy.from_paths(PATHS),
        lambda: LabelTaxonomy.from_paths(["root." + path.replace("/", ".") for path in PATHS], sep="."),
        lambda: LabelTaxonomy.from_dict(CHILD_TO_PARENT),
        lambda: LabelTaxonomy.from_dict(CHILD_TO_PARENT, orient="child_to_parent"),
    ],
    ids=["nested", "nested-root", "paths", "paths-sep", "child-to-parent", "child-to-parent-orient"],
)
def test_every_dict_and_path_form_gives_the_same_structure(dag, build):
    assert build().same_structure(dag)


def test_nested_order_is_reading_order():
    assert LabelTaxonomy.from_dict(NESTED).labels == [
        "animal", "mammal", "dog", "puppy", "bat", "bird", "eagle", "flyer", "plant"
    ]


def test_dict_of_lists_is_nested_unless_told_child_to_parent():
    nested = LabelTaxonomy.from_dict({"positive": ["joy", "love"]})
    assert nested.children("positive") == ["joy", "love"]
    upward = LabelTaxonomy.from_dict({"positive": ["joy", "love"]}, orient="child_to_parent")
    assert upward.parents("positive") == ["joy", "love"]


def test_level_names_prefix_names_and_resolve_repeated_words():
    taxonomy = LabelTaxonomy.from_dict({"positive": {"joy": ["joy", "love"]}}, level_names=["s", "e", "f"])
    assert taxonomy.labels == ["s:positive", "e:joy", "f:joy", "f:love"]
    assert taxonomy.paths_to_root("f:joy") == [["s:positive", "e:joy", "f:joy"]]
    wrapped = LabelTaxonomy.from_dict({"tree": {"positive": {"joy": ["joy"]}}, "levels": ["s", "e", "f"], "x": 1})
    assert wrapped.labels == ["s:positive", "e:joy", "f:joy"]


def test_same_name_under_two_parents_at_one_depth_is_one_label_with_two_parents():
    taxonomy = LabelTaxonomy.from_paths(["a/x/leaf", "b/x/leaf"])
    assert taxonomy.parents("x") == ["a", "b"]
    assert taxonomy.children("x") == ["leaf"]


def test_from_labels_and_class_label_features_are_flat():
    names = ["cat", "dog", "bird"]
    for feature in (ClassLabel(names=names), List(ClassLabel(names=names)), Sequence(ClassLabel(names=names))):
        flat = LabelTaxonomy.from_class_label(feature)
        assert flat.labels == names and flat.roots == names and flat.leaves == names
        assert flat.num_levels == 1 and flat == LabelTaxonomy.from_labels(names)


def test_from_networkx_uses_node_order_and_drops_root():
    graph = nx.DiGraph([("root", "b"), ("b", "c"), ("root", "a")])
    taxonomy = LabelTaxonomy.from_networkx(graph)
    assert taxonomy.labels == ["b", "c", "a"] and taxonomy.roots == ["b", "a"]


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("edges.tsv", "parent\tchild\n" + "".join(f"{p}\t{c}\n" for p, c in EDGES), None),
        ("edges_no_header.tsv", "".join(f"{p}\t{c}\n" for p, c in EDGES), None),
        ("edges.csv", "parent,child\n" + "".join(f"{p},{c}\n" for p, c in EDGES), None),
        ("commented.txt", "# my taxonomy\n\n" + "".join(f"{p}\t{c}\n" for p, c in EDGES), None),
        ("nested.json", json.dumps(NESTED), None),
        ("paths.txt", "\n".join(PATHS) + "\n", None),
        ("paths.data", "\n".join(PATHS), "paths"),
    ],
)
def test_from_file_reads_edge_lists_json_and_paths(tmp_path, dag, name, text, fmt):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert LabelTaxonomy.from_file(path, format=fmt).same_structure(dag)


# ---------------------------------------------------------------------------------------------- exports


def test_to_dict_and_json_round_trip_exactly(dag, tmp_path):
    data = dag.to_dict()
    assert data["hiercon_taxonomy"] == 1 and data["labels"] == ORDER
    assert json.loads(json.dumps(data)) == data
    assert LabelTaxonomy.from_dict(data) == dag
    assert LabelTaxonomy.from_json(dag.to_json()) == dag
    dag.to_json(tmp_path / "taxonomy.json")
    assert LabelTaxonomy.from_file(tmp_path / "taxonomy.json") == dag
    shuffled = LabelTaxonomy(list(reversed(ORDER)), dag.to_edges())
    assert shuffled != dag and shuffled.same_structure(dag)
    assert LabelTaxonomy.from_dict(shuffled.to_dict()) == shuffled


def test_to_edges_round_trip(dag):
    assert set(dag.to_edges()) == {edge for edge in EDGES if edge[0] != "root"}
    assert LabelTaxonomy.from_edges(dag.to_edges()).same_structure(LabelTaxonomy.from_labels(["x"])) is False
    assert LabelTaxonomy.from_edges(dag.to_edges(root="root")) == dag


def test_networkx_round_trip(dag):
    graph = dag.to_networkx()
    assert list(graph.nodes) == ORDER
    assert graph.nodes["bat"] == {"id": 6, "depth": 2}
    assert LabelTaxonomy.from_networkx(graph) == dag


def test_tree_str_shows_multi_parent_label_under_each_parent(dag, capsys):
    expected = "\n".join(
        [
            "animal",
            "├── mammal",
            "│   ├── dog",
            "│   │   └── puppy",
            "│   └── bat  [parents: mammal, flyer]",
            "├── bird",
            "│   └── eagle",
            "└── flyer",
            "    └── bat  [parents: mammal, flyer]",
            "plant",
        ]
    )
    assert dag.tree_str() == expected
    dag.print_tree(max_depth=0)
    assert capsys.readouterr().out == "animal\nplant\n"


def test_tree_str_points_to_the_drawn_subtree_of_a_shared_node():
    taxonomy = LabelTaxonomy.from_edges([("a", "x"), ("b", "x"), ("x", "y")])
    assert taxonomy.tree_str().splitlines() == [
        "a", "└── x  [parents: a, b]", "    └── y", "b", "└── x  [parents: a, b]  (subtree shown under 'a')"
    ]


def test_equality_hash_and_repr(dag):
    twin = LabelTaxonomy.from_edges(EDGES)
    assert twin == dag and hash(twin) == hash(dag) and twin is not dag
    assert dag != LabelTaxonomy.from_edges(EDGES[:-1])
    assert repr(dag) == "LabelTaxonomy(9 labels, 4 levels, 2 roots, 4 leaves, 8 edges, 1 with several parents)"


# ---------------------------------------------------------------------------------------------- queries


def test_ids_and_names(dag):
    assert dag.index("bat") == 6 and dag.label(6) == "bat" and dag.index(6) == 6
    assert dag.label_to_id == {name: i for i, name in enumerate(ORDER)}
    assert dag.id_to_label[8] == "puppy"
    assert "bat" in dag and "cow" not in dag and 6 not in dag


def test_structure_queries(dag):
    assert dag.leaves == ["plant", "bat", "eagle", "puppy"]
    assert dag.parents("bat") == ["mammal", "flyer"] and dag.parents("animal") == []
    assert dag.children("animal") == ["mammal", "bird", "flyer"] and dag.children(6) == []
    assert dag.ancestors("bat") == ["animal", "mammal", "flyer"]
    assert dag.ancestors("puppy") == ["animal", "mammal", "dog"]
    assert dag.descendants("mammal") == ["dog", "bat", "puppy"]
    assert dag.descendants("animal") == ["mammal", "bird", "flyer", "dog", "bat", "eagle", "puppy"]
    assert dag.is_leaf("plant") and dag.is_root("plant") and not dag.is_leaf("flyer")


def test_depths_and_levels(dag):
    assert [dag.depth(name) for name in ORDER] == [0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert dag.num_levels == 4
    assert dag.level_labels(1) == ["mammal", "bird", "flyer"]
    assert dag.level_labels(-1) == ["puppy"]


def test_paths_to_root_lists_every_path_coarse_to_fine(dag):
    assert dag.paths_to_root("bat") == [["animal", "mammal", "bat"], ["animal", "flyer", "bat"]]
    assert dag.paths_to_root("puppy") == [["animal", "mammal", "dog", "puppy"]]
    assert dag.paths_to_root("plant") == [["plant"]]


@pytest.mark.parametrize(
    ("a", "b", "lca", "distance"),
    [
        ("puppy", "bat", "mammal", 3),
        ("bat", "eagle", "animal", 4),
        ("bat", "flyer", "flyer", 1),
        ("bat", "bat", "bat", 0),
        ("plant", "dog", None, 4),
        ("plant", "animal", None, 2),
    ],
)
def test_lowest_common_ancestor_and_tree_distance(dag, a, b, lca, distance):
    assert dag.lowest_common_ancestor(a, b) == lca
    assert dag.lowest_common_ancestor(b, a) == lca
    assert dag.tree_distance(a, b) == distance == dag.tree_distance(b, a)


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: LabelTaxonomy.from_edges([("a", "b"), ("b", "c"), ("c", "a")]), TaxonomyError,
         r"cycle in taxonomy: a -> b -> c -> a"),
        (lambda: LabelTaxonomy.from_edges([("a", "b"), ("b", "b")]), TaxonomyError,
         r"self-loop on label 'b'"),
        (lambda: LabelTaxonomy.from_edges([("a", "b"), ("c", "d"), ("a", "b")]), TaxonomyError,
         r"duplicate edge a -> b \(edge #0 and edge #2\)"),
        (lambda: LabelTaxonomy.from_edges([]), TaxonomyError, r"empty taxonomy"),
        (lambda: LabelTaxonomy.from_labels([]), TaxonomyError, r"empty taxonomy"),
        (lambda: LabelTaxonomy.from_edges([("root", "root")]), TaxonomyError, r"self-loop on label 'root'"),
        (lambda: LabelTaxonomy.from_labels(["a", "b", "a"]), TaxonomyError,
         r"duplicate label 'a' \(positions 0 and 2\)"),
        (lambda: LabelTaxonomy.from_labels(["a", None]), TaxonomyError, r"got None"),
        (lambda: LabelTaxonomy.from_labels(["a", "  "]), TaxonomyError, r"empty label name"),
        (lambda: LabelTaxonomy.from_edges([("a", "b", "c")]), TaxonomyError, r"\(parent, child\) pair"),
        (lambda: LabelTaxonomy(["cat", "dog"], [("cat", "dgo")]), UnknownLabelError,
         r"unknown label 'dgo'.*did you mean 'dog'"),
        (lambda: LabelTaxonomy.from_dict({"joy": ["joy"]}), TaxonomyError,
         r"ambiguous label 'joy': it appears at depth 0 \(at the top\) and at depth 1 \(under 'joy'\)"),
        (lambda: LabelTaxonomy.from_paths(["a/b", "b/c"]), TaxonomyError, r"ambiguous label 'b'"),
        (lambda: LabelTaxonomy.from_paths(["a//b"]), TaxonomyError, r"empty segment in path 'a//b'"),
        (lambda: LabelTaxonomy.from_dict({"a": ["b"]}, level_names=["x"]), TaxonomyError,
         r"'b' sits at depth 1 but only 1 level names"),
        (lambda: LabelTaxonomy.from_edges([("x", "root"), ("root", "a")]), TaxonomyError,
         r"structural root 'root' has a parent 'x'"),
        (lambda: LabelTaxonomy.from_dict({"hiercon_taxonomy": 2, "labels": ["a"], "edges": []}), TaxonomyError,
         r"unsupported hiercon_taxonomy version 2"),
        (lambda: LabelTaxonomy.from_dict({"a": 1.5}), TaxonomyError, r"got 1.5 under 'a'"),
        (lambda: LabelTaxonomy.from_dict({"a": "b"}, orient="sideways"), TaxonomyError, r"orient must be one"),
        (lambda: LabelTaxonomy.from_dict(["a"]), TaxonomyError, r"expects a mapping, got list"),
        (lambda: LabelTaxonomy.from_networkx(nx.Graph([("a", "b")])), TaxonomyError, r"needs a directed graph"),
        (lambda: LabelTaxonomy.from_networkx(nx.MultiDiGraph([("a", "b"), ("a", "b")])), TaxonomyError,
         r"duplicate edge a -> b"),
        (lambda: LabelTaxonomy.from_class_label(["a"]), TaxonomyError, r"expects a datasets ClassLabel"),
    ],
)
def test_bad_input_is_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_unknown_label_queries_suggest_the_closest(dag):
    with pytest.raises(UnknownLabelError, match=r"unknown label 'puppi' \(did you mean 'puppy'\?\)"):
        dag.parents("puppi")
    with pytest.raises(KeyError):
        dag.index("zebra")
    with pytest.raises(UnknownLabelError, match=r"label id 9 is out of range \[0, 9\)"):
        dag.label(9)
    with pytest.raises(TaxonomyError, match=r"level 4 is out of range"):
        dag.level_labels(4)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("parent\tchild\na\tb\na\tb\tc\n", r"bad\.tsv:3: malformed line 'a\\tb\\tc'"),
        ("parent\tchild\na\tb\nc\t\n", r"bad\.tsv:3: malformed line .c.: expected .parent<TAB>child."),
        ("a\tb\nb\tc\na\tb\n", r"duplicate edge a -> b \(.*bad\.tsv:1 and .*bad\.tsv:3\)"),
        ("a\tb\nb\tc\nc\ta\n", r"cycle in taxonomy: a -> b -> c -> a"),
        ("a\tb\nb\tb\n", r"self-loop on label 'b'.*bad\.tsv:2"),
        ("# nothing\n\n", r"empty taxonomy"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, text, match):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TaxonomyError, match=match):
        LabelTaxonomy.from_file(path)


def test_bad_json_file_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"a": [\n"b",,]}', encoding="utf-8")
    with pytest.raises(TaxonomyError, match=r"broken\.json:2: invalid JSON"):
        LabelTaxonomy.from_file(path)
    with pytest.raises(TaxonomyError, match=r"missing\.tsv does not exist"):
        LabelTaxonomy.from_file(tmp_path / "missing.tsv")
