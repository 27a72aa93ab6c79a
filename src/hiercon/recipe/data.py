"""Loading a recipe's data through ``datasets`` and turning its labels into taxonomy multi-hots.

Sources: a Hub dataset name, one data file (csv, tsv, json, jsonl, parquet; compressed is fine),
a folder of split files (``<split>*.<ext>``), ``data_files`` (split -> files) or a ``DatasetDict``
saved with ``save_to_disk``. Label columns hold label names, integer ids, multi-hot vectors or
taxonomy paths (``"positive/joy/amusement"``); every format becomes the column ``labels``: a
float multi-hot over the columns of the run's :class:`~hiercon.taxonomy.LabelSpace` (all taxonomy
nodes with ancestors switched on, or the leaves), encoded by :meth:`LabelSpace.encode`.

``data.taxonomy`` may name a hierarchy learned from the data instead of a file
(:mod:`hiercon.recipe.hierarchy_spec`): the labels are read as flat labels first, then placed as
leaves under clusters (``cooccurrence`` here, ``kmeans`` by :mod:`hiercon.recipe.label_hierarchy`)
and every split's ``labels`` is encoded again over the new taxonomy (:func:`relabelled`).

Raw label names that a taxonomy file holds only with a level prefix added or removed (data ``joy``,
node ``emotion:joy``) are mapped to their nodes when ``label_template`` is unset and each matches one
node (:mod:`hiercon.recipe.label_mapping`).

Integer ids name labels through ``label_template`` (``"class:{}"`` turns 3 into ``class:3``) when
it is set, else through the column's ``ClassLabel`` names, else they index the taxonomy's labels. Multi-hot vectors
follow the order of the taxonomy's labels or leaves, whichever has their length; several 0/1
columns are read as one label each, named after the column.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, load_dataset, load_from_disk
from datasets.fingerprint import Hasher

from hiercon.errors import ConfigError, UnknownLabelError
from hiercon.modality import input_modality
from hiercon.recipe.arguments import DataArguments
from hiercon.recipe.config import COMPRESSION_SUFFIXES, closest, looks_local
from hiercon.recipe.hierarchy_spec import COOCCURRENCE, HierarchySpec, parse_spec
from hiercon.recipe.label_mapping import LabelMapping, resolve_mapping, template_advice
from hiercon.taxonomy import LabelSpace, LabelTaxonomy

logger = logging.getLogger(__name__)

LABELS = "labels"
#: Cluster ids read from a data column (``stage1.clusters: {source: column}``), kept beside ``labels``.
CLUSTERS = "cluster_ids"
BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".arrow": "arrow",
}


@dataclass
class RecipeData:
    """Train, validation and test splits with a ``labels`` multi-hot column, and their taxonomy."""

    train: Dataset
    validation: Dataset
    test: Dataset
    label_space: LabelSpace
    input_column: str
    modality: str

    @property
    def taxonomy(self) -> LabelTaxonomy:
        return self.label_space.taxonomy

    def splits(self) -> dict[str, Dataset]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def file_suffix(path: str | Path) -> str:
    """The data suffix of ``path`` with any compression suffix removed (``.jsonl.gz`` -> ``.jsonl``)."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def builder_for(files: Iterable[str]) -> tuple[str, dict[str, Any]]:
    """The ``datasets`` builder name and its options for a set of data files of one format."""
    suffixes = {file_suffix(file) for file in files}
    unknown = suffixes - set(BUILDERS)
    if unknown:
        raise ConfigError(
            f"cannot read data files with suffix {sorted(unknown)}; use one of {', '.join(sorted(BUILDERS))}"
        )
    builders = {BUILDERS[suffix] for suffix in suffixes}
    if len(builders) > 1:
        raise ConfigError(f"data files mix formats {sorted(suffixes)}; give files of one format")
    options = {"delimiter": "\t"} if suffixes == {".tsv"} else {}
    return builders.pop(), options


