"""The committed artifacts are exactly what contracts/compile.mjs produces from the sources."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from rewards.chain import load_artifact
from rewards.chain.artifacts import BUILD_DIR, artifact_names

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_committed_artifacts_match_the_sources() -> None:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "solc").exists():
        pytest.skip("node or node_modules/solc is missing")
    result = subprocess.run(
        [node, "contracts/compile.mjs", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compiler_input_is_pinned_and_self_contained() -> None:
    data = json.loads((BUILD_DIR / "input.json").read_text())
    settings = data["settings"]
    assert settings["evmVersion"] == "cancun"
    assert settings["optimizer"]["enabled"] is True
    assert settings["remappings"] == ["@openzeppelin/=node_modules/@openzeppelin/"]
    sources = data["sources"]
    assert "contracts/src/RewardDistributor.sol" in sources
    assert all("content" in s for s in sources.values())
    oz = [name for name in sources if name.startswith("node_modules/@openzeppelin/contracts/")]
    assert "node_modules/@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol" in oz
    assert (BUILD_DIR / "solc-version.txt").read_text().startswith("0.8.37+commit.")


def test_artifacts_have_abi_and_bytecode() -> None:
    assert {"KyodoToken", "RewardDistributor", "MockToken", "PushPayout"} <= set(artifact_names())
    for name in artifact_names():
        artifact = load_artifact(name)
        assert artifact.abi
        assert len(artifact.bytecode) > len(artifact.deployed_bytecode) > 2
        # Every artifact ends with solc's CBOR metadata naming the pinned compiler, 0.8.37.
        assert artifact.deployed_bytecode.endswith("64736f6c6343000825" + "0033")


def test_claim_hot_path_storage_packing() -> None:
    """claim() reads Pausable's flag and the outstanding total with one SLOAD: keep them packed."""
    raw = json.loads((BUILD_DIR / "RewardDistributor.json").read_text())
    slots = {v["label"]: (v["slot"], v["offset"]) for v in raw["storageLayout"]["storage"]}
    assert slots["_paused"][0] == slots["_outstanding"][0]
