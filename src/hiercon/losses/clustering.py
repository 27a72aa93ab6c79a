r"""Cluster ids for Cl-InfoNCE and hierarchical prototypes for HCSC.

- :func:`attribute_clusters`: the joint value of the ``k`` binary (or discrete) auxiliary
  attributes of highest entropy (Tsai et al., ICLR 2022);
- :func:`taxonomy_level_clusters`: the nodes of one taxonomy depth that each item holds
  (multi-hot, for Cl-InfoNCE's shared-cluster positives);
- :func:`kmeans_clusters`: k-means on L2-normalised embeddings (scikit-learn);
- :func:`fit_hierarchical_prototypes`: bottom-up hierarchical k-means with per-prototype
  concentrations :math:`\phi` (Guo et al., CVPR 2022, after PCL, Li et al., ICLR 2021).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from hiercon.errors import LossInputError
from hiercon.losses.hierarchy_masks import row_group_ids
from hiercon.taxonomy.data_driven import hierarchical_kmeans
from hiercon.taxonomy.label_space import LabelSpace

if TYPE_CHECKING:
    from hiercon.taxonomy import LabelTaxonomy


def attribute_entropies(attributes: torch.Tensor) -> torch.Tensor:
    """``[m]`` float64: the entropy (bits) of each attribute column's empirical value distribution."""
    attributes = _check_matrix(attributes, "attributes")
    entropies = []
    for column in attributes.T:
        counts = torch.unique(column, return_counts=True)[1].double()
        share = counts / counts.sum()
        entropies.append(-(share * share.log2()).sum())
    return torch.stack(entropies)


def attribute_clusters(attributes: torch.Tensor, top_k: int) -> torch.Tensor:
    """``[n]`` long cluster ids: the joint value of the ``top_k`` attributes of highest entropy.

    Attributes are ranked by entropy, highest first (ties by column order); items with the same
    values on the chosen columns share a cluster. Ids are ``0 .. G-1`` in sorted order of the values.
    """
    attributes = _check_matrix(attributes, "attributes")
    if not 1 <= int(top_k) <= attributes.shape[1]:
        raise LossInputError(f"top_k must be between 1 and the {attributes.shape[1]} attributes, got {top_k}")
    order = torch.sort(attribute_entropies(attributes), descending=True, stable=True)[1]
    return row_group_ids(attributes[:, order[: int(top_k)]])


def taxonomy_level_nodes(taxonomy: LabelTaxonomy, depth: int) -> torch.Tensor:
    """The node ids standing at ``depth`` (a shallower leaf stands for itself at deeper depths)."""
    if not 0 <= int(depth) < int(taxonomy.num_levels):
        raise LossInputError(f"depth must be between 0 and {int(taxonomy.num_levels) - 1}, got {depth}")
    return LabelSpace(taxonomy).level_occupancy[:, int(depth)].nonzero().flatten()


def taxonomy_level_clusters(taxonomy: LabelTaxonomy, labels: torch.Tensor, depth: int) -> torch.Tensor:
    """``[n, C_depth]`` multi-hot: which nodes of ``depth`` each item holds (columns in the order of
    :func:`taxonomy_level_nodes`).

    ``labels`` are multi-hot over the taxonomy's nodes or leaves, or node ids (ancestors are
    switched on). A multi-label item may hold several nodes of the level: Cl-InfoNCE then makes
    two items positive when they share one (e.g. the Ekman emotions of two GoEmotions texts).
    """
    nodes = taxonomy_level_nodes(taxonomy, depth).to(labels.device)
    space = LabelSpace(taxonomy)
    return space.to_nodes(space.multi_hot(labels)).to(labels.device)[:, nodes]


def kmeans_clusters(
    embeddings: torch.Tensor, n_clusters: int, seed: int = 0, normalize: bool = True, n_init: int = 4
) -> torch.Tensor:
    """``[n]`` long: k-means cluster of each (L2-normalised, if ``normalize``) embedding (one level of
    :func:`~hiercon.taxonomy.hierarchical_kmeans`)."""
    points = _points(embeddings, normalize)
    _check_cluster_count(n_clusters, points.shape[0])
    clustering = hierarchical_kmeans(points, int(n_clusters), seed=seed, normalize=False, n_init=n_init)
    return clustering.assignments[:, 0]