def discover_split_files(folder: Path, split_names: Sequence[str]) -> dict[str, list[str]]:
    """Files in ``folder`` whose name starts with a split's name, e.g. ``dev_hier.jsonl.gz`` for ``dev``."""
    files = sorted(path for path in folder.iterdir() if path.is_file() and file_suffix(path) in BUILDERS)
    found: dict[str, list[str]] = {}
    for split in split_names:
        matching = [str(path) for path in files if path.name.startswith(split)]
        if matching:
            found[split] = matching
    if not found:
        raise ConfigError(
            f"folder {str(folder)!r} has no data files named after the splits {list(split_names)} "
            f"(found: {[path.name for path in files]})"
        )
    return found


def load_raw(args: DataArguments) -> DatasetDict:
    """Every split the configured source offers."""
    split_names = [name for name in (args.train_split, args.validation_split, args.test_split) if name]
    if args.data_files:
        files = {
            split: value if isinstance(value, list) else [value] for split, value in args.data_files.items()
        }
        return _load_files(files)
    source = args.dataset
    assert source is not None
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return load_from_disk(str(path))
        if (path / "state.json").is_file():
            return DatasetDict({args.train_split: load_from_disk(str(path))})
        return _load_files(discover_split_files(path, split_names))
    if path.is_file():
        return _load_files({args.train_split: [str(path)]})
    if looks_local(source):
        raise ConfigError(f"data.dataset {source!r} does not exist (no such file or folder)")
    try:
        return load_dataset(source, args.dataset_config)
    except Exception as error:  # the Hub client raises many kinds
        raise ConfigError(f"cannot load dataset {source!r}: {error}") from error


def _load_files(files: dict[str, list[str]]) -> DatasetDict:
    from datasets.exceptions import DatasetGenerationError

    builder, options = builder_for(file for group in files.values() for file in group)
    try:
        return load_dataset(builder, data_files=files, **options)
    except DatasetGenerationError as error:
        cause = error.__cause__ or error
        names = sorted(Path(file).name for group in files.values() for file in group)
        raise ConfigError(f"cannot read the data files {names} as {builder}: {cause}") from None


#: What ``null`` means for each optional split of the config.
SPLIT_FALLBACKS = {
    "validation_split": "hold out data.validation_fraction of train",
    "test_split": "measure the test metrics on the validation split",
}


def subsample(dataset: Dataset, limit: int | None, seed: int) -> Dataset:
    """A seeded random subset of at most ``limit`` rows (all rows when ``limit`` is None)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit)).flatten_indices()


def stable_part(value: Any) -> Any:
    """``value`` as a ``map`` fingerprint reads it: a label space or taxonomy by its content (its
    cached sparse tensors cannot be hashed), a dataset by its fingerprint, anything else as it is."""
    if isinstance(value, LabelSpace):
        return ("label_space", value.columns, value.taxonomy.to_dict())
    if isinstance(value, LabelTaxonomy):
        return value.to_dict()
    if isinstance(value, Dataset):
        return value._fingerprint
    return value


@functools.cache
def encoding_code() -> str:
    """A hash of the code that encodes labels, so that a changed encoder never reuses a cached result."""
    from hiercon.taxonomy import label_space

    return Hasher.hash([Path(__file__).read_bytes(), Path(label_space.__file__).read_bytes()])


def encoding_fingerprint(dataset: Dataset, reader: Any, *parts: Any) -> str:
    """A deterministic fingerprint for encoding ``dataset``'s labels with ``reader`` (and ``parts``)."""
    state = {key: stable_part(value) for key, value in sorted(vars(reader).items())}
    return Hasher.hash([encoding_code(), dataset._fingerprint, state, [stable_part(part) for part in parts]])


def source_files(args: DataArguments) -> list[str]:
    """The data files a folder source holds (names only), for messages about its splits."""
    folder = Path(str(args.dataset)) if args.dataset and not args.data_files else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir() if path.is_file() and file_suffix(path) in BUILDERS)


