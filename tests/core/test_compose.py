"""compose.yaml's workers against the settings: every queue a task is routed to has a worker,
and the refit worker keeps its bound (one process, at a lower priority). compose cannot run on
this machine (no Docker engine), so its structure is what can be checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    return services


def _queues_of(command: list[str]) -> set[str]:
    return set(command[command.index("-Q") + 1].split(",")) if "-Q" in command else set()


def test_every_routed_queue_has_a_worker() -> None:
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    routed.add(settings.CELERY_TASK_DEFAULT_QUEUE)
    served: set[str] = set()
    for service in _services().values():
        served |= _queues_of(list(service.get("command", [])))
    assert routed <= served, f"queues no compose worker consumes: {sorted(routed - served)}"


def test_refits_have_one_low_priority_process_of_their_own() -> None:
    assert settings.CELERY_TASK_ROUTES["quality.refit_campaign"] == {"queue": "refit"}
    assert settings.CELERY_TASK_ROUTES["quality.train_model"] == {"queue": "refit"}
    command = list(_services()["worker-refit"]["command"])
    assert command[:3] == ["nice", "-n", "10"]
    assert _queues_of(command) == {"refit"}
    assert command[command.index("--concurrency") + 1] == "1"
    for name, service in _services().items():
        if name != "worker-refit":
            assert "refit" not in _queues_of(list(service.get("command", []))), name