@dataclass
class HierarchicalPrototypes:
    """Hierarchical prototypes, finest level first.

    Attributes:
        centroids: per level, L2-normalised prototypes ``[M_l, dim]``.
        assignments: ``[n, levels]`` long: each clustered item's prototype at every level
            (the ``labels`` HCSC reads, indexed by the items of a batch).
        parents: per level but the top, ``[M_l]`` long: the level-``l + 1`` parent of each prototype.
        concentrations: per level, ``[M_l]``: the temperatures :math:`\\phi`.
    """

    centroids: list[torch.Tensor]
    assignments: torch.Tensor
    parents: list[torch.Tensor]
    concentrations: list[torch.Tensor]

    @property
    def num_levels(self) -> int:
        return len(self.centroids)


def concentration(
    members: torch.Tensor,
    centroids: torch.Tensor,
    assignments: torch.Tensor,
    temperature: float = 0.2,
    percentiles: tuple[float, float] = (10.0, 90.0),
) -> torch.Tensor:
    r"""PCL's concentration estimate per cluster, used as its temperature.

    :math:`\phi_c = \frac{\frac{1}{n_c} \sum_{x \in c} \lVert x - c \rVert}{\log(n_c + 10)}`; a
    cluster with at most one member gets the largest value of the others; the values are clipped
    to the given percentiles and rescaled so that their mean is ``temperature``.
    """
    members, centroids = members.double(), centroids.double()
    count = centroids.shape[0]
    distances = (members - centroids[assignments]).norm(dim=1)
    sizes = torch.bincount(assignments, minlength=count).double()
    mean_distance = torch.zeros(count, dtype=torch.float64).index_add(0, assignments, distances)
    phi = mean_distance / sizes.clamp_min(1) / torch.log(sizes + 10)
    crowded = sizes > 1
    largest = phi[crowded].max() if bool(crowded.any()) else torch.tensor(1.0, dtype=torch.float64)
    phi = torch.where(crowded, phi, largest)
    low, high = np.percentile(phi.numpy(), percentiles)
    phi = phi.clamp(float(low), float(high))
    if not bool(phi.mean() > 0):
        phi = torch.ones_like(phi)
    return (temperature * phi / phi.mean()).float()


def fit_hierarchical_prototypes(
    embeddings: torch.Tensor,
    n_clusters: Sequence[int],
    temperature: float = 0.2,
    seed: int = 0,
) -> HierarchicalPrototypes:
    """Bottom-up hierarchical k-means (HCSC): level 1 clusters the L2-normalised embeddings into
    ``n_clusters[0]`` prototypes, level ``l + 1`` clusters level ``l``'s normalised prototypes
    into ``n_clusters[l]``; assignments are composed; :func:`concentration` gives :math:`\\phi`
    from the members of each prototype (items at level 1, child prototypes above).
    """
    points = torch.as_tensor(_points(embeddings, normalize=True))
    clustering = hierarchical_kmeans(points, n_clusters=n_clusters, seed=seed, normalize=False)
    centroids, parents, concentrations = [], [], []
    members, member_ids = points, clustering.assignments[:, 0]
    for level, raw in enumerate(clustering.centroids):
        raw = raw.double()
        concentrations.append(concentration(members, raw, member_ids, temperature))
        normalised = torch.nn.functional.normalize(raw, dim=1)
        if level + 1 < len(clustering.centroids):
            coarser = clustering.centroids[level + 1].double()
            parent = (normalised @ coarser.T - 0.5 * (coarser**2).sum(dim=1)[None, :]).argmax(dim=1)
            parent[clustering.assignments[:, level]] = clustering.assignments[:, level + 1]
            parents.append(parent)
            members, member_ids = normalised, parent
        centroids.append(normalised.float())
    return HierarchicalPrototypes(centroids, clustering.assignments, parents, concentrations)


def _points(embeddings: torch.Tensor, normalize: bool) -> np.ndarray:
    points = _check_matrix(torch.as_tensor(embeddings), "embeddings").detach().double()
    if not bool(torch.isfinite(points).all()):
        raise LossInputError("embeddings hold NaN or infinite values")
    if normalize:
        points = torch.nn.functional.normalize(points, dim=1)
    return points.cpu().numpy()


def _check_matrix(values: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values)
    if values.dim() != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise LossInputError(
            f"{name} must be a non-empty [n, columns] matrix, got shape {tuple(values.shape)}"
        )
    return values


def _check_cluster_count(n_clusters: int, available: int) -> None:
    if not 1 <= int(n_clusters) <= available:
        raise LossInputError(f"n_clusters must be between 1 and the {available} points, got {n_clusters}")