def missing_split_error(raw: DatasetDict, args: DataArguments, option: str, fallback: str) -> ConfigError:
    """The error for a split that ``data.<option>`` names and the data lacks: the splits (and files) found,
    and the ``null`` setting that asks for the fallback."""
    files = source_files(args)
    found = f"splits found: {list(raw)}" + (f" (files: {files})" if files else "")
    return ConfigError(
        f"the data has no split {getattr(args, option)!r} (data.{option}); {found}. Add that split, "
        f"or set data.{option}: null to {fallback}"
    )


def pick_splits(raw: DatasetDict, args: DataArguments, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """(train, validation, test). A split the config names must exist; ``validation_split: null`` holds
    ``validation_fraction`` of train out, ``test_split: null`` scores the test metrics on validation."""
    if args.train_split not in raw:
        raise ConfigError(
            f"dataset has no split {args.train_split!r} (data.train_split); splits: {list(raw)}"
        )
    for option, fallback in SPLIT_FALLBACKS.items():
        if getattr(args, option) is not None and getattr(args, option) not in raw:
            raise missing_split_error(raw, args, option, fallback)
    train = raw[args.train_split]
    if args.validation_split is not None:
        validation = raw[args.validation_split]
    else:
        logger.info("data.validation_split is null: holding out %.0f%% of train", 100 * args.validation_fraction)
        parts = train.train_test_split(test_size=args.validation_fraction, seed=seed)
        train, validation = parts["train"], parts["test"]
    if args.test_split is not None:
        test = raw[args.test_split]
    else:
        logger.info("data.test_split is null: the test metrics are measured on the validation split")
        test = validation
    return (
        subsample(train, args.max_train_samples, seed),
        subsample(validation, args.max_eval_samples, seed),
        subsample(test, args.max_test_samples, seed),
    )


def check_columns(dataset: Dataset, args: DataArguments, split: str) -> None:
    """Refuse a split that lacks the input column or a label column, naming it."""
    wanted = [args.text_column or args.image_column, *args.label_columns]
    available = list(dataset.column_names)
    for column in wanted:
        if column not in available:
            suggestion = closest(str(column), available)
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            raise ConfigError(
                f"column {column!r} is missing from the {split} split (columns: {available}){hint}"
            )


def class_names(dataset: Dataset, column: str) -> list[str] | None:
    """The ``ClassLabel`` names of a column of ids or of lists of ids, if it has them."""
    feature = dataset.features[column]
    inner = getattr(feature, "feature", None)
    for candidate in (feature, inner):
        if isinstance(candidate, ClassLabel):
            return list(candidate.names)
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    return [value]


class LabelReader:
    """Turns the raw values of one example's label columns into a set of taxonomy label names."""

    def __init__(
        self,
        args: DataArguments,
        label_space: LabelSpace,
        dataset: Dataset,
        split: str,
        mapping: LabelMapping | None = None,
    ) -> None:
        self.args = args
        self.space = label_space
        self.taxonomy = label_space.taxonomy
        self.split = split
        self.dataset = dataset
        self.mapping = mapping
        self.names_by_column = {column: class_names(dataset, column) for column in args.label_columns}
        self.node_space = LabelSpace(self.taxonomy, "nodes")

    def named(self, raw: Any) -> str:
        text = str(raw)
        if self.args.label_template:
            return self.args.label_template.format(text)
        return self.mapping(text) if self.mapping is not None else text

    def from_ids(self, column: str, values: list[Any]) -> list[str]:
        names = self.names_by_column[column]
        labels = []
        for value in values:
            index = int(value)
            if self.args.label_template:
                labels.append(self.named(index))
            elif names is not None:
                labels.append(self.named(names[index]))
            else:
                labels.append(self.space.names[self.space.index(index, f"in column {column!r}")])
        return labels

    def from_multi_hot(self, column: str, values: list[Any]) -> list[str]:
        if len(values) == 1 and len(self.args.label_columns) > 1:
            return [self.named(column)] if float(values[0]) > 0.5 else []
        row = np.asarray([values], dtype=np.float32)
        nodes = self.node_space.multi_hot(row, f"column {column!r}")
        return [self.taxonomy.label(int(i)) for i in np.flatnonzero(nodes[0])]

    def from_paths(self, values: list[Any]) -> list[str]:
        labels = []
        for value in values:
            parts = [part for part in str(value).split(self.args.path_separator) if part]
            if parts:
                labels.append(self.named(parts[-1]))
        return labels

    def template_hint(self) -> str:
        """The ``data.label_template`` that would turn every raw label of the split into a node, if any."""
        advice = template_advice(raw_label_names(self.args, [self.dataset]), self.taxonomy.labels)
        return f"; {advice}" if advice else ""

    def check(self, label: str, position: int) -> None:
        """Refuse a label outside the label space with the label space's own message (plus a template hint)."""
        try:
            self.space.index(label, f"in row {position} of the {self.split} labels")
        except UnknownLabelError as error:
            raise UnknownLabelError(f"{error}{self.template_hint()}") from None

    def read(self, row: dict[str, Any], position: int) -> list[str]:
        labels: list[str] = []
        for column in self.args.label_columns:
            values = as_list(row[column])
            if self.args.label_format == "names":
                labels.extend(self.named(value) for value in values)
            elif self.args.label_format == "ids":
                labels.extend(self.from_ids(column, values))
            elif self.args.label_format == "multi_hot":
                labels.extend(self.from_multi_hot(column, values))
            else:
                labels.extend(self.from_paths(values))
        for label in labels:
            self.check(label, position)
        return sorted(set(labels))


def raw_label_names(args: DataArguments, splits: Sequence[Dataset]) -> list[str]:
    """The label names the data writes, before ``data.label_template`` or a mapping applies: the values
    of name columns, the last parts of paths, the ``ClassLabel`` names of id columns, the names of 0/1
    label columns. Empty for formats that do not name labels (ids without names, multi-hot vectors)."""
    columns = args.label_columns
    names: set[str] = set()
    if args.label_format in ("names", "paths"):
        for split in splits:
            for column in columns:
                for row in split[column]:
                    names.update(str(value) for value in as_list(row))
        if args.label_format == "paths":
            names = {parts[-1] for parts in (name.split(args.path_separator) for name in names) if parts[-1]}
    elif args.label_format == "ids" and not args.label_template:
        for column in columns:
            names.update(class_names(splits[0], column) or [])
    elif args.label_format == "multi_hot" and len(columns) > 1:
        names.update(columns)
    return sorted(names)


def label_mapping_for(args: DataArguments, splits: Sequence[Dataset], taxonomy: LabelTaxonomy) -> LabelMapping | None:
    """How raw labels become ``taxonomy`` nodes without ``data.label_template``: a prefix-only mapping
    (:mod:`hiercon.recipe.label_mapping`), or None when the template is set or nothing needs mapping."""
    if args.label_template:
        return None
    return resolve_mapping(raw_label_names(args, splits), taxonomy.labels)


def taxonomy_from_file(args: DataArguments) -> bool:
    """Whether the run's taxonomy is read from a file (not built from the data's own labels)."""
    return bool(args.taxonomy) and parse_spec(args.taxonomy) is None


def encode_split(
    dataset: Dataset,
    args: DataArguments,
    label_space: LabelSpace,
    split: str,
    cluster_ids: dict[str, int] | None = None,
    cluster_column: str | None = None,
    mapping: LabelMapping | None = None,
) -> Dataset:
    """``dataset`` with a float ``labels`` multi-hot over the label space's columns (label columns dropped)
    and, with a ``cluster_column``, its values as integer ``cluster_ids`` (through ``cluster_ids``); raw
    label names pass through ``mapping`` when ``data.label_template`` is unset."""
    reader = LabelReader(args, label_space, dataset, split, mapping)
    columns = [column for column in args.label_columns if column in dataset.column_names]

    def encode(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, Any]:
        rows = [{column: batch[column][offset] for column in columns} for offset in range(len(indices))]
        label_sets = [reader.read(row, position) for row, position in zip(rows, indices)]
        encoded = {LABELS: label_space.encode(label_sets, f"the {split} labels").numpy().astype(np.float32).tolist()}
        if cluster_column is not None and cluster_ids is not None:
            encoded[CLUSTERS] = [cluster_ids[str(value)] for value in batch[cluster_column]]
        return encoded

    keep = {args.text_column or args.image_column}
    removed = [column for column in dataset.column_names if column not in keep]
    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=removed,
        num_proc=args.preprocessing_num_workers,
        new_fingerprint=encoding_fingerprint(dataset, reader, label_space, split, cluster_ids, cluster_column),
        desc=f"Encoding {split} labels",
    )


