"""Django's PostgreSQL backend, on the embedded server (core.embedded_postgres).

The server is started (or joined) at this process's first connection, not when the settings
load, so a process that never touches the database (mypy's Django plugin, `ruff`, a Celery
worker that has not yet run a task) starts nothing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base

from . import join


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params["host"] = str(join(settings.VAR_DIR).socket_dir)
        return params
