"""Writes of the quality engine: consensus per item, full refits, model training."""

from .consensus import item_consensus_update
from .refit import campaign_refit
from .training import model_train
from .workers import worker_reinstate

__all__ = ["campaign_refit", "item_consensus_update", "model_train", "worker_reinstate"]
