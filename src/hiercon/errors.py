"""Exceptions raised by hiercon. Each names the input that is wrong."""

from __future__ import annotations


class HierconError(ValueError):
    """Base class of hiercon's input errors (a ``ValueError``, so generic handlers still catch it)."""


class TaxonomyError(HierconError):
    """A label taxonomy is malformed: a cycle, a self-loop, a duplicate edge, an empty graph..."""


class UnknownLabelError(HierconError, KeyError):
    """A label name or id that the taxonomy does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class LossInputError(HierconError):
    """Embeddings, labels or options given to a loss do not fit it."""


class ConfigError(HierconError):
    """A recipe configuration or dataset does not fit what the recipe needs."""


class LabelFormatError(LossInputError, ConfigError):
    """Labels in a format or shape that the label space does not accept (the same error from a loss, a
    trainer and the recipe)."""
