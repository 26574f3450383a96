"""A second shell takes a running demo's service settings (config/running_demo.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import running_demo


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KYODO_VAR_DIR", str(tmp_path))
    for name in ("ETH_RPC_URL", "KYODO_EPOCH_SECONDS", "REDIS_URL"):
        # Set, then deleted: monkeypatch restores what was there (or nothing) after the test,
        # whatever `apply` sets meanwhile.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    return tmp_path


def test_shared_keeps_only_what_the_demo_set_of_the_service_settings() -> None:
    started = {"PATH": "/bin", "KYODO_EPOCH_SECONDS": "60", "REDIS_URL": "redis://x"}
    env = {
        **started,
        "ETH_RPC_URL": "http://127.0.0.1:8545",  # set by the demo
        "KYODO_EPOCH_SECONDS": "120",  # changed by the demo
        "DJANGO_DEBUG": "0",  # not a service setting
        "HOME": "/root",
    }
    assert running_demo.shared(env, since=started) == {
        "ETH_RPC_URL": "http://127.0.0.1:8545",
        "KYODO_EPOCH_SECONDS": "120",
    }


def test_a_second_shell_takes_what_it_has_not_set(
    var_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running_demo.write({"ETH_RPC_URL": "http://127.0.0.1:8545", "KYODO_EPOCH_SECONDS": "120"})
    monkeypatch.setenv("KYODO_EPOCH_SECONDS", "30")  # the shell's own choice wins
    assert running_demo.apply() == {"ETH_RPC_URL": "http://127.0.0.1:8545"}
    assert os.environ["ETH_RPC_URL"] == "http://127.0.0.1:8545"
    assert os.environ["KYODO_EPOCH_SECONDS"] == "30"
    running_demo.remove()
    assert not running_demo.env_file().exists()


def test_a_stopped_demos_file_is_ignored(var_dir: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    running_demo.env_file().write_text(
        json.dumps({"pid": int(gone.stdout), "env": {"ETH_RPC_URL": "http://127.0.0.1:8545"}})
    )
    assert running_demo.apply() == {}
    assert "ETH_RPC_URL" not in os.environ
    running_demo.env_file().write_text("{not json")
    assert running_demo.apply() == {}