def load_taxonomy(args: DataArguments, splits: Sequence[Dataset]) -> LabelTaxonomy:
    """The configured taxonomy file, or a flat one built from the labels found in ``splits`` (also when
    ``data.taxonomy`` names a hierarchy learned from the data, which is built over these labels later)."""
    if taxonomy_from_file(args):
        return LabelTaxonomy.from_file(str(args.taxonomy), root=args.taxonomy_root)
    train = splits[0]
    if args.label_format == "ids" and len(args.label_columns) == 1:
        names = class_names(train, args.label_columns[0])
        if names is not None and not args.label_template:
            return LabelTaxonomy.from_labels(names)
    if args.label_format == "paths":
        paths = sorted(
            {
                str(value)
                for split in splits
                for column in args.label_columns
                for row in split[column]
                for value in as_list(row)
            }
        )
        if args.label_template:
            raise ConfigError("data.label_template needs data.taxonomy when labels are paths")
        return LabelTaxonomy.from_paths(paths, sep=args.path_separator)
    if args.label_format == "multi_hot" and len(args.label_columns) > 1:
        return LabelTaxonomy.from_labels(
            [args.label_template.format(c) if args.label_template else c for c in args.label_columns]
        )
    if args.label_format == "names":
        raw = raw_label_names(args, splits)
        names = {args.label_template.format(value) for value in raw} if args.label_template else set(raw)
        return LabelTaxonomy.from_labels(sorted(names))
    raise ConfigError(
        f"labels in format {args.label_format!r} need data.taxonomy (a taxonomy file) to name them"
    )


