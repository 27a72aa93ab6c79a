"""Stage-1 losses by name (:mod:`hiercon.recipe.loss_registry`), built with what the recipe knows
(temperature, label space, sizes)."""

from __future__ import annotations

import inspect
from typing import Any

from hiercon.errors import ConfigError
from hiercon.recipe.arguments import Stage1Arguments
from hiercon.recipe.config import closest
from hiercon.recipe.loss_registry import loss_entry
from hiercon.taxonomy import LabelSpace, LabelTaxonomy


def loss_class(name: str) -> type:
    """The loss class for a recipe name (``jaccard_supcon``) or a class name (``JaccardSupConLoss``)."""
    import hiercon.losses

    class_name = loss_entry(name).class_name
    try:
        return getattr(hiercon.losses, class_name)
    except (AttributeError, ImportError) as error:
        raise ConfigError(f"stage1.loss {name!r} is not available in this installation: {error}") from None


def build_loss(stage1: Stage1Arguments, label_space: LabelSpace | LabelTaxonomy, embedding_dim: int) -> Any:
    """The configured loss on the run's label space; ``temperature``, ``taxonomy`` (the label space
    itself, so the loss reads labels over the same columns as the data), ``num_labels`` and
    ``embedding_dim`` are filled in where its constructor takes them and ``loss_kwargs`` does not set them."""
    label_space = LabelSpace.of(label_space)
    cls = loss_class(stage1.loss)
    parameters = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(stage1.loss_kwargs) - set(parameters) - {"self"})
    if unknown:
        valid = [name for name in parameters if name != "self"]
        suggestion = closest(unknown[0], valid)
        hint = f"; did you mean {suggestion!r}?" if suggestion else f"; it takes {valid}"
        raise ConfigError(f"stage1.loss_kwargs {unknown} are not arguments of {cls.__name__}{hint}")
    known = {
        "temperature": stage1.temperature,
        "taxonomy": label_space,
        "num_labels": label_space.num_labels,
        "embedding_dim": embedding_dim,
    }
    kwargs = {name: value for name, value in known.items() if name in parameters}
    kwargs.update(loss_entry(stage1.loss).loss_kwargs)
    kwargs.update(stage1.loss_kwargs)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"cannot build {cls.__name__} from stage1 settings: {error}") from None
