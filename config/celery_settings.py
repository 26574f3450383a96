"""Celery's settings: Django's `CELERY_*` settings, copied into a plain dict.

Celery reads a dozen of its settings on every publish. Read through Django's lazy settings object
(`config_from_object("django.conf:settings", namespace="CELERY")`) each read costs tens of
microseconds, a sixth of a publish, and a publish happens on every submitted label
(bench/README.md, "Next task"). Celery imports this module the first time it needs a setting,
after Django's settings are loaded. A change to a `CELERY_*` Django setting after that does not
reach Celery: change `celery_app.conf` instead (the tests do).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

PREFIX = "CELERY_"

CELERY: dict[str, Any] = {
    name.removeprefix(PREFIX).lower(): getattr(settings, name)
    for name in dir(settings)
    if name.startswith(PREFIX)
}
