"""Writes of the quality engine: consensus per item, full refits, model training."""

from .consensus import item_consensus_update, items_consensus_update
from .refit import campaign_refit, campaigns_refit_due
from .sweep import consensus_sweep_lagging
from .training import model_train
from .workers import worker_reinstate

__all__ = [
    "campaign_refit",
    "campaigns_refit_due",
    "consensus_sweep_lagging",
    "item_consensus_update",
    "items_consensus_update",
    "model_train",
    "worker_reinstate",
]
