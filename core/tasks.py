from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Enqueue a task by name once the surrounding transaction commits.

    By name, so that an app can hand work forward without importing the app that does it
    (labeling → quality → rewards). A registered task goes through its own apply_async, so
    eager mode in tests and its routing both apply.
    """
    transaction.on_commit(lambda: current_app.signature(task_name, args=args).apply_async())
