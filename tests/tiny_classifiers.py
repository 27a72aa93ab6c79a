"""The two-level emotion taxonomy that the classifier tests share."""

from __future__ import annotations

from hiercon import LabelTaxonomy

EMOTION_EDGES = [
    ("root", "positive"),
    ("root", "negative"),
    ("positive", "joy"),
    ("positive", "love"),
    ("negative", "anger"),
    ("negative", "sadness"),
]


def emotion_taxonomy() -> LabelTaxonomy:
    """positive -> {joy, love}, negative -> {anger, sadness}."""
    return LabelTaxonomy.from_edges(EMOTION_EDGES)

