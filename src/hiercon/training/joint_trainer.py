"""``JointClassifierTrainer``: the one-stage ``joint`` mode, BCE and a contrastive loss in one run.

The classifier trains on

.. math::

    L = L_{\\mathrm{BCE}} + w \\, L_{\\mathrm{con}}

where :math:`L_{\\mathrm{con}}` is a hiercon contrastive loss on the L2-normalised features the
classification layer reads (its input: BERT's pooler output after the head's dropout, ViT's
``[CLS]`` state), taken from the same forward pass as the logits. This is the joint objective of
Gunel et al. 2021 ("Supervised Contrastive Learning for Pre-trained Language Model Fine-tuning",
ICLR, who weigh cross-entropy and SupCon as :math:`(1 - \\lambda) L_{CE} + \\lambda L_{SCL}`) with
the contrastive term on the classifier's own features, so no projection head is added and the result
stays a plain ``AutoModelFor*Classification``.

The contrastive loss gets its labels as stage 1 feeds it (:class:`~hiercon.training.stage1_labels.LabelFeeder`
over the classifier's label space: multi-hot rows, class ids or label paths). Losses fed with cluster
ids (``label_kind="clusters"``: Cl-InfoNCE, HCSC) need a clustering of the whole training set and are
refused. With ``views > 1`` each example is seen in several views (dropout for text, augmentations
for images), every view counts in the BCE term and the contrastive loss gets ``[B, V, d]``.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hiercon.errors import ConfigError
from hiercon.losses.distributed import average_gradients
from hiercon.modality import input_modality
from hiercon.modeling.adapters import base_model_of
from hiercon.modeling.views import make_views, split_views
from hiercon.training.classifier_trainer import ClassifierTrainer
from hiercon.training.head_fit import classification_layer
from hiercon.training.loss_state import add_loss_parameters, load_loss_state, loss_info, save_loss_state
from hiercon.training.stage1_labels import LabelFeeder

#: ``w`` above. Label-mean BCE is about 0.1-0.7 while an in-batch contrastive loss starts near
#: ``log(batch size)`` (3-4 for batches of 32), so 0.1 puts both terms on the same order at the start.
DEFAULT_CONTRASTIVE_WEIGHT = 0.1
LOSS_STATE_NAME = "contrastive_loss_state.safetensors"
REFUSED_LABEL_KINDS = ("clusters",)


def check_joint_loss(loss: Any) -> nn.Module:
    """The contrastive loss of the joint mode, refused when it is not fed with labels."""
    if not isinstance(loss, nn.Module) or not callable(loss):
        raise ConfigError(
            f"contrastive_loss must be a hiercon ContrastiveLoss module, got {type(loss).__name__}"
        )
    kind = getattr(loss, "label_kind", "multi_hot")
    if kind in REFUSED_LABEL_KINDS:
        raise ConfigError(
            f"{type(loss).__name__} is fed with cluster ids (label_kind {kind!r}); the joint mode trains the "
            "contrastive loss on the classifier's labelled batches and supports losses fed with labels only"
        )
    return loss


class JointClassifierTrainer(ClassifierTrainer):
    """A :class:`ClassifierTrainer` whose loss adds ``contrastive_weight`` times a contrastive loss.

    Args:
        contrastive_loss: a hiercon contrastive loss fed with labels (see the module docstring),
            built with ``embedding_dim`` = the classification layer's input width where it takes one.
        contrastive_weight: ``w`` (default :data:`DEFAULT_CONTRASTIVE_WEIGHT`).
        views: views per training example (1: the batch as it is).

    Every other argument is :class:`ClassifierTrainer`'s (``mode`` is ``"joint"``; LoRA and the
    consistency penalty work as there). The loss's own parameters (e.g. REG's label prototypes) are
    trained with the model and saved in checkpoints; the final model is the classifier alone.
    """

    modes = ("joint",)

    def __init__(
        self,
        model: nn.Module | None = None,
        args: Any = None,
        *,
        contrastive_loss: nn.Module,
        contrastive_weight: float = DEFAULT_CONTRASTIVE_WEIGHT,
        views: int = 1,
        **kwargs: Any,
    ) -> None:
        self.contrastive_loss = check_joint_loss(contrastive_loss)
        if not contrastive_weight >= 0:
            raise ConfigError(f"contrastive_weight must be >= 0, got {contrastive_weight}")
        self.contrastive_weight = float(contrastive_weight)
        super().__init__(model, args, **kwargs)
        self.view_maker = make_views(views, input_modality(base_model_of(self.model)), seed=self.args.seed)
        self.contrastive_labels = LabelFeeder(
            getattr(contrastive_loss, "label_kind", "multi_hot"),
            self.label_space,
            loss_reads_multi_hot=getattr(contrastive_loss, "taxonomy", None) is not None,
        )
        self.contrastive_labels.batches_encoded = True
        self.feature_layer = classification_layer(self.model)
        self.contrastive_loss.to(self.args.device)
        self.stage2_record["contrastive"] = self._contrastive_record()

    def _resolve_mode(self, mode: str | None, freeze_encoder: bool) -> str:
        if mode not in (None, "joint"):
            raise ConfigError(f"JointClassifierTrainer runs the 'joint' mode, got mode {mode!r}")
        if freeze_encoder:
            raise ConfigError("freeze_encoder=True contradicts the joint mode, which trains the encoder")
        return "joint"

    def _contrastive_record(self) -> dict[str, Any]:
        return {
            **loss_info(self.contrastive_loss),
            "weight": self.contrastive_weight,
            "views": self.view_maker.num_views,
        }

    # ---- loss ----

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        inputs, targets = self._split_targets(inputs)
        num_views = self.view_maker.num_views if model.training else 1
        captured: list[torch.Tensor] = []
        handle = self.feature_layer.register_forward_hook(
            lambda module, args, output: captured.append(args[0])
        )
        try:
            outputs = model(**(self.view_maker(inputs) if num_views > 1 else inputs))
        finally:
            handle.remove()
        targets = targets.float()
        parts = dict(self.objective(outputs.logits, targets.repeat(num_views, 1)))
        embeddings = split_views(F.normalize(captured[-1].float(), dim=-1), num_views)
        labels = self.contrastive_labels.loss_labels({"labels": targets}, None, embeddings.device)
        contrastive = self.contrastive_loss(embeddings, labels)
        if isinstance(contrastive, dict):
            contrastive = torch.stack(list(contrastive.values())).sum()
        parts["contrastive"] = self.contrastive_weight * contrastive
        loss = torch.stack(list(parts.values())).sum()
        if model.training:
            self.loss_parts.add(parts)
        if return_outputs and num_views > 1:
            outputs.logits = outputs.logits[: targets.shape[0]]
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, plus the contrastive loss's own trainable parameters."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        return add_loss_parameters(optimizer, self.contrastive_loss)

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The Trainer's step, then the loss's own gradients averaged over processes (DDP does not wrap it)."""
        loss = super().training_step(model, inputs, *args, **kwargs)
        average_gradients(self.contrastive_loss.parameters())
        return loss

    # ---- checkpoints: the loss's state beside the model ----

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self.args.should_save:
            save_loss_state(self.contrastive_loss, os.path.join(output_dir, LOSS_STATE_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_loss_state(
            self.contrastive_loss, os.path.join(resume_from_checkpoint, LOSS_STATE_NAME), str(self.args.device)
        )
