"""Compiled contract artifacts from ``contracts/build`` (written by ``contracts/compile.mjs``).

ABIs and bytecode are always read from the build output, never copied into Python.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

BUILD_DIR = Path(
    os.environ.get(
        "KYODO_CONTRACTS_BUILD", Path(__file__).resolve().parents[2] / "contracts" / "build"
    )
)


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact of contract ``name`` (e.g. ``"RewardDistributor"``)."""
    path = BUILD_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LookupError(f"no artifact {path}; run `node contracts/compile.mjs`") from None
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
    )


def artifact_names() -> list[str]:
    """Every compiled contract (not input.json)."""
    return sorted(p.stem for p in BUILD_DIR.glob("*.json") if p.name != "input.json")
