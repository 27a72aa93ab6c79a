"""One stage-1 step of REG (learnable prototypes) through ContrastiveTrainer, alone or under torchrun
(CPU, gloo), in float64, with or without GradCache.

Usage: grad_cache_ddp.py MODEL_DIR OUTPUT_PT PER_DEVICE_BATCH MINI_BATCH_SIZE|none
Rank 0 saves the logged loss and the gradients the optimizer is about to apply (after the
processes' gradients were averaged), for the model's and the loss's parameters.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from distributed_utils import close_process_group  # noqa: E402
from stage1_toy import toy_dataset, toy_taxonomy  # noqa: E402
from tiny_models import quick_args  # noqa: E402
from transformers import AutoTokenizer, TrainerCallback  # noqa: E402

from hiercon import ContrastiveModel, ContrastiveTrainer  # noqa: E402
from hiercon.losses import RegLoss  # noqa: E402


class GradientRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.trainer = None
        self.gradients: dict[str, torch.Tensor] = {}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        trainer = self.trainer
        named = [
            *trainer.model.named_parameters(),
            *((f"loss.{n}", p) for n, p in trainer.loss.named_parameters()),
        ]
        self.gradients = {
            name.removeprefix("module."): p.grad.clone() for name, p in named if p.grad is not None
        }


def main(model_dir: str, output: str, per_device_batch: int, mini_batch_size: int | None) -> None:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    taxonomy = toy_taxonomy()
    dataset = toy_dataset(tokenizer, taxonomy, count=16, seed=0)
    model = ContrastiveModel.from_encoder(model_dir, pooling="mean", projection_dim=8).double()
    args = quick_args(
        Path(output).parent / "run",
        per_device_train_batch_size=per_device_batch,
        max_steps=1,
        learning_rate=1e-3,
        logging_steps=1,
        max_grad_norm=0.0,
        seed=0,
        ddp_backend="gloo" if "WORLD_SIZE" in os.environ else None,
    )
    recorder = GradientRecorder()
    trainer = ContrastiveTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=RegLoss(7, 8, 0.2).double(),
        processing_class=tokenizer,
        taxonomy=taxonomy,
        views=2,
        batch_sampler="random",
        mini_batch_size=mini_batch_size,
        callbacks=[recorder],
    )
    recorder.trainer = trainer
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    if trainer.args.process_index == 0:
        result = {"loss": loss, "world_size": trainer.args.world_size, "gradients": recorder.gradients}
        torch.save(result, output)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), None if sys.argv[4] == "none" else int(sys.argv[4]))
    close_process_group()
