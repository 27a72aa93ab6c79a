"""Model cards and Hub publishing for hiercon classifiers."""

from __future__ import annotations

from hiercon._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "HierconCardData": "hiercon.hub.card_data",
    "build_model_card": "hiercon.hub.model_card",
    "save_model_card": "hiercon.hub.model_card",
    "build_encoder_card": "hiercon.hub.model_card",
    "dataset_statistics": "hiercon.hub.model_card",
    "hub_model_id": "hiercon.hub.model_ids",
    "push_model_folder": "hiercon.hub.push",
    "PushError": "hiercon.hub.push",
    "PushResult": "hiercon.hub.push",
}

__all__ = list(_EXPORTS)

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
