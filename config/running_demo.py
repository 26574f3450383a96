"""What a running `make demo` shares with a second shell in the same checkout.

The demo starts its services with settings that a plain `manage.py` would not know: anvil's RPC
URL (on `KYODO_ANVIL_PORT`), the demo's epoch and poll periods, any service URL it was given.
While it runs it writes them to `var/demo-env.json` with its pid; the development settings
(`config.settings.local`) apply them to a `manage.py` run from another shell, for every variable
that shell did not set itself, so `settle_epoch`, `verify_epoch`, `shell` or `createsuperuser`
reach the demo's database (the embedded server is joined through its socket under var/), broker
(a folder under var/, or the demo's REDIS_URL) and chain. Once the demo has stopped (its pid gone),
the file is ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import psutil

# The variables the demo's processes see that a second shell should see too.
SHARED_PREFIXES = ("KYODO_",)
SHARED_NAMES = ("ETH_RPC_URL", "REDIS_URL", "IPFS_API_URL", "DATABASE_URL")


def var_dir() -> Path:
    """The settings' VAR_DIR, known before the settings load."""
    default = Path(__file__).resolve().parent.parent / "var"
    return Path(os.environ.get("KYODO_VAR_DIR", default))


def env_file() -> Path:
    return var_dir() / "demo-env.json"


def shared(env: Mapping[str, str], since: Mapping[str, str]) -> dict[str, str]:
    """The shareable variables that `env` has and `since` (the demo's own start) did not."""
    return {
        name: value
        for name, value in env.items()
        if (name in SHARED_NAMES or name.startswith(SHARED_PREFIXES)) and since.get(name) != value
    }


def write(env: dict[str, str]) -> None:
    env_file().write_text(json.dumps({"pid": os.getpid(), "env": env}, indent=1))


def remove() -> None:
    env_file().unlink(missing_ok=True)


def apply() -> dict[str, str]:
    """Set, in this process, the running demo's variables that are not set here; what was set."""
    try:
        recorded = json.loads(env_file().read_text())
    except (OSError, ValueError):
        return {}
    pid = int(recorded.get("pid", 0))
    if pid <= 0 or not psutil.pid_exists(pid):
        return {}
    added = {k: v for k, v in recorded.get("env", {}).items() if k not in os.environ}
    os.environ.update(added)
    return added