def relabelled(data: RecipeData, taxonomy: LabelTaxonomy) -> RecipeData:
    """``data`` with every split's flat ``labels`` encoded again over ``taxonomy``, a hierarchy whose
    leaves are the flat labels in their order; the label-space kind (nodes or leaves) is kept."""
    space = LabelSpace(taxonomy, data.label_space.columns)  # type: ignore[arg-type]
    leaves = LabelSpace(taxonomy, "leaves").names
    if leaves != data.label_space.names:
        raise ConfigError(
            f"the learned hierarchy's leaves {leaves[:5]} are not the data's labels {data.label_space.names[:5]}"
        )

    def encode(labels: list[list[float]]) -> dict[str, Any]:
        leaf_matrix = np.asarray(labels, dtype=np.float32).reshape(len(labels), len(leaves))
        return {LABELS: space.multi_hot(leaf_matrix, "the labels").astype(np.float32).tolist()}

    def encoded(split: str, dataset: Dataset) -> Dataset:
        return dataset.map(encode, batched=True, input_columns=[LABELS], desc=f"Encoding {split} labels")

    splits = {split: encoded(split, dataset) for split, dataset in data.splits().items()}
    return replace(data, label_space=space, **splits)


def cooccurrence_taxonomy(multi_hot: np.ndarray, names: Sequence[str], spec: HierarchySpec) -> LabelTaxonomy:
    """The labels ``names`` as leaves under clusters of labels that occur together in the rows of
    ``multi_hot`` (agglomerative clustering on ``1 - Jaccard``, one level per cluster count)."""
    from hiercon.taxonomy.data_driven import agglomerative_taxonomy

    counts = spec.counts(len(names))
    if not np.asarray(multi_hot).any():
        raise ConfigError(f"data.taxonomy {str(spec)!r} needs labelled training examples; the train split has none")
    return agglomerative_taxonomy(multi_hot, names, n_clusters=counts)


