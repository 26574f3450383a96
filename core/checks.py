"""System check: every task named by a string is a registered Celery task.

Why: `core.tasks.enqueue_on_commit("quality.update_item", item_id)` names its task with a string,
so that labeling can hand work to quality without importing it (docs/architecture.md, "Apps and
their doors"), and beat's schedule names its tasks the same way. A renamed or removed task then
breaks nothing at import time: the message goes out under the old name and the worker discards
it as unregistered. This check makes that a failure of `manage.py check`, and of the deploy:
`manage.py migrate` (compose's `migrate` service, before web and worker start) runs the checks.

Design: the names are declared, not searched for in the source at start-up.
`core.tasks.ENQUEUED_BY_NAME` lists every task enqueued by name with the modules that enqueue it
(tests/core/test_checks.py reads the call sites and holds the list to them), and
CELERY_BEAT_SCHEDULE names the rest. The check imports every app's `tasks` module, as a worker's
autodiscovery does, and looks each name up in the registry of Celery's current app, the one
`enqueue_on_commit` sends through:

- kyodo.E001: a task enqueued by name is not registered (the message names who enqueues it);
- kyodo.E002: a beat entry's task is not registered;
- kyodo.W001: a CELERY_TASK_ROUTES pattern matches no registered task (a queue nothing reaches).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from celery import current_app
from celery.app.routes import MapRoute  # type: ignore[attr-defined]  # absent from celery-types
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning

from .tasks import ENQUEUED_BY_NAME


def check_task_names(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The check `manage.py check` runs (registered in core/apps.py)."""
    return task_name_problems(
        registered=registered_tasks(),
        enqueued=ENQUEUED_BY_NAME,
        beat=settings.CELERY_BEAT_SCHEDULE,
        routes=settings.CELERY_TASK_ROUTES,
    )


def registered_tasks() -> set[str]:
    """The names a worker of Celery's current app would register."""
    # Not `current_app.loader.import_default_modules()`, a worker's way: its signal makes Celery's
    # Django fix-up run Django's checks, this one among them.
    current_app.autodiscover_tasks(force=True)
    return set(current_app.tasks)


def task_name_problems(
    *,
    registered: Collection[str],
    enqueued: Mapping[str, tuple[str, ...]],
    beat: Mapping[str, Mapping[str, Any]],
    routes: Any,
) -> list[CheckMessage]:
    problems: list[CheckMessage] = [
        Error(
            f"Task {name!r} is enqueued by name in {', '.join(modules)}, but no Celery task is "
            f"registered under that name.",
            hint="Call it by the task's `name=` (in its app's tasks.py), and list that name in "
            "core.tasks.ENQUEUED_BY_NAME.",
            obj=name,
            id="kyodo.E001",
        )
        for name, modules in sorted(enqueued.items())
        if name not in registered
    ]
    problems += [
        Error(
            f"Beat entry {entry!r} runs task {schedule['task']!r}, but no Celery task is "
            f"registered under that name.",
            hint="Fix the entry's 'task' in CELERY_BEAT_SCHEDULE (config/settings/base.py) or "
            "the task's `name=`.",
            obj=entry,
            id="kyodo.E002",
        )
        for entry, schedule in sorted(beat.items())
        if schedule.get("task") not in registered
    ]
    patterns = routes.keys() if isinstance(routes, Mapping) else ()  # a router function: unread
    problems += [
        CheckWarning(
            f"CELERY_TASK_ROUTES pattern {_text(pattern)!r} matches no registered task.",
            hint="A renamed task may have left its queue: fix the pattern or remove it.",
            obj=_text(pattern),
            id="kyodo.W001",
        )
        for pattern in patterns
        if not any(_routes(pattern, name) for name in registered)
    ]
    return problems


def _routes(pattern: str | re.Pattern[str], name: str) -> bool:
    """Whether Celery routes the task by this pattern (a compiled pattern, a glob, a name)."""
    return MapRoute({pattern: {}})(name) is not None


def _text(pattern: str | re.Pattern[str]) -> str:
    return pattern.pattern if isinstance(pattern, re.Pattern) else pattern
