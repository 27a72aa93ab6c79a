"""How LabelTaxonomy scales: random trees and DAGs of 1k, 10k and 100k labels.

For each size and shape it prints the time to build the validated taxonomy (``from_edges``), the time to
build the ancestor structures the losses read (sparse ancestor matrix, levels, leaf ids, leaf paths), the
number of ancestor entries, and peak memory: the traced peak of Python and numpy allocations during one
build (tracemalloc, in a second untimed pass) and the process's maximum resident set size so far.

Random tree: label ``i`` hangs under a uniformly drawn earlier label (a random recursive tree, depth about
``ln n``). Random DAG: the same tree plus a second, different earlier parent for 10% of the labels.

Usage: ``python benchmarks/taxonomy_scale.py [--quick] [--sizes 1000 10000] [--seed 0]``
(``--quick`` runs 1k and 10k only).
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc

import numpy as np

from hiercon.taxonomy import LabelTaxonomy

DAG_SHARE = 0.1


def random_edges(size: int, dag: bool, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Edges of a random recursive tree over ``size`` labels, plus second parents when ``dag``."""
    children = np.arange(1, size)
    parents = (rng.random(size - 1) * children).astype(np.int64)
    pairs = list(zip(parents.tolist(), children.tolist()))
    if dag:
        chosen = rng.choice(np.arange(2, size), size=int(DAG_SHARE * size), replace=False)
        first_parent = dict(zip(children.tolist(), parents.tolist()))
        for child in chosen.tolist():
            second = int(rng.integers(0, child - 1))
            second = second if second != first_parent[child] else child - 1
            pairs.append((second, child))
    return [(f"n{parent}", f"n{child}") for parent, child in pairs]


def build(edges: list[tuple[str, str]]) -> tuple[LabelTaxonomy, float, float]:
    start = time.perf_counter()
    taxonomy = LabelTaxonomy.from_edges(edges)
    built = time.perf_counter()
    _ = taxonomy.ancestor_matrix_sparse, taxonomy.levels, taxonomy.leaf_ids, taxonomy.leaf_paths
    return taxonomy, built - start, time.perf_counter() - built


def traced_peak_mb(edges: list[tuple[str, str]]) -> float:
    gc.collect()
    tracemalloc.start()
    build(edges)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def max_rss_mb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="run 1k and 10k labels only")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="label counts (default 1k 10k 100k)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [1_000, 10_000, 100_000])
    rng = np.random.default_rng(args.seed)
    header = (
        f"{'shape':<5} {'labels':>8} {'edges':>8} {'levels':>6} {'build s':>8} {'ancestors s':>11} "
        f"{'anc. entries':>12} {'traced peak MB':>14} {'max RSS MB':>10}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        for dag in (False, True):
            edges = random_edges(size, dag, rng)
            taxonomy, build_s, ancestors_s = build(edges)
            entries = taxonomy.ancestor_matrix_sparse._nnz()
            peak = traced_peak_mb(edges)
            print(
                f"{'DAG' if dag else 'tree':<5} {taxonomy.num_labels:>8,} {len(edges):>8,} "
                f"{taxonomy.num_levels:>6} {build_s:>8.2f} {ancestors_s:>11.2f} {entries:>12,} "
                f"{peak:>14.1f} {max_rss_mb():>10.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