def prepare_input(dataset: Dataset, args: DataArguments) -> Dataset:
    """Image columns of file paths become decoded images."""
    if args.image_column and dataset.features[args.image_column].dtype == "string":
        from datasets import Image

        return dataset.cast_column(args.image_column, Image())
    return dataset


def cluster_id_map(column: str, splits: Sequence[Dataset]) -> dict[str, int]:
    """Integer ids of the values of a cluster column, in sorted order of the values over all splits."""
    for split in splits:
        if column not in split.column_names:
            raise ConfigError(f"stage1.clusters.column {column!r} is not a column of the data ({split.column_names})")
    values = sorted({str(value) for split in splits for value in split[column]})
    return {value: index for index, value in enumerate(values)}


def load_recipe_data(
    args: DataArguments, seed: int = 42, label_space: str = "nodes", cluster_column: str | None = None
) -> RecipeData:
    """Load, check, subsample and encode all splits over the taxonomy's ``label_space`` (``"nodes"`` or
    ``"leaves"``), with a ``cluster_column`` read as ``cluster_ids``; every problem surfaces before
    training starts."""
    raw = load_raw(args)
    train, validation, test = pick_splits(raw, args, seed)
    for split, dataset in (("train", train), ("validation", validation), ("test", test)):
        check_columns(dataset, args, split)
    space = LabelSpace(load_taxonomy(args, [train, validation, test]), label_space)  # type: ignore[arg-type]
    ids = cluster_id_map(cluster_column, [train, validation, test]) if cluster_column else None
    mapping = label_mapping_for(args, [train, validation, test], space.taxonomy) if taxonomy_from_file(args) else None
    encoded = {
        split: prepare_input(encode_split(dataset, args, space, split, ids, cluster_column, mapping), args)
        for split, dataset in (("train", train), ("validation", validation), ("test", test))
    }
    data = RecipeData(
        train=encoded["train"],
        validation=encoded["validation"],
        test=encoded["test"],
        label_space=space,
        input_column=args.text_column or args.image_column or "",
        modality=input_modality(args),
    )
    learned = parse_spec(args.taxonomy)
    if learned is not None and learned.method == COOCCURRENCE:
        train_labels = np.asarray(data.train[LABELS], dtype=np.float32).reshape(len(data.train), space.num_labels)
        data = relabelled(data, cooccurrence_taxonomy(train_labels, space.names, learned))
    return data


def load_labelled_split(
    args: DataArguments, split: str, label_space: LabelSpace | LabelTaxonomy, limit: int | None = None
) -> Dataset:
    """One split of a data source, checked and encoded over a given label space (a taxonomy: its
    ``"nodes"``), to evaluate a saved model."""
    label_space = LabelSpace.of(label_space)
    raw = load_raw(args)
    if split not in raw:
        raise ConfigError(f"dataset has no split {split!r}; splits: {list(raw)}")
    dataset = subsample(raw[split], limit, seed=0)
    check_columns(dataset, args, split)
    mapping = label_mapping_for(args, [dataset], label_space.taxonomy)
    return prepare_input(encode_split(dataset, args, label_space, split, mapping=mapping), args)
