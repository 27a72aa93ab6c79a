"""Fit a classifier's own linear layer to convergence on frozen features (the ``head`` stage-2 modes).

The features are exactly what the classification layer reads at inference: its input, captured in
eval mode by a forward hook while ``Trainer.predict`` runs over the training set. For BERT that is
the pooler output (after the head's dropout, a no-op in eval mode), for RoBERTa the output of its
head's dense layer, for ViT the ``[CLS]`` state; no architecture is special-cased. The fitted weights
are written into that layer, so the model stays a plain ``AutoModelFor*Classification``.

The fit is one-vs-rest L2-regularised logistic regression, solved jointly for all labels (the
problem separates by label) with L-BFGS (Liu and Nocedal 1989) in float64. Per label it minimises

.. math::

    \\sum_{i=1}^{n} \\mathrm{BCE}(w^\\top x_i + b, y_i) + \\frac{\\lambda}{2} \\lVert w \\rVert^2

which is scikit-learn's ``LogisticRegression(C=1/λ)`` (the bias is not penalised), the head SetFit
fits (Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts"). With
``class_weight="balanced"`` each example's BCE term of label :math:`j` is weighted by
:math:`n / (2 n_j^+)` when it is a positive of :math:`j` and :math:`n / (2 n_j^-)` when not, as
scikit-learn's ``class_weight="balanced"`` weights the two classes of each binary problem: a rare
label's few positives weigh as much as its negatives, so its weight vector is not spent on the prior.

The objective is convex, so the solution is the optimum that gradient descent on the head only approaches. Fitting the head
before fine-tuning the whole model is LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained
Features and Underperform Out-of-Distribution", ICLR): a converged head keeps the first fine-tuning
steps from distorting the pretrained features through a random head's large gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hiercon.errors import ConfigError
from hiercon.modeling.adapters import base_model_of

#: λ of the objective above (scikit-learn's ``C = 1/3``): with balanced weights, the best dev macro-F1
#: on the GoEmotions benchmark split among λ = 1, 3, 10 (benchmarks/RESULTS.md).
DEFAULT_HEAD_L2 = 3.0
#: How the BCE terms of each label are weighted: ``"balanced"`` or ``None`` (all 1).
CLASS_WEIGHTS = ("balanced", None)
#: The trainers' and the recipe's choice (the bare :func:`fit_linear_head` weighs every term 1).
DEFAULT_HEAD_CLASS_WEIGHT = "balanced"
DEFAULT_MAX_ITER = 1000
DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class HeadFit:
    """A fitted linear head and how the fit ended.

    Attributes:
        weight: ``[labels, features]``; ``bias``: ``[labels]`` (float64).
        bce: mean binary cross-entropy over examples and labels at the solution.
        objective: the minimised objective divided by ``n`` (mean BCE summed over labels + penalty / n).
        gradient: the largest absolute entry of the objective's gradient at the solution.
        iterations: L-BFGS iterations run.
        converged: ``gradient <= tolerance``.
        l2: λ of the penalty.
        class_weight: ``"balanced"`` or ``None``.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    bce: float
    objective: float
    gradient: float
    iterations: int
    converged: bool
    l2: float
    class_weight: str | None = None

    def record(self) -> dict[str, Any]:
        """JSON-safe summary for ``config.hiercon["stage2"]["head_fit"]`` and the logs."""
        return {
            "solver": "lbfgs",
            "l2": self.l2,
            "class_weight": self.class_weight,
            "bce": round(self.bce, 6),
            "gradient": float(f"{self.gradient:.3g}"),
            "iterations": self.iterations,
            "converged": self.converged,
        }


def classification_layer(model: nn.Module) -> nn.Linear:
    """The classifier's final linear layer: the last ``nn.Linear`` outside the base model whose outputs
    are the labels (``classifier`` of BERT and ViT, ``classifier.out_proj`` of RoBERTa). Under a peft
    wrapper it is the trained copy, not the frozen original."""
    base = base_model_of(model)
    num_labels = int(base.config.num_labels)
    prefix = base.base_model_prefix
    found = None
    for name, module in model.named_modules():
        parts = name.split(".")
        if prefix in parts or "original_module" in parts or any(part.startswith("lora_") for part in parts):
            continue
        if isinstance(module, nn.Linear) and module.out_features == num_labels:
            found = module
    if found is None:
        raise ConfigError(
            f"{type(base).__name__} has no linear classification layer with {num_labels} outputs "
            "outside its base model; the head modes need one"
        )
    return found


def _features_hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    return args[0]


def head_features(trainer: Any, dataset: Any) -> np.ndarray:
    """``[examples, features]``: the inputs of the classification layer of ``trainer.model`` on
    ``dataset`` (no label column), by ``trainer.predict`` in eval mode with the layer's output replaced
    by its input. Rows follow the dataset's order and are gathered over processes."""
    handle = classification_layer(trainer.model).register_forward_hook(_features_hook)
    try:
        output = trainer.predict(dataset)
    finally:
        handle.remove()
    features = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    return np.asarray(features)


