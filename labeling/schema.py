"""Label schemas and annotation values: what a campaign accepts, checked before any write."""

from __future__ import annotations

import math
import re
import unicodedata
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
MAX_BOXES = 200
# A box may overshoot the image edge by this much (rounding in a browser's canvas maths).
BOX_EDGE_TOLERANCE = 1e-6


def normalize_schema(raw: Any, *, task_type: str) -> dict[str, Any]:
    """A canonical schema, or `ApplicationError(code="invalid_schema")` naming the problem."""
    # image_bbox values are validated below (`validate_boxes`); campaigns of that type open once
    # the annotation API passes `boxes` through (labeling/services/annotations.py).
    if task_type == TaskType.TEXT_SPANS:
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
        if _has_control(name):
            # A NUL cannot be stored in PostgreSQL text or jsonb (it was a 500, issue 15).
            raise ApplicationError(
                f"class {index}: name must not contain control characters", code="invalid_schema"
            )
        if name in names:
            raise ApplicationError(f"class {name!r} appears twice", code="invalid_schema")
        hotkey = entry.get("hotkey", str(index + 1) if index < 9 else "")
        bad_hotkey = not isinstance(hotkey, str) or len(hotkey) > 1 or _has_control(hotkey)
        if bad_hotkey or (hotkey and hotkey in hotkeys):
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


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) == "Cc" for char in text)


def validate_value(
    *, task_type: str, schema: dict[str, Any], label: Any = None, boxes: Any = None
) -> dict[str, Any]:
    """Check one annotation against the campaign's schema; return the value to store.

    Classification: `label` is a class name; stored as `{"label": name}`. Bounding boxes
    (`image_bbox`): `boxes` is a list of `{x, y, w, h, label}`, see `validate_boxes`; stored as
    `{"boxes": [...]}`. (A list sent as `label` is read as boxes too.)
    """
    names = [c["name"] for c in schema["classes"]]
    if task_type == TaskType.IMAGE_BBOX:
        if boxes is None and isinstance(label, list):
            boxes, label = label, None
        if label is not None:
            raise ApplicationError(
                "a bounding-box task takes `boxes`, not `label`", code="invalid_boxes"
            )
        return {"boxes": validate_boxes(boxes, names=names)}
    if boxes is not None:
        raise ApplicationError("this task takes a `label`, not `boxes`", code="invalid_value")
    if not isinstance(label, str) or label not in names:
        raise ApplicationError(
            f"unknown class {shown(label)}; expected one of {names}",
            code="unknown_class",
            extra={"classes": names},
        )
    return {"label": label}


SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """A submitted value as an error message quotes it: its repr, cut to SHOWN_CHARS characters,
    so a megabyte label does not come back as a megabyte error (issue 15)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def validate_boxes(raw: Any, *, names: list[str]) -> list[dict[str, Any]]:
    """Bounding boxes in image fractions: `x`, `y` (top-left corner) and `w`, `h` (size), each a
    number from 0 to 1 relative to the image's width or height, so the same box fits any rendering
    size of the image and needs no pixel dimensions to check; `x + w` and `y + h` stay within 1.
    Boxes have a positive size and a class of the schema. An empty list means "nothing to box".
    Coordinates are kept to 6 decimals (a micro-pixel on a 1000-pixel image).
    """
    if not isinstance(raw, list):
        raise ApplicationError("boxes must be a list of {x, y, w, h, label}", code="invalid_boxes")
    if len(raw) > MAX_BOXES:
        raise ApplicationError(f"at most {MAX_BOXES} boxes per item", code="invalid_boxes")
    out: list[dict[str, Any]] = []
    for index, box in enumerate(raw):
        if not isinstance(box, dict) or set(box) != {"x", "y", "w", "h", "label"}:
            raise ApplicationError(
                f"box {index}: expected exactly the keys x, y, w, h, label", code="invalid_boxes"
            )
        coords: dict[str, float] = {}
        for key in ("x", "y", "w", "h"):
            value = box[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApplicationError(f"box {index}: {key} must be a number", code="invalid_boxes")
            if not math.isfinite(value) or not 0.0 <= value <= 1.0:
                raise ApplicationError(
                    f"box {index}: {key} must be between 0 and 1 (a fraction of the image)",
                    code="invalid_boxes",
                )
            coords[key] = float(value)
        if coords["w"] <= 0 or coords["h"] <= 0:
            raise ApplicationError(f"box {index}: w and h must be positive", code="invalid_boxes")
        for start, size in (("x", "w"), ("y", "h")):
            if coords[start] + coords[size] > 1.0 + BOX_EDGE_TOLERANCE:
                raise ApplicationError(
                    f"box {index}: {start} + {size} reaches past the image edge",
                    code="invalid_boxes",
                )
        if box["label"] not in names:
            raise ApplicationError(
                f"box {index}: unknown class {shown(box['label'])}; expected one of {names}",
                code="unknown_class",
                extra={"classes": names},
            )
        out.append({**{k: round(v, 6) for k, v in coords.items()}, "label": box["label"]})
    return out
