"""Writes of the labeling app. Other apps call these, never the models."""

from .annotations import annotation_submit, annotation_submit_label_for_token
from .blocks import worker_block, worker_blocked_error, worker_unblock
from .campaigns import campaign_create, campaign_set_status
from .imports import import_job_create, import_job_run
from .ingest import UploadResult, items_upload
from .items import item_complete, item_set_priority, items_set_priority
from .leases import (
    leases_expire,
    task_lease_next,
    task_lease_next_for_token,
    task_lease_next_in,
)

__all__ = [
    "UploadResult",
    "annotation_submit",
    "annotation_submit_label_for_token",
    "campaign_create",
    "campaign_set_status",
    "import_job_create",
    "import_job_run",
    "item_complete",
    "item_set_priority",
    "items_set_priority",
    "items_upload",
    "leases_expire",
    "task_lease_next",
    "task_lease_next_for_token",
    "task_lease_next_in",
    "worker_block",
    "worker_blocked_error",
    "worker_unblock",
]
