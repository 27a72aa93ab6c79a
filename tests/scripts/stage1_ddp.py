"""One stage-1 step through ContrastiveTrainer, run alone or under torchrun (CPU, gloo).

Usage: stage1_ddp.py MODEL_DIR OUTPUT_JSON PER_DEVICE_BATCH
Rank 0 writes the first logged loss, the number of keys the loss saw, and the embeddings of a
fixed batch after the step.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from distributed_utils import close_process_group  # noqa: E402
from stage1_toy import toy_dataset, toy_taxonomy  # noqa: E402
from tiny_models import quick_args  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from hiercon import ContrastiveModel, ContrastiveTrainer  # noqa: E402
from hiercon.losses import SupConLoss  # noqa: E402
from hiercon.losses.core import build_pair_batch  # noqa: E402


class CountingSupCon(SupConLoss):
    """SupCon that remembers how many keys (local + gathered views) each call scored against."""

    key_counts: list[int] = []

    def forward(self, embeddings, labels=None):
        self.key_counts.append(int(build_pair_batch(embeddings, labels, gather=True).keys.shape[0]))
        return super().forward(embeddings, labels)


def main(model_dir: str, output: str, per_device_batch: int) -> None:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = toy_dataset(tokenizer, toy_taxonomy(), count=16, seed=0)
    model = ContrastiveModel.from_encoder(model_dir, pooling="mean", projection_dim=8)
    loss = CountingSupCon(temperature=0.1)
    args = quick_args(
        Path(output).parent / "run",
        per_device_train_batch_size=per_device_batch,
        max_steps=1,
        learning_rate=1e-2,
        logging_steps=1,
        seed=0,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
    )
    trainer = ContrastiveTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        processing_class=tokenizer,
        views=1,
        batch_sampler="random",
    )
    trainer.train()
    first_loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    probe = tokenizer(["happy glad joy", "sad cry", "what why how"], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        embeddings = model(**probe).embeddings
    if trainer.args.process_index == 0:
        Path(output).write_text(
            json.dumps(
                {
                    "loss": first_loss,
                    "world_size": trainer.args.world_size,
                    "key_counts": loss.key_counts,
                    "embeddings": embeddings.tolist(),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    close_process_group()
