"""The ``hiercon`` command: ``train``, ``check``, ``evaluate``, ``predict`` and ``push``.

hiercon train CONFIG.yaml [--section.key value ...]
hiercon check CONFIG.yaml [--section.key value ...]
hiercon evaluate MODEL_DIR --data PATH_OR_HUB_NAME [--split test] [--label-columns emotions] ...
hiercon predict MODEL_DIR "some text" ["more text" ...] [--top-k 5] [--max-length 128] [--json]
hiercon push MODEL_DIR --repo-id ORG/NAME [--private] [--stage1-dir FOLDER]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hiercon.errors import HierconError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hiercon", description="Label- and hierarchy-aware contrastive learning."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="run the two-stage recipe of a YAML config")
    train.add_argument("config", help="recipe YAML file (see configs/template.yaml)")
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.key value or section.key=value")

    check = commands.add_parser("check", help="validate a recipe (config, data, labels, loss, model) without training")
    check.add_argument("config", help="recipe YAML file (see configs/template.yaml)")
    check.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.key value or section.key=value")

    evaluate = commands.add_parser("evaluate", help="score a saved classifier on a labelled split")
    evaluate.add_argument("model_dir")
    evaluate.add_argument(
        "--data", required=True, help="data file, folder of split files, saved dataset or Hub name"
    )
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--text-column", default="text")
    evaluate.add_argument("--image-column", default=None)
    evaluate.add_argument("--label-columns", nargs="+", default=["labels"])
    evaluate.add_argument("--label-format", default="names", choices=["names", "ids", "multi_hot", "paths"])
    evaluate.add_argument("--label-template", default=None, help="e.g. 'emotion:{}'")
    evaluate.add_argument("--max-samples", type=int, default=None)
    evaluate.add_argument("--max-length", type=int, default=None)
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--output", default=None, help="write the metrics to this JSON file")

    predict = commands.add_parser("predict", help="predict the labels of texts (or image paths)")
    predict.add_argument("model_dir")
    predict.add_argument("inputs", nargs="+")
    predict.add_argument("--top-k", type=int, default=None, help="at most this many labels per input")
    predict.add_argument("--inconsistent", action="store_true", help="skip the hierarchy-consistent decoding")
    predict.add_argument(
        "--repair-scores",
        action="store_true",
        help="cap each label's score by its ancestors' before thresholding (drop a label whose ancestor scores lower)",
    )
    predict.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="truncate texts to this many tokens (default: the training max_length saved with the model)",
    )
    predict.add_argument("--json", action="store_true", help="print JSON lines")

    push = commands.add_parser("push", help="upload a model folder to the Hugging Face Hub")
    push.add_argument("model_dir")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--stage1-dir", default=None, help="also publish this stage-1 encoder folder")
    push.add_argument("--stage1-repo-id", default=None)
    return parser


def run_check(options: argparse.Namespace) -> int:
    import logging

    from hiercon.recipe.check import check
    from hiercon.recipe.config import load_recipe

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(check(load_recipe(options.config, options.overrides)))
    return 0


def run_evaluate(options: argparse.Namespace) -> int:
    from hiercon.recipe.arguments import DataArguments
    from hiercon.recipe.config import find_local
    from hiercon.recipe.evaluation import evaluate_model_folder

    found = find_local(options.data)
    data = DataArguments(
        dataset=str(found) if found is not None else options.data,
        text_column=None if options.image_column else options.text_column,
        image_column=options.image_column,
        label_columns=options.label_columns,
        label_format=options.label_format,
        label_template=options.label_template,
        train_split=options.split,
        validation_split=None,
        test_split=None,
    )
    metrics, per_label = evaluate_model_folder(
        options.model_dir, data, options.split, options.batch_size, options.max_length, options.max_samples
    )
    if options.output:
        with open(options.output, "w", encoding="utf-8") as handle:
            json.dump({"metrics": metrics, "per_label": per_label}, handle, indent=2)
    for key in ("micro_f1", "macro_f1", "consistent/macro_f1", "map", "hierarchical_f1", "consistency_rate"):
        if key in metrics:
            print(f"{key}: {metrics[key]:.4f}")
    return 0


def run_predict(options: argparse.Namespace) -> int:
    from hiercon.inference import MultiLabelPredictor

    predictor = MultiLabelPredictor.from_pretrained(
        options.model_dir,
        consistent=not options.inconsistent,
        max_length=options.max_length,
        repair_scores=options.repair_scores,
    )
    predictions = predictor(list(options.inputs), top_k=options.top_k)
    for text, labels in zip(options.inputs, predictions):
        if options.json:
            print(json.dumps({"input": text, "labels": labels}))
        else:
            shown = ", ".join(f"{entry['label']} ({entry['score']:.3f})" for entry in labels) or "(no label)"
            print(f"{text}\t{shown}")
    return 0


def run_push(options: argparse.Namespace) -> int:
    from hiercon.hub import PushError, push_model_folder

    try:
        result = push_model_folder(
            options.model_dir,
            options.repo_id,
            private=options.private,
            include_stage1=options.stage1_dir,
            stage1_repo_id=options.stage1_repo_id,
        )
    except (PushError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed to {result.repo_url}")
    if result.stage1_repo_url:
        print(f"Stage-1 encoder pushed to {result.stage1_repo_url}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hiercon`` console command; returns the exit status."""
    options = build_parser().parse_args(argv)
    if options.command == "train":
        from hiercon.recipe import main as recipe_main

        return recipe_main([options.config, *options.overrides], prog="hiercon train")
    handlers = {"check": run_check, "evaluate": run_evaluate, "predict": run_predict, "push": run_push}
    try:
        return handlers[options.command](options)
    except HierconError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
