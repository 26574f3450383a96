"""Label schemas and annotation values: what a campaign accepts, checked before any write."""

from __future__ import annotations

import re
from typing import Any

from core.errors import ApplicationError

from .models import TaskType

# Colour-blind-safe defaults (Wong palette, then Tol), cycled.
DEFAULT_COLOURS = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
]
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_CLASSES = 200


def normalize_schema(raw: Any, *, task_type: str) -> dict[str, Any]:
    """A canonical schema, or `ApplicationError(code="invalid_schema")` naming the problem."""
    if task_type in (TaskType.IMAGE_BBOX, TaskType.TEXT_SPANS):
        raise ApplicationError(
            f"task type {task_type} is not available yet", code="unsupported_task_type"
        )
    classes = raw.get("classes") if isinstance(raw, dict) else raw
    if not isinstance(classes, list) or not 2 <= len(classes) <= MAX_CLASSES:
        raise ApplicationError(
            f"classes must be a list of 2 to {MAX_CLASSES} entries", code="invalid_schema"
        )
    out: list[dict[str, str]] = []
    names: set[str] = set()
    hotkeys: set[str] = set()
    for index, entry in enumerate(classes):
        entry = {"name": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or set(entry) - {"name", "hotkey", "color"}:
            raise ApplicationError(
                f"class {index}: expected a name or {{name, hotkey, color}}", code="invalid_schema"
            )
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ApplicationError(
                f"class {index}: name must be 1-200 characters", code="invalid_schema"
            )
        name = name.strip()
        if name in names:
            raise ApplicationError(f"class {name!r} appears twice", code="invalid_schema")
        hotkey = entry.get("hotkey", str(index + 1) if index < 9 else "")
        if not isinstance(hotkey, str) or len(hotkey) > 1 or (hotkey and hotkey in hotkeys):
            raise ApplicationError(
                f"class {name!r}: hotkey must be one unused character", code="invalid_schema"
            )
        color = entry.get("color", DEFAULT_COLOURS[index % len(DEFAULT_COLOURS)])
        if not isinstance(color, str) or not _HEX.match(color):
            raise ApplicationError(f"class {name!r}: color must be #rrggbb", code="invalid_schema")
        names.add(name)
        if hotkey:
            hotkeys.add(hotkey)
        out.append({"name": name, "hotkey": hotkey, "color": color})
    return {"classes": out}


def validate_value(*, task_type: str, schema: dict[str, Any], label: Any) -> dict[str, Any]:
    """Check one annotation against the campaign's schema; return the value to store."""
    names = [c["name"] for c in schema["classes"]]
    if not isinstance(label, str) or label not in names:
        raise ApplicationError(
            f"unknown class {label!r}; expected one of {names}",
            code="unknown_class",
            extra={"classes": names},
        )
    return {"label": label}