def balanced_weights(targets: torch.Tensor) -> torch.Tensor:
    """``[n, labels]``: ``n / (2 n_j^+)`` on label ``j``'s positives and ``n / (2 n_j^-)`` on its
    negatives (scikit-learn's ``class_weight="balanced"`` per label); a label whose examples all share
    one class keeps weight 1."""
    count = targets.shape[0]
    positives = targets.sum(dim=0)
    negatives = count - positives
    both = (positives > 0) & (negatives > 0)
    positive_weight = torch.where(both, count / (2 * positives.clamp_min(1)), torch.ones_like(positives))
    negative_weight = torch.where(both, count / (2 * negatives.clamp_min(1)), torch.ones_like(negatives))
    return torch.where(targets > 0, positive_weight, negative_weight)


def _objective(
    features: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    l2: float,
    example_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective / n, mean unweighted BCE)."""
    logits = features @ weight.T + bias
    terms = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    weighted = terms if example_weights is None else terms * example_weights
    penalty = 0.5 * l2 * weight.square().sum() / features.shape[0]
    return weighted.sum() / features.shape[0] + penalty, terms.mean()


def _check_fit_inputs(features: Any, targets: Any, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(targets), dtype=torch.float64)
    if x.dim() != 2 or y.dim() != 2 or x.shape[0] != y.shape[0]:
        raise ConfigError(
            f"the head fit needs features [n, d] and targets [n, labels] with the same n, "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise ConfigError("the head fit needs at least one training example")
    if not torch.isfinite(x).all():
        raise ConfigError("the classification layer's input features hold NaN or infinite values")
    if ((y != 0) & (y != 1)).any():
        raise ConfigError("the head fit needs 0/1 multi-hot targets")
    if not l2 >= 0:
        raise ConfigError(f"the head's L2 penalty must be >= 0, got {l2}")
    return x, y


def fit_linear_head(
    features: Any,
    targets: Any,
    l2: float = DEFAULT_HEAD_L2,
    max_iter: int = DEFAULT_MAX_ITER,
    tolerance: float = DEFAULT_TOLERANCE,
    class_weight: str | None = None,
) -> HeadFit:
    """One-vs-rest L2-regularised logistic regression of ``targets [n, labels]`` on
    ``features [n, d]``, solved by L-BFGS with a strong-Wolfe line search (see the module docstring).

    ``l2`` is λ (``1 / C`` in scikit-learn's terms); ``tolerance`` bounds the largest absolute entry
    of the gradient of the objective divided by ``n``; ``class_weight="balanced"`` weights each
    label's positives and negatives equally in total. The bias starts at each label's log-odds
    (at 0 when balanced).
    """
    x, y = _check_fit_inputs(features, targets, l2)
    if class_weight not in CLASS_WEIGHTS:
        raise ConfigError(f"class_weight must be one of {CLASS_WEIGHTS}, got {class_weight!r}")
    example_weights = balanced_weights(y) if class_weight == "balanced" else None
    prior = y.mean(dim=0).clamp(1e-6, 1 - 1e-6)
    weight = torch.zeros(y.shape[1], x.shape[1], dtype=torch.float64, requires_grad=True)
    start = torch.zeros_like(prior) if class_weight == "balanced" else torch.log(prior / (1 - prior))
    bias = start.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        max_eval=max_iter * 2,
        tolerance_grad=tolerance,
        tolerance_change=1e-15,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        objective, _ = _objective(x, y, weight, bias, l2, example_weights)
        objective.backward()
        return objective

    optimizer.step(closure)
    objective, bce = _objective(x, y, weight, bias, l2, example_weights)
    grad_weight, grad_bias = torch.autograd.grad(objective, [weight, bias])
    objective, bce = objective.detach(), bce.detach()
    gradient = float(max(grad_weight.abs().max(), grad_bias.abs().max()))
    return HeadFit(
        weight=weight.detach(),
        bias=bias.detach(),
        bce=float(bce),
        objective=float(objective),
        gradient=gradient,
        iterations=int(optimizer.state[weight].get("n_iter", 0)),
        converged=gradient <= tolerance,
        l2=float(l2),
        class_weight=class_weight,
    )


@torch.no_grad()
def write_head(layer: nn.Linear, fit: HeadFit) -> None:
    """Copy a fitted head into the classification layer (its dtype and device kept)."""
    if tuple(layer.weight.shape) != tuple(fit.weight.shape):
        raise ConfigError(
            f"the fitted head has shape {tuple(fit.weight.shape)} but the classification layer "
            f"{tuple(layer.weight.shape)}"
        )
    if layer.bias is None:
        raise ConfigError("the classification layer has no bias; the head fit needs one")
    layer.weight.copy_(fit.weight.to(layer.weight))
    layer.bias.copy_(fit.bias.to(layer.bias))
