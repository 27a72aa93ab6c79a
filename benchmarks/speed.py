"""Speed benchmark: what hiercon's stage 1 costs per step, and inference.

1. **Step time**: one optimizer step of stage 1 (SupCon-ANY and HiMulConE, two dropout views)
   against one plain BCE fine-tuning step at the same batch size. The three step kinds are run
   round-robin, so that load from other processes hits them alike; medians are reported.
2. **Inference**: ``transformers.pipeline("text-classification")`` throughput of a classifier
   built by ``hiercon.build_classifier`` against the same architecture built plainly by
   ``AutoModelForSequenceClassification`` (the hiercon artifact is a plain model: expect ~1).
3. **Loss scaling**: the table of ``benchmarks/results/losses.md`` (written by the losses
   benchmark), repeated in the report when present.

    python benchmarks/speed.py            # all-MiniLM-L6-v2, batch 32
    python benchmarks/speed.py --quick    # tiny BERT, a few steps
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RESULTS_DIR,
    SHIPPED_GOEMOTIONS,
    emotion_label_sets,
    encoder_path,
    environment,
    goemotions_label_space,
    load_goemotions,
    markdown_table,
    seeded_subset,
    set_seed,
    write_json,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=SHIPPED_GOEMOTIONS)
    parser.add_argument("--model", default=None, help="encoder folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per kind")
    parser.add_argument("--inference-texts", type=int, default=512)
    parser.add_argument("--inference-rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.max_length, args.steps, args.inference_texts, args.inference_rounds = 8, 24, 2, 32, 1
    return args


# --------------------------------------------------------------------------- 1. step time


def bce_step_fn(encoder: str, emotions, tokenizer, rows, args) -> Callable[[], None]:
    """One plain BCE fine-tuning step over the 28 emotions (``emotions``: hiercon's label space of the leaves)."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        encoder, num_labels=emotions.num_labels, problem_type="multi_label_classification"
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = tokenizer([r["text"] for r in rows], truncation=True, max_length=args.max_length,
                       padding=True, return_tensors="pt")
    targets = emotions.encode(emotion_label_sets(rows))

    def step() -> None:
        loss = model(**inputs, labels=targets).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def contrastive_step_fn(encoder: str, loss, labels: torch.Tensor, tokenizer, rows, args) -> Callable[[], None]:
    from hiercon import ContrastiveModel
    from hiercon.modeling.views import DropoutViews, split_views

    model = ContrastiveModel.from_encoder(encoder)
    model.train()
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(loss.parameters()), lr=1e-5)
    inputs = DropoutViews(2)(dict(tokenizer([r["text"] for r in rows], truncation=True,
                                            max_length=args.max_length, padding=True, return_tensors="pt")))

    def step() -> None:
        embeddings = split_views(model(**inputs).embeddings, 2)
        value = loss.total(loss(embeddings, labels))
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_times(args: argparse.Namespace, encoder: str) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from hiercon.losses import HiMulConELoss, SupConLoss

    emotions = goemotions_label_space(args.data_dir)
    rows = seeded_subset(load_goemotions(args.data_dir, "train"), args.batch_size, args.seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    taxonomy = emotions.taxonomy
    label_sets = emotion_label_sets(rows)
    steps = {
        "bce": bce_step_fn(encoder, emotions, tokenizer, rows, args),
        "supcon_any": contrastive_step_fn(
            encoder, SupConLoss(positives="any"), emotions.encode(label_sets), tokenizer, rows, args
        ),
        "himulcone": contrastive_step_fn(
            encoder, HiMulConELoss(taxonomy=taxonomy), taxonomy.encode(label_sets), tokenizer, rows, args,
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for round_index in range(args.warmup_steps + args.steps):
        for name, step in steps.items():
            begin = time.perf_counter()
            step()
            if round_index >= args.warmup_steps:
                samples[name].append(time.perf_counter() - begin)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "batch_size": args.batch_size,
        "median_step_s": {name: round(value, 6) for name, value in medians.items()},
        "ratio_to_bce": {name: round(value / medians["bce"], 3) for name, value in medians.items()},
        "samples_s": {name: [round(v, 6) for v in values] for name, values in samples.items()},
    }


# --------------------------------------------------------------------------- 2. pipeline throughput


def inference_throughput(args: argparse.Namespace, encoder: str) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    from hiercon import ContrastiveModel, build_classifier

    emotions = goemotions_label_space(args.data_dir)
    texts = [r["text"] for r in seeded_subset(load_goemotions(args.data_dir, "test"), args.inference_texts, args.seed)]
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"hiercon": Path(tmp) / "hiercon", "plain": Path(tmp) / "plain"}
        hiercon_model = build_classifier(ContrastiveModel.from_encoder(encoder), labels=list(emotions.names))
        plain_model = AutoModelForSequenceClassification.from_pretrained(
            encoder, num_labels=emotions.num_labels, problem_type="multi_label_classification",
            id2label=dict(enumerate(emotions.names)),
        )
        for name, model in (("hiercon", hiercon_model), ("plain", plain_model)):
            model.save_pretrained(folders[name])
            tokenizer.save_pretrained(folders[name])
        pipes = {name: pipeline("text-classification", model=str(folder), top_k=None) for name, folder in folders.items()}
        seconds: dict[str, list[float]] = {name: [] for name in pipes}
        for _ in range(args.inference_rounds):
            for name, pipe in pipes.items():
                begin = time.perf_counter()
                pipe(texts, batch_size=32, truncation=True, max_length=args.max_length)
                seconds[name].append(time.perf_counter() - begin)
    best = {name: min(values) for name, values in seconds.items()}
    throughput = {name: round(len(texts) / value, 1) for name, value in best.items()}
    return {
        "texts": len(texts),
        "texts_per_second": throughput,
        "ratio_hiercon_to_plain": round(throughput["hiercon"] / throughput["plain"], 3),
        "seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()},
    }


# --------------------------------------------------------------------------- report


def loss_scaling_table(results_dir: Path) -> str | None:
    path = results_dir / "losses.md"
    return path.read_text() if path.is_file() else None


def tables(result: dict[str, Any]) -> str:
    steps = result["step_time"]
    parts = [f"Stage-1 step time vs a plain BCE step (batch {steps['batch_size']}, median s)", markdown_table(
        [{"step": name, "median_s": steps["median_step_s"][name], "ratio_to_bce": steps["ratio_to_bce"][name]}
         for name in steps["median_step_s"]], ["step", "median_s", "ratio_to_bce"])]
    inference = result["inference"]
    parts += ["pipeline('text-classification') throughput (texts/s)", markdown_table(
        [{"model": name, "texts_per_second": value} for name, value in inference["texts_per_second"].items()]
        + [{"model": "ratio hiercon/plain", "texts_per_second": inference["ratio_hiercon_to_plain"]}],
        ["model", "texts_per_second"])]
    return "\n\n".join(parts)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    set_seed(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = encoder_path(args, Path(tmp))
        return {
            "benchmark": "speed",
            "quick": args.quick,
            "step_time": step_times(args, encoder),
            "inference": inference_throughput(args, encoder),
            "loss_scaling_available": loss_scaling_table(args.results_dir) is not None,
            "environment": environment(),
        }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = measure(args)
    write_json("speed_quick" if args.quick else "speed", result, args.results_dir)
    text = tables(result)
    (args.results_dir / ("speed_quick.md" if args.quick else "speed.md")).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
