"""Job rows: background work recorded as a row (an import, an export) that a worker claims before it
acts and that ends done or failed in that same row.

A job model has the fields of `JobRow` (`status` with `JobStatus` choices, `attempts`, `error`,
`finished_at`) and, if its runs hold a lease, `locked_until`. The helpers work on any such model;
they set the status, never anything of the job's own domain.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from django.db import models, transaction
from django.utils import timezone


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


FINISHED = (JobStatus.DONE, JobStatus.FAILED)


class JobRow(Protocol):
    pk: Any
    status: str
    attempts: int
    error: str
    finished_at: datetime | None

    def save(self, *, update_fields: Iterable[str] | None = None) -> None: ...


class LeasedJobRow(JobRow, Protocol):
    locked_until: datetime | None


M = TypeVar("M", bound=models.Model)


def job_claim(model: type[M], job_id: int, *, lease: timedelta | None = None) -> M | None:
    """Take the job for this run: running, one attempt more. None if it is missing or finished,
    or, with `lease`, while another run's lease on it lasts (this run then holds a new one)."""
    with transaction.atomic():
        job = model._default_manager.select_for_update().filter(pk=job_id).first()
        if job is None:
            return None
        # A model with JobRow's fields: typing has no "Model and protocol" to say it.
        row = cast(LeasedJobRow, job)
        if row.status in FINISHED:
            return None
        fields = ["status", "attempts"]
        if lease is not None:
            now = timezone.now()
            if row.locked_until is not None and row.locked_until > now:
                return None
            row.locked_until = now + lease
            fields.append("locked_until")
        row.status = JobStatus.RUNNING
        row.attempts += 1
        _save(row, fields)
        return job


def job_done(job: JobRow, **fields: Any) -> None:
    """Finish the job, saving `fields` (its results) with the status."""
    _finish(job, JobStatus.DONE, fields)


def job_fail(job: JobRow, reason: str, **fields: Any) -> None:
    """Fail the job for good with `reason`, saving `fields` with the status."""
    _finish(job, JobStatus.FAILED, {"error": reason, **fields})


def _finish(job: JobRow, status: JobStatus, fields: dict[str, Any]) -> None:
    values = {"status": status, **fields, "finished_at": timezone.now()}
    for name, value in values.items():
        setattr(job, name, value)
    _save(job, list(values))


def _save(job: JobRow, fields: list[str]) -> None:
    # `update_fields` leaves out auto_now timestamps (`updated_at`) unless they are named.
    assert isinstance(job, models.Model)
    touched = [f.name for f in job._meta.concrete_fields if getattr(f, "auto_now", False)]
    job.save(update_fields=fields + touched)
