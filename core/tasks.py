from __future__ import annotations

from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from .publisher import publisher


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Enqueue a task by name once the surrounding transaction commits.

    By name, so that an app can hand work forward without importing the app that does it
    (labeling → quality → rewards). A registered task goes through its own apply_async, so
    eager mode in tests and its routing both apply.
    """
    transaction.on_commit(lambda: current_app.signature(task_name, args=args).apply_async())


def enqueue_on_commit_in_background(task_name: str, *args: Any) -> None:
    """`enqueue_on_commit`, published by this process's publisher thread (core/publisher.py), so
    the caller does not wait on the broker. Only for a task that a sweep sends again when its
    message is lost. Eager mode, or KYODO_BACKGROUND_PUBLISH=0: as `enqueue_on_commit`.
    """
    if current_app.conf.task_always_eager or not settings.KYODO_BACKGROUND_PUBLISH:
        enqueue_on_commit(task_name, *args)
        return
    transaction.on_commit(lambda: publisher.put(task_name, args))
