"""Writes of the labeling app. Other apps call these, never the models, and import them from
here, never from a module of this package."""

from .annotations import annotation_submit, annotation_submit_label_for_token
from .blocks import worker_block, worker_blocked_error, worker_unblock
from .campaigns import campaign_create, campaign_set_status
from .hot_sql import LEASE_NEXT
from .imports import import_job_create, import_job_run
from .ingest import UploadResult, items_upload
from .items import items_complete, items_set_priority
from .leases import (
    LEASE_LOCK_CLASS,
    leases_expire,
    task_lease_next,
    task_lease_next_for_token,
    task_lease_next_in,
)

__all__ = [
    "LEASE_LOCK_CLASS",
    "LEASE_NEXT",
    "UploadResult",
    "annotation_submit",
    "annotation_submit_label_for_token",
    "campaign_create",
    "campaign_set_status",
    "import_job_create",
    "import_job_run",
    "items_complete",
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
