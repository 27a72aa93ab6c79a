"""``ContrastiveTrainer``: stage-1 training of a :class:`~hiercon.modeling.ContrastiveModel`.

A ``transformers.Trainer`` whose ``compute_loss`` embeds the views of a batch, feeds a hiercon
loss the labels its ``label_kind`` asks for, and logs the loss's named parts.

Gradient accumulation: each micro-batch is its own contrastive batch (its negatives are the
micro-batch's examples, gathered across processes). The loss of a micro-batch is a per-batch
mean, so ``loss_is_scaled_for_ga = False`` and the Trainer divides it by the number of
accumulation steps: the update uses the **mean** of the micro-batch gradients, whatever
``num_items_in_batch`` says. With ``G`` accumulation steps of ``b`` examples, the contrastive
batch is ``b`` (times the number of processes), not ``G * b``.

Large contrastive batches: with ``mini_batch_size=m`` a step embeds its batch ``m`` examples at a
time and caches the embedding gradients (GradCache, :mod:`hiercon.training.grad_cache`), so the
batch ``b`` is bounded by time rather than activation memory; the gradients are those of the plain
step.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.training_args import OptimizerNames

from hiercon.errors import ConfigError
from hiercon.losses.distributed import average_gradients
from hiercon.losses.momentum import MomentumEncoder
from hiercon.modality import IMAGE, IMAGE_INPUT, TEXT
from hiercon.modeling.contrastive_model import ContrastiveModel
from hiercon.modeling.lengths import bounded_tokenizer
from hiercon.modeling.views import ViewMaker, make_views, split_views
from hiercon.taxonomy.label_space import LabelSpace
from hiercon.training.callbacks import MomentumCallback
from hiercon.training.collators import ContrastiveDataCollator
from hiercon.training.evaluation_order import DatasetOrderEvaluation
from hiercon.training.grad_cache import GradCache, batch_size_of
from hiercon.training.loss_parts import LossPartsLogging, LossPartsMeter
from hiercon.training.loss_state import add_loss_parameters, load_loss_state, loss_info, save_loss_state
from hiercon.training.model_card import EncoderCardMixin
from hiercon.training.samplers import MultiLabelBatchSampler
from hiercon.training.stage1_labels import LabelFeeder

TRAINING_ARGS_NAME = "training_args.bin"
LOSS_STATE_NAME = "loss_state.safetensors"


def _resolve_label_space(label_space: LabelSpace | None, taxonomy: Any, loss: nn.Module) -> LabelSpace | None:
    """The label space the trainer reads labels with: the one given, else the loss's own (when it
    agrees with ``taxonomy``), else the ``"nodes"`` space of ``taxonomy`` or of the loss's taxonomy."""
    if label_space is not None:
        return label_space
    loss_space = getattr(loss, "label_space", None)
    if loss_space is not None and (taxonomy is None or loss_space.taxonomy == taxonomy):
        return loss_space
    return LabelSpace.of(taxonomy if taxonomy is not None else getattr(loss, "taxonomy", None))


