"""core/checks.py: every task enqueued by name, or run by beat, is a registered Celery task, so a
renamed task fails `manage.py check`. And core.tasks.ENQUEUED_BY_NAME, the list the check reads,
names every call site (read from the source here, never at start-up).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path
from pprint import pformat
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.core.checks import Error
from django.core.checks import Warning as CheckWarning
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from core import tasks
from core.checks import check_task_names, registered_tasks, task_name_problems

# core.tasks and core.batches: the name comes first
HELPERS = {"enqueue_on_commit", "enqueue_batched_on_commit_or_log"}
CELERY_BY_NAME = {"send_task", "signature"}  # Celery's own, when called with a literal name


def test_the_real_configuration_passes() -> None:
    assert check_task_names() == []


def test_manage_py_check_passes() -> None:
    call_command("check")


def test_every_declared_and_scheduled_task_is_registered() -> None:
    registered = registered_tasks()
    assert set(tasks.ENQUEUED_BY_NAME) <= registered
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= registered


def test_a_made_up_name_fails_naming_who_enqueues_it() -> None:
    (error,) = task_name_problems(
        registered=registered_tasks(),
        enqueued={
            "quality.update_item": ("labeling.services.annotations",),
            "quality.update_itemz": ("labeling.services.annotations", "quality.services.sweep"),
        },
        beat={},
        routes={},
    )
    assert isinstance(error, Error)
    assert error.id == "kyodo.E001"
    assert error.msg == (
        "Task 'quality.update_itemz' is enqueued by name in labeling.services.annotations, "
        "quality.services.sweep, but no Celery task is registered under that name."
    )


def test_manage_py_check_fails_on_a_renamed_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tasks.ENQUEUED_BY_NAME, "quality.renamed", ("quality.services.sweep",))
    with pytest.raises(SystemCheckError, match=r"kyodo\.E001.*'quality\.renamed'"):
        call_command("check")


def test_a_beat_entry_of_no_task_fails(settings: Any) -> None:
    settings.CELERY_BEAT_SCHEDULE = {
        **settings.CELERY_BEAT_SCHEDULE,
        "expire-leases": {"task": "labeling.expire_lease", "schedule": 60.0},
    }
    (error,) = check_task_names()
    assert error.id == "kyodo.E002"
    assert error.msg.startswith("Beat entry 'expire-leases' runs task 'labeling.expire_lease'")


def test_a_route_of_no_task_warns(settings: Any) -> None:
    settings.CELERY_TASK_ROUTES = {
        **settings.CELERY_TASK_ROUTES,
        "ledger.*": {"queue": "chain"},
        re.compile(r"quality\.(update|refit)_"): {"queue": "quality"},
        re.compile(r"reward\.tick"): {"queue": "chain"},
        "rewards.tick": {"queue": "chain"},
    }
    problems = check_task_names()
    assert all(isinstance(p, CheckWarning) and p.id == "kyodo.W001" for p in problems)
    assert [p.obj for p in problems] == ["ledger.*", r"reward\.tick"]


# ENQUEUED_BY_NAME against the call sites.


def call_sites(roots: list[Path], base: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Each task name the helpers (or Celery's send_task/signature, with a literal) are called
    with, and the modules that do; and the calls whose name cannot be read from the source."""
    found: dict[str, set[str]] = defaultdict(set)
    unreadable = []
    for root in roots:
        for file in sorted(root.rglob("*.py")):
            if "migrations" in file.parts:
                continue
            parts = file.relative_to(base).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            tree = ast.parse(file.read_text(), str(file))
            constants = _string_constants(tree)
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                called, first = _called(node.func), node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    name: str | None = first.value
                elif isinstance(first, ast.Name):
                    name = constants.get(first.id)
                else:
                    name = None
                if called in HELPERS and name is None:
                    unreadable.append(f"{file.relative_to(base)}:{node.lineno}")
                elif called in HELPERS or (
                    called in CELERY_BY_NAME and _literal(first) is not None
                ):
                    found[str(name)].add(module)
    return dict(found), unreadable


def _string_constants(tree: ast.Module) -> dict[str, str]:
    constants = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        value = getattr(node, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            constants.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return constants


def _called(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def test_enqueued_by_name_lists_every_call_site() -> None:
    base = Path(settings.BASE_DIR)
    roots = [Path(c.path) for c in apps.get_app_configs() if Path(c.path).is_relative_to(base)]
    found, unreadable = call_sites(roots, base)
    assert not unreadable, (
        "Pass the task's name to enqueue_on_commit(_or_log) as a literal or a module-level "
        f"constant, so that its call site can be read here: {unreadable}"
    )
    declared = {name: set(modules) for name, modules in tasks.ENQUEUED_BY_NAME.items()}
    assert found == declared, (
        "core.tasks.ENQUEUED_BY_NAME must name every task enqueued by name and the modules that "
        "enqueue it (`manage.py check` verifies each is a registered task). From the call sites "
        f"it is:\n{pformat({name: tuple(sorted(found[name])) for name in sorted(found)})}"
    )


def test_the_call_site_reader_finds_literals_and_constants(tmp_path: Path) -> None:
    app = tmp_path / "shop"
    app.mkdir()
    (app / "services.py").write_text(
        "from core.batches import enqueue_batched_on_commit_or_log\n"
        "from core.tasks import enqueue_on_commit\n"
        'SHIP = "shop.ship"\n'
        "def order(pk: int) -> None:\n"
        '    enqueue_on_commit("shop.bill", pk)\n'
        "    enqueue_batched_on_commit_or_log(SHIP, pk)\n"
        '    current_app.send_task("shop.mail")\n'
        "    inspect.signature(order)\n"
    )
    (app / "tasks.py").write_text("def later(name: str) -> None:\n    enqueue_on_commit(name)\n")
    found, unreadable = call_sites([app], tmp_path)
    assert found == {
        "shop.bill": {"shop.services"},
        "shop.ship": {"shop.services"},
        "shop.mail": {"shop.services"},
    }
    assert unreadable == ["shop/tasks.py:2"]
