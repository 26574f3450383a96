"""KyodoToken (ERC-20 + EIP-2612 permit), fundWithPermit, and the PushPayout benchmark helper."""

from __future__ import annotations

from web3 import Web3

from rewards.chain import (
    Role,
    TokenClient,
    deploy_contract,
    deploy_token,
    load_artifact,
    reverts_translated,
)
from tests.chain_fixtures import INITIAL_SUPPLY, RewardContracts

from .helpers import ZERO_ADDRESS, funded_key, reverts

MINTER_ROLE = Web3.keccak(text="MINTER_ROLE")
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_token_metadata_supply_and_roles(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    t = c.token
    assert (t.symbol(), t.decimals(), t.total_supply()) == ("KYO", 18, INITIAL_SUPPLY)
    assert t.contract.functions.name().call() == "Kyodo"
    assert t.balance_of(c.admin) + t.balance_of(c.owner) == INITIAL_SUPPLY
    assert t.contract.functions.hasRole(MINTER_ROLE, c.admin).call()
    assert t.contract.functions.hasRole(Role.ADMIN.value, c.admin).call()


def test_deploy_rejects_zero_admin_and_allows_zero_supply(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    with reverts("ZeroAddress"):
        deploy_token(c.chain.w3, admin=ZERO_ADDRESS, initial_holder=c.admin, sender=c.admin)
    empty = deploy_token(c.chain.w3, admin=c.admin, sender=c.admin)
    assert empty.total_supply() == 0


def test_mint_needs_the_minter_role(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    c.token.mint(c.relayer, 5, sender=c.admin)
    assert c.token.balance_of(c.relayer) == 5
    with reverts("AccessControlUnauthorizedAccount", account=c.relayer):
        c.token.mint(c.relayer, 5, sender=c.relayer)
    with reverts("ERC20InvalidReceiver"):
        c.token.mint(ZERO_ADDRESS, 5, sender=c.admin)


def test_transfer_approve_and_builders(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    t = c.token
    t.transfer(c.relayer, 10, sender=c.owner)
    t.approve(c.relayer, 7, sender=c.owner)
    assert t.allowance(c.owner, c.relayer) == 7
    for tx in (
        t.build_transfer_tx(c.relayer, 1, sender=c.owner),
        t.build_approve_tx(c.relayer, 1, sender=c.owner),
        t.build_mint_tx(c.relayer, 1, sender=c.admin),
    ):
        assert tx["to"] == t.address
        assert tx["gas"] > 21_000
    with reverts("ERC20InsufficientBalance"):
        t.transfer(c.owner, 11, sender=c.relayer)
    assert [e.name for e in t.fetch_events(0)][-2:] == ["Transfer", "Approval"]


def test_fund_with_permit_needs_no_approve(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    requester = funded_key(c, 11)
    c.token.transfer(requester.address, 1_000, sender=c.admin)
    d.create_campaign(1, requester.address, sender=c.manager)
    deadline = c.chain.now() + 3_600
    permit = c.token.sign_permit(requester, d.address, 600, deadline)
    assert d.fund_with_permit.build(1, 600, permit, sender=requester.address)["gas"] > 21_000
    receipt = d.fund_with_permit(1, 600, permit, sender=requester)
    assert [e.args["amount"] for e in d.events_in(receipt) if e.name == "Funded"] == [600]
    assert c.token.nonce_of(requester.address) == 1
    assert c.token.allowance(requester.address, d.address) == 0
    info = d.campaign(1)
    assert info is not None
    assert info.deposited == 600


def test_fund_with_permit_survives_a_front_run_permit(reward_contracts: RewardContracts) -> None:
    """Someone may submit the signed permit first; funding must still go through."""
    c = reward_contracts
    d = c.distributor
    requester = funded_key(c, 12)
    c.token.transfer(requester.address, 1_000, sender=c.admin)
    d.create_campaign(1, requester.address, sender=c.manager)
    permit = c.token.sign_permit(requester, d.address, 500, c.chain.now() + 3_600)
    c.token.contract.functions.permit(
        permit.owner, permit.spender, permit.value, permit.deadline, permit.v, permit.r, permit.s
    ).transact({"from": c.relayer})
    d.fund_with_permit(1, 500, permit, sender=requester)
    assert c.token.balance_of(d.address) == 500


def test_bad_permits_are_refused(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    requester = funded_key(c, 13)
    c.token.transfer(requester.address, 1_000, sender=c.admin)
    d.create_campaign(1, requester.address, sender=c.manager)
    expired = c.token.sign_permit(requester, d.address, 500, c.chain.now() - 1)
    permit_fn = c.token.contract.functions.permit
    with reverts("ERC2612ExpiredSignature"), reverts_translated():
        permit_fn(
            expired.owner, d.address, 500, expired.deadline, expired.v, expired.r, expired.s
        ).call({"from": c.relayer})
    # fundWithPermit ignores the failed permit; without an allowance the pull then fails.
    with reverts("ERC20InsufficientAllowance"):
        d.fund_with_permit(1, 500, expired, sender=requester)
    good = c.token.sign_permit(requester, d.address, 500, c.chain.now() + 3_600)
    with reverts("ERC2612InvalidSigner"), reverts_translated():
        permit_fn(good.owner, d.address, 501, good.deadline, good.v, good.r, good.s).call(
            {"from": c.relayer}
        )
    # Malleable (high-s) and unrecoverable signatures are refused by OpenZeppelin's ECDSA.
    high_s = (SECP256K1_N - int.from_bytes(good.s, "big")).to_bytes(32, "big")
    with reverts("ECDSAInvalidSignatureS"), reverts_translated():
        permit_fn(good.owner, d.address, 500, good.deadline, 55 - good.v, good.r, high_s).call(
            {"from": c.relayer}
        )
    with reverts("ECDSAInvalidSignature"), reverts_translated():
        permit_fn(good.owner, d.address, 500, good.deadline, 29, good.r, good.s).call(
            {"from": c.relayer}
        )
    with reverts("ERC20InvalidSpender"):
        c.token.approve(ZERO_ADDRESS, 1, sender=c.owner)


def test_push_payout_pays_a_batch(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    w3 = c.chain.w3
    address, _ = deploy_contract(w3, "PushPayout", sender=c.admin)
    pusher = w3.eth.contract(address=address, abi=load_artifact("PushPayout").abi)
    c.token.transfer(address, 100, sender=c.admin)
    recipients = [c.others[0], c.others[1]]
    pusher.functions.payout(c.token.address, recipients, [30, 70]).transact({"from": c.admin})
    assert [c.token.balance_of(r) for r in recipients] == [30, 70]
    with reverts("LengthMismatch"), reverts_translated():
        pusher.functions.payout(c.token.address, recipients, [1]).call({"from": c.admin})
    # Runtime code on chain is exactly the committed artifact (no immutables in PushPayout).
    assert w3.eth.get_code(address).to_0x_hex() == load_artifact("PushPayout").deployed_bytecode


def test_token_client_reads_any_erc20(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    address, _ = deploy_contract(c.chain.w3, "MockToken", sender=c.admin)
    other = TokenClient(c.chain.w3, address)
    assert other.symbol() == "MOCK"
    assert other.balance_of(c.admin) == 0