class ContrastiveTrainer(EncoderCardMixin, LossPartsLogging, DatasetOrderEvaluation, Trainer):
    """Trainer for stage 1 (contrastive representation learning).

    Args:
        loss: a :class:`hiercon.losses.base.ContrastiveLoss` (any module with ``label_kind``).
        views: number of views per example (text: dropout views, images: augmented views) or a
            view maker from :mod:`hiercon.modeling.views`.
        batch_sampler: ``None`` (the Trainer's shuffling), ``"pk"``, ``"random"``, or a
            :class:`MultiLabelBatchSampler`.
        taxonomy: a ``LabelTaxonomy``; its ``"nodes"`` label space reads the label column (defaults
            to the loss's own label space or taxonomy when it has one).
        label_space: a :class:`~hiercon.taxonomy.LabelSpace` to read the label column with (instead
            of ``taxonomy``): names, path strings, ids, multi-hot over the nodes or the leaves all
            become the multi-hot over its columns, exactly as the loss and the recipe read them.
        label_column: the column holding the labels (any format above, or class ids).
        samples_per_label: ``K`` of the ``"pk"`` sampler.
        momentum: keep a momentum (EMA) copy of the model, updated after every optimiser step
            (MoCo, ``0.999`` is usual); a loss whose ``forward`` takes ``key_embeddings`` then
            receives the copy's ``[B, V, d]`` embeddings of the same views.
        mini_batch_size: ``None`` (default): embed the batch in one pass. An integer ``m``: embed it
            ``m`` examples at a time and cache the embedding gradients (GradCache), so that peak
            activation memory is that of ``m`` examples whatever the batch size. The gradients
            are those of the plain step (with dropout views, those of a forward pass run ``m``
            examples at a time); ``m`` must divide ``per_device_train_batch_size``.

    Extra label columns listed in ``args.label_names`` (besides ``label_column``) are kept by
    ``remove_unused_columns`` and passed to the loss as keyword arguments under their names.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: ContrastiveModel | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        *,
        loss: nn.Module,
        views: int | ViewMaker = 2,
        batch_sampler: str | MultiLabelBatchSampler | None = None,
        taxonomy: Any = None,
        label_space: LabelSpace | None = None,
        label_column: str = "labels",
        samples_per_label: int = 2,
        momentum: float | None = None,
        mini_batch_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, ContrastiveModel):
            raise ConfigError(f"ContrastiveTrainer trains a ContrastiveModel, got {type(model).__name__}")
        if not isinstance(loss, nn.Module) or not callable(loss):
            raise ConfigError(f"loss must be a hiercon ContrastiveLoss module, got {type(loss).__name__}")
        if args is None:
            args = TrainingArguments(output_dir="trainer_output", report_to="none")
        self.loss = loss
        self.label_space = _resolve_label_space(label_space, taxonomy, loss)
        self.taxonomy = self.label_space.taxonomy if self.label_space is not None else None
        self.labels = LabelFeeder(
            getattr(loss, "label_kind", "multi_hot"),
            self.label_space,
            label_column,
            loss_reads_multi_hot=getattr(loss, "taxonomy", None) is not None,
        )
        self.view_maker = make_views(views, model.modality, seed=args.seed)
        if train_dataset is not None and self.labels.needs_example_index:
            train_dataset = _with_index_column(train_dataset)
        self.labels.batches_encoded = data_collator is None and self.label_space is not None
        data_collator = data_collator or ContrastiveDataCollator(
            processing_class if hasattr(processing_class, "pad") else None,
            label_space=self.label_space,
            label_column=label_column,
        )
        super().__init__(
            model=model,
            args=args,
            data_collator=data_collator,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            **kwargs,
        )
        if args.label_names is None:
            self.label_names = self.labels.default_label_names()
        self.extra_label_names = [name for name in self.label_names if name not in self.labels.own_columns]
        self.batch_sampler = self._make_batch_sampler(batch_sampler, samples_per_label)
        self.loss.to(self.args.device)
        model.loss_info = loss_info(loss)
        self.cluster_assignments: torch.Tensor | None = None  # set by ClusterCallback: [N] label level
        self.cluster_hierarchy: torch.Tensor | None = None  # set by ClusterCallback: [N, levels]
        self.loss_parts = LossPartsMeter()
        self.momentum_encoder = None
        if momentum is not None:
            self.momentum_encoder = MomentumEncoder(model, momentum).to(self.args.device)
            self.add_callback(MomentumCallback(self.momentum_encoder))
        self._loss_takes_keys = "key_embeddings" in inspect.signature(loss.forward).parameters
        self.grad_cache = self._make_grad_cache(mini_batch_size)
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "attach"):
                callback.attach(self)

    def _make_grad_cache(self, mini_batch_size: int | None) -> GradCache | None:
        """The GradCache of ``mini_batch_size`` (``None`` when off), checked against the batch size."""
        if mini_batch_size is None:
            return None
        cache = GradCache(mini_batch_size)
        cache.check_batch_size(self.args.per_device_train_batch_size)
        if self.batch_sampler is not None:
            cache.check_batch_size(self.batch_sampler.batch_size, "the batch sampler's batch_size")
        if self.is_deepspeed_enabled:
            raise ConfigError(
                "mini_batch_size does not work with DeepSpeed, whose engine owns the backward pass"
            )
        if self.args.optim in (OptimizerNames.LOMO, OptimizerNames.ADALOMO):
            raise ConfigError(
                f"mini_batch_size does not work with the {OptimizerNames(self.args.optim).value} optimizer, which steps "
                "inside backward"
            )
        return cache

    # ---- data ----

    def _make_batch_sampler(
        self, batch_sampler: str | MultiLabelBatchSampler | None, samples_per_label: int
    ) -> MultiLabelBatchSampler | None:
        if batch_sampler is None or isinstance(batch_sampler, MultiLabelBatchSampler):
            return batch_sampler
        if batch_sampler not in ("pk", "random"):
            raise ConfigError(
                f"batch_sampler must be 'pk', 'random', None or a sampler, got {batch_sampler!r}"
            )
        if self.train_dataset is None:
            raise ConfigError("batch_sampler needs a train_dataset")
        space = self.label_space
        label_levels = space.taxonomy.levels[space.node_ids].tolist() if space is not None else None
        settings = dict(
            batch_size=self.args.per_device_train_batch_size,
            samples_per_label=samples_per_label,
            label_levels=label_levels,
            strategy=batch_sampler,
            seed=self.args.seed,
        )
        if batch_sampler == "random" and not self.labels.has_label_column(self.train_dataset):
            # Shuffled batches need no labels (e.g. cluster or self-supervised losses).
            return MultiLabelBatchSampler(np.full(len(self.train_dataset), -1), **settings)
        return MultiLabelBatchSampler(self.labels.example_label_matrix(self.train_dataset), **settings)

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            super()._set_signature_columns_if_needed()
            self._signature_columns += [
                c for c in self.labels.own_columns if c not in self._signature_columns
            ]

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        """The Trainer's loader, or one driven by ``batch_sampler`` (already split across processes)."""
        if self.batch_sampler is None:
            return super().get_train_dataloader()
        if self.train_dataset is None:
            raise ConfigError("training requires a train_dataset")
        dataset = self.train_dataset
        collator = self.data_collator
        if hasattr(dataset, "column_names"):
            dataset = self._remove_unused_columns(dataset, description="training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="training")
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        prepared = self.accelerator.prepare(loader)
        # The sampler already gives each process its own batches; keep accelerate from re-sharding them.
        shard = getattr(prepared, "batch_sampler", None)
        if shard is not None and getattr(shard, "batch_sampler", None) is self.batch_sampler:
            shard.num_processes = 1
            shard.process_index = 0
        return prepared

    # ---- checks before training ----

    def train(self, *args: Any, **kwargs: Any) -> Any:
        self.check_train_dataset()
        return super().train(*args, **kwargs)

    def check_train_dataset(self) -> None:
        """Refuse a training set that cannot work, before any step runs."""
        dataset = self.train_dataset
        if dataset is None:
            raise ConfigError("training requires a train_dataset")
        columns = _columns_of(dataset)
        self._check_modality(columns)
        self.labels.check_dataset(dataset, columns)
        missing = [name for name in self.extra_label_names if name not in columns]
        if missing:
            raise ConfigError(
                f"label column(s) {missing} declared in label_names are missing from the train dataset"
            )

    def _check_modality(self, columns: list[str]) -> None:
        model = self.model
        if model.modality == IMAGE and IMAGE_INPUT not in columns:
            hint = " (it holds text inputs: input_ids)" if "input_ids" in columns else ""
            raise ConfigError(
                f"this vision model needs a 'pixel_values' column; the dataset has {columns}{hint}"
            )
        if model.modality == TEXT and "input_ids" not in columns:
            hint = (
                " (it holds images: pixel_values)"
                if "pixel_values" in columns
                else " (tokenize the texts first)"
            )
            raise ConfigError(f"this text model needs an 'input_ids' column; the dataset has {columns}{hint}")

    # ---- loss ----

    def _split_inputs(self, inputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(model inputs, label inputs); a declared label column missing from the batch is an error."""
        label_inputs: dict[str, Any] = {}
        for name in [*self.labels.own_columns, *self.extra_label_names]:
            if name in inputs:
                label_inputs[name] = inputs[name]
        missing = [name for name in self.extra_label_names if name not in label_inputs]
        if missing:
            raise ConfigError(f"label column(s) {missing} declared in label_names are missing from the batch")
        model_inputs = {key: value for key, value in inputs.items() if key not in label_inputs}
        return model_inputs, label_inputs

    def embed_views(self, model: nn.Module, model_inputs: dict[str, Any], num_views: int | None = None):
        """``[B, V, d]`` embeddings of the batch's views (one forward pass), the model output, and
        the momentum copy's embeddings of the same views (``None`` without momentum)."""
        views = self.view_maker if num_views is None else make_views(num_views, self.model.modality)
        viewed = views(model_inputs)
        outputs = model(**viewed)
        keys = None
        if self.momentum_encoder is not None and self._loss_takes_keys:
            keys = split_views(self.momentum_encoder(**viewed).embeddings, views.num_views)
        return split_views(outputs.embeddings, views.num_views), outputs, keys

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        model_inputs, label_inputs = self._split_inputs(inputs)
        embeddings, outputs, keys = self.embed_views(model, model_inputs, None if model.training else 1)
        total = self._score(embeddings, label_inputs, record=model.training, keys=keys)
        return (total, outputs) if return_outputs else total

    def _score(
        self,
        embeddings: torch.Tensor,
        label_inputs: dict[str, Any],
        record: bool,
        keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        labels = self.labels.loss_labels(label_inputs, self.cluster_assignments, embeddings.device)
        extras = {name: label_inputs[name] for name in self.extra_label_names}
        if keys is not None:
            extras["key_embeddings"] = keys
        result = self.loss(embeddings, labels, **extras)
        if isinstance(result, dict):
            if record:
                self.loss_parts.add(result)
            return torch.stack([part for part in result.values()]).sum()
        return result

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, Any]:
        """(loss, embeddings ``[B, d]``, labels) so that ``compute_metrics`` can score embeddings.

        The loss is computed on one view; it is ``None`` when the batch carries no usable labels.
        """
        inputs = self._prepare_inputs(inputs)
        model_inputs, label_inputs = self._split_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            embeddings, _, keys = self.embed_views(model, model_inputs, num_views=1)
            loss = None
            if self.labels.can_score(label_inputs, self.cluster_assignments):
                loss = self._score(embeddings, label_inputs, record=False, keys=keys).detach()
        if prediction_loss_only:
            return loss, None, None
        labels = tuple(label_inputs.get(name) for name in self.label_names if name in label_inputs)
        labels = None if not labels else labels[0] if len(labels) == 1 else labels
        return loss, embeddings[:, 0].detach(), labels

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The Trainer's optimizer, plus the loss's own trainable parameters (e.g. label prototypes)."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        return add_loss_parameters(optimizer, self.loss)

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The Trainer's step (or the cached step with ``mini_batch_size``), then the loss's own gradients
        averaged over processes: DDP averages the model's gradients but does not wrap the loss, whose
        parameters (prototypes) would otherwise drift apart between processes."""
        if self.grad_cache is None:
            loss = super().training_step(model, inputs, *args, **kwargs)
        else:
            loss = self._cached_training_step(model, inputs)
        average_gradients(self.loss.parameters())
        return loss

    def _cached_training_step(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        """One step in three passes (:mod:`hiercon.training.grad_cache`); does its own backward and
        returns the detached loss, scaled for gradient accumulation as the Trainer's step scales it."""
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)
        model_inputs, label_inputs = self._split_inputs(inputs)
        num_views = self.view_maker.num_views
        viewed = self.view_maker(model_inputs)
        encode = partial(self._encode, model, num_views)
        encode_keys = None
        if self.momentum_encoder is not None and self._loss_takes_keys:
            encode_keys = partial(self._encode, self.momentum_encoder, num_views)
        # a data-parallel wrapper prepares its reduction in the forward pass: re-embed every mini-batch
        self.grad_cache.keep_last_graph = self.accelerator.num_processes == 1
        with self.compute_loss_context_manager():
            cached = self.grad_cache.embed(
                encode, viewed, num_views, batch_size_of(model_inputs), encode_keys
            )
            loss = self._score(cached.embeddings, label_inputs, record=True, keys=cached.keys)
        if not self.loss_is_scaled_for_ga:
            loss = loss / self.current_gradient_accumulation_steps
        self.accelerator.backward(loss)
        with self.compute_loss_context_manager():
            self.grad_cache.backward(
                encode, viewed, num_views, cached, partial(self.accelerator.no_sync, model)
            )
        return loss.detach()

    @staticmethod
    def _encode(encoder: nn.Module, num_views: int, inputs: dict[str, Any]) -> torch.Tensor:
        """``[m, V, d]`` embeddings of a view-major input dict of ``m`` examples."""
        return split_views(encoder(**inputs).embeddings, num_views)

    # ---- checkpoints ----

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save with :meth:`ContrastiveModel.save_pretrained` (plain encoder + head + JSON config)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        self.accelerator.unwrap_model(self.model).save_pretrained(output_dir)
        save_loss_state(self.loss, os.path.join(output_dir, LOSS_STATE_NAME))
        if self.processing_class is not None:
            model_config = self.accelerator.unwrap_model(self.model).config
            bounded_tokenizer(self.processing_class, model_config).save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        target.load_weights(resume_from_checkpoint)
        self._load_loss_state(resume_from_checkpoint)

    def _load_loss_state(self, folder: str) -> None:
        load_loss_state(self.loss, os.path.join(folder, LOSS_STATE_NAME), str(self.args.device))

    def _load_best_model(self) -> None:
        best = self.state.best_model_checkpoint
        if best is None:
            return
        self.accelerator.unwrap_model(self.model).load_weights(best)
        self._load_loss_state(best)


def _columns_of(dataset: Any) -> list[str]:
    names = getattr(dataset, "column_names", None)
    if names is not None:
        return list(names)
    if len(dataset) == 0:
        raise ConfigError("the train dataset is empty")
    first = dataset[0]
    if not isinstance(first, dict):
        raise ConfigError(f"dataset rows must be dicts of columns, got {type(first).__name__}")
    return list(first)


def _with_index_column(dataset: Any) -> Any:
    """Add an ``index`` column (row positions) to a ``datasets.Dataset`` that lacks one."""
    names = getattr(dataset, "column_names", None)
    if names is None or "index" in names:
        return dataset
    return dataset.add_column("index", np.arange(len(dataset), dtype=np.int64))
