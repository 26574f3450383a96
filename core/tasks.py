from __future__ import annotations

from typing import Any

from celery import current_app
from django.db import transaction

# Every task enqueued by name through the helpers below, with the modules that enqueue it.
# `manage.py check` finds each among the Celery app's registered tasks (core/checks.py,
# kyodo.E001), so a renamed task fails the check, not production; tests/core/test_checks.py
# reads the call sites and holds this list to them. A new call site: add its name and module here.
ENQUEUED_BY_NAME: dict[str, tuple[str, ...]] = {
    "datasets.build_export": ("datasets.services",),
    "labeling.run_import": ("labeling.services.imports",),
    "quality.refit_campaign": ("quality.services.consensus",),
    "quality.train_model": ("quality.services.refit",),
    "quality.update_items": (
        "labeling.services.annotations",
        "quality.services.refit_items",
        "quality.services.sweep",
    ),
    "rewards.account_items": ("quality.services.closing",),
    "rewards.outbox_process": ("rewards.services.outbox",),
    "rewards.settle_tick": ("rewards.services.outbox",),
    "storage.ensure_pins": ("storage.pins",),
}


def enqueue_on_commit(task_name: str, *args: Any) -> None:
    """Enqueue a task by name once the surrounding transaction commits.

    By name, so that an app can hand work forward without importing the app that does it
    (labeling → quality → rewards). A registered task goes through its own apply_async, so
    eager mode in tests and its routing both apply.
    """
    transaction.on_commit(lambda: current_app.signature(task_name, args=args).apply_async())
