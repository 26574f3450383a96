"""rewards.chain.errors: revert data from either backend's exception, decoded by selector."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError

from rewards.chain import (
    ContractRevert,
    error_registry,
    error_selector,
    load_artifact,
    revert_data,
    reverts_translated,
    translate_revert,
)

OWNER = "0x" + "ab" * 20
NOT_OWNER = keccak(text="NotCampaignOwner(uint256,address)")[:4] + encode(
    ["uint256", "address"], [7, OWNER]
)


def test_selectors_are_computed_from_the_abis() -> None:
    assert error_selector("InvalidProof") == "0x" + keccak(text="InvalidProof()")[:4].hex()
    assert error_selector("AccessControlUnauthorizedAccount") == "0xe2517d3f"
    assert error_selector("EnforcedPause") == "0xd93c0665"
    with pytest.raises(KeyError):
        error_selector("NoSuchError")
    names = {spec.name for spec in error_registry().values()}
    for entry in load_artifact("RewardDistributor").abi:
        if entry["type"] == "error":
            assert entry["name"] in names


def test_anvil_style_exception_translates() -> None:
    exc = ContractCustomError("0x" + NOT_OWNER.hex(), data="0x" + NOT_OWNER.hex())
    revert = translate_revert(exc)
    assert revert is not None
    assert revert.selector == error_selector("NotCampaignOwner")
    assert revert.error_name == "NotCampaignOwner"
    assert revert.args_by_name == {"campaignId": 7, "caller": to_checksum_address(OWNER)}
    assert revert.code == "not_campaign_owner"
    assert revert.status_code == 409
    assert revert.extra["selector"] == revert.selector


def test_pyevm_style_exception_translates() -> None:
    exc = TransactionFailed(f"execution reverted: {NOT_OWNER!r}")
    revert = translate_revert(exc)
    assert revert is not None
    assert revert.error_name == "NotCampaignOwner"
    assert revert.args_by_name["campaignId"] == 7


def test_error_string_and_panic_translate() -> None:
    reason = TransactionFailed("execution reverted: not allowed")
    revert = translate_revert(reason)
    assert revert is not None
    assert revert.error_name == "Error"
    assert revert.args_by_name == {"message": "not allowed"}
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    revert = translate_revert(ContractLogicError("panic", data="0x" + panic.hex()))
    assert revert is not None
    assert revert.error_name == "Panic"
    assert revert.args_by_name == {"code": 0x11}


def test_wrapped_revert_is_found_and_other_errors_pass_through() -> None:
    inner = TransactionFailed(f"execution reverted: {NOT_OWNER!r}")
    outer = RuntimeError("wrapped")
    outer.__cause__ = inner
    assert revert_data(outer) == NOT_OWNER
    assert revert_data(ValueError(b"\x01\x02\x03\x04")) is None  # not a revert class
    with pytest.raises(ValueError, match="plain"), reverts_translated():
        raise ValueError("plain")
    with pytest.raises(ContractRevert) as info, reverts_translated():
        raise ContractCustomError("0x" + NOT_OWNER.hex(), data="0x" + NOT_OWNER.hex())
    assert info.value.error_name == "NotCampaignOwner"
    assert isinstance(info.value.__cause__, ContractCustomError)


def test_empty_and_unknown_revert_data() -> None:
    empty = translate_revert(TransactionFailed("execution reverted: b''"))
    assert empty is not None
    assert empty.selector is None
    assert empty.code == "contract_revert"
    unknown = ContractRevert(bytes.fromhex("deadbeef"))
    assert unknown.selector == "0xdeadbeef"
    assert unknown.error_name == "UnknownRevert"


def test_missing_artifact_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match=r"compile\.mjs"):
        load_artifact("NoSuchContract")
