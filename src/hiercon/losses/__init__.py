"""hiercon's losses: the contrastive losses of stage 1, one pairwise core (:mod:`hiercon.losses.core`) and
one builder per loss, and the classification objectives of stage 2 (:mod:`hiercon.losses.classification`)."""

from __future__ import annotations

from hiercon._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "SupConLoss": "hiercon.losses.supcon",
    "JaccardSupConLoss": "hiercon.losses.jaccard_supcon",
    "MulSupConLoss": "hiercon.losses.mulsupcon",
    "AbaloneLoss": "hiercon.losses.abalone",
    "RegLoss": "hiercon.losses.reg",
    "PrototypeLoss": "hiercon.losses.prototype",
    "HiMulConELoss": "hiercon.losses.himulcone",
    "ClInfoNCELoss": "hiercon.losses.cl_infonce",
    "HCSCLoss": "hiercon.losses.hcsc",
    "MomentumQueue": "hiercon.losses.momentum",
    "RankedContrastiveLoss": "hiercon.losses.ranked",
    "ContrastiveLoss": "hiercon.losses.base",
    "BinaryCrossEntropy": "hiercon.losses.classification",
    "AsymmetricLoss": "hiercon.losses.classification",
    "HierarchyConsistencyPenalty": "hiercon.losses.classification",
    "build_objective": "hiercon.losses.classification",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
