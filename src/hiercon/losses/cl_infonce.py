r"""Clustering InfoNCE (Cl-InfoNCE) of Tsai et al. (ICLR 2022): SupCon over cluster ids."""

from __future__ import annotations

from typing import ClassVar

from hiercon.losses.supcon import SupConLoss

CL_INFONCE_CITATION = """@inproceedings{tsai2022learning,
  title     = {Learning Weakly-Supervised Contrastive Representations},
  author    = {Tsai, Yao-Hung Hubert and Li, Tianqin and Liu, Weixin and Liao, Peiyuan
               and Salakhutdinov, Ruslan and Morency, Louis-Philippe},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2022}
}"""


class ClInfoNCELoss(SupConLoss):
    r"""Cl-InfoNCE of Tsai et al., "Learning Weakly-Supervised Contrastive Representations" (ICLR 2022).

    Data are first grouped into clusters :math:`z` (from auxiliary attributes, a level of a
    label hierarchy, or k-means on the embeddings: see :mod:`hiercon.losses.clustering`); then
    views of items in the same cluster are positives and every other view is a negative:

    .. math::

        L = \frac{1}{|A|} \sum_{a \in A} \frac{-1}{|P(a)|} \sum_{p \in P(a)}
            \log \frac{e^{z_a \cdot z_p / \tau}}{\sum_{k \ne a} e^{z_a \cdot z_k / \tau}},
        \qquad P(a) = \{p \ne a : z(p) = z(a)\}

    (the estimator :math:`\log \frac{e^{f(x_i, y_i)}}{\frac1n \sum_j e^{f(x_i, y_j)}}` of the paper
    with :math:`f = \cos / \tau`, in the form of the reference code, which is SupCon's
    :math:`L_{out}`). Instance ids as clusters give SimCLR; downstream labels give SupCon.

    ``labels`` are cluster ids ``[B]`` (a negative id: no cluster), or multi-hot cluster
    memberships ``[B, C]`` for items in several clusters (e.g. the Ekman level of a multi-label
    emotion): two items are then positive when they share a cluster (SupCon-ANY). An item
    without a cluster has no positive, not even its own other views: it adds nothing but stays a
    negative of the other anchors (as in :class:`~hiercon.losses.SupConLoss`). The schedule
    that recomputes k-means clusters belongs to the trainer; the loss only reads the ids.
    ``base_temperature`` multiplies by :math:`\tau / \tau_{base}` (the code fixes 0.07).
    """

    citation: ClassVar[str] = CL_INFONCE_CITATION
    label_kind: ClassVar[str] = "clusters"

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        gather_across_processes: bool = True,
    ) -> None:
        super().__init__(
            temperature,
            base_temperature=base_temperature,
            variant="out",
            positives="any",
            gather_across_processes=gather_across_processes,
        )
