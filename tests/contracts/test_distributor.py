"""RewardDistributor: every function and every revert (by selector), on py-evm and anvil."""

from __future__ import annotations

import pytest
from eth_utils import keccak
from web3.contract.contract import ContractFunction

from rewards.chain import (
    ClaimEntry,
    ContractRevert,
    RewardDistributorClient,
    Role,
    RootStatus,
    deploy_contract,
    deploy_distributor,
    error_selector,
    reverts_translated,
    translate_revert,
)
from rewards.chain.token import TokenClient
from rewards.merkle import StandardMerkleTree
from tests.chain_fixtures import RewardContracts

from .helpers import (
    CID,
    CID2,
    ZERO_ADDRESS,
    accept,
    claim,
    claim_many,
    contributor,
    fund,
    open_campaign,
    publish,
    rejects,
    reverts,
    submit,
)

A, B, C = contributor(1), contributor(2), contributor(3)
ADMIN_HEX = "0x" + "00" * 32


def call(fn: ContractFunction, sender: str) -> object:
    """A raw web3 call, for argument shapes the typed client never produces."""
    with reverts_translated():
        return fn.call({"from": sender})


# ------------------------------------------------------------------ deployment


def test_deployment_state(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    assert d.token() == c.token.address
    assert d.timelock() == c.timelock
    assert d.contract.functions.MAX_TIMELOCK().call() == 365 * 86_400
    assert d.has_role(Role.ADMIN, c.admin)
    assert d.has_role(Role.ROOT_UPDATER, c.updater)
    assert d.has_role(Role.GUARDIAN, c.guardian)
    assert d.has_role(Role.CAMPAIGN_MANAGER, c.manager)
    assert not d.has_role(Role.ROOT_UPDATER, c.admin)
    for role in Role:
        if role is not Role.ADMIN:
            constant = role.name + "_ROLE"
            assert getattr(d.contract.functions, constant)().call() == role.value
    assert d.current_root() is None
    assert d.pending_root() is None
    assert d.root_count() == 0
    assert d.contract.functions.currentRoot().call() == bytes(32)
    assert d.totals().deposited == 0
    assert d.totals().committed == 0
    assert not d.paused()


def test_constructor_rejects_zero_addresses_and_long_timelock(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    w3 = c.chain.w3
    with reverts("ZeroAddress"):
        deploy_distributor(w3, token=ZERO_ADDRESS, timelock=1, admin=c.admin, sender=c.admin)
    with reverts("ZeroAddress"):
        deploy_distributor(
            w3, token=c.token.address, timelock=1, admin=ZERO_ADDRESS, sender=c.admin
        )
    with reverts("TimelockTooLong", maximum=365 * 86_400):
        deploy_distributor(
            w3, token=c.token.address, timelock=365 * 86_400 + 1, admin=c.admin, sender=c.admin
        )
    # Optional roles may be left out and granted later.
    bare = deploy_distributor(w3, token=c.token.address, timelock=0, admin=c.admin, sender=c.admin)
    assert not bare.has_role(Role.ROOT_UPDATER, c.updater)
    bare.grant_role(Role.ROOT_UPDATER, c.updater, sender=c.admin)
    assert bare.has_role(Role.ROOT_UPDATER, c.updater)


# ------------------------------------------------------------------ campaigns


def test_create_fund_close_refund_lifecycle(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    assert d.campaign(7) is None
    receipt = d.create_campaign(7, c.owner, sender=c.manager)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [
        ("CampaignCreated", {"campaignId": 7, "owner": c.owner})
    ]
    c.token.approve(d.address, 1_000, sender=c.owner)
    before = c.token.balance_of(c.owner)
    receipt = d.fund(7, 1_000, sender=c.owner)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [
        ("Funded", {"campaignId": 7, "from": c.owner, "amount": 1_000})
    ]
    assert c.token.balance_of(c.owner) == before - 1_000
    info = d.campaign(7)
    assert info is not None
    assert (info.owner, info.closed, info.deposited, info.refundable) == (c.owner, False, 1_000, 0)
    assert d.totals().deposited == 1_000

    receipt = d.close_campaign(7, sender=c.manager)
    assert [e.name for e in d.events_in(receipt)] == ["CampaignClosed"]
    info = d.campaign(7)
    assert info is not None
    assert info.closed
    assert info.refundable == 1_000

    receipt = d.refund(7, 400, sender=c.owner)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [
        ("Refunded", {"campaignId": 7, "to": c.owner, "amount": 400})
    ]
    info = d.campaign(7)
    assert info is not None
    assert (info.refunded, info.refundable) == (400, 600)
    assert d.totals().refunded == 400
    assert c.token.balance_of(c.owner) == before - 600
    assert c.token.balance_of(d.address) == 600


def test_campaign_reverts(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    with reverts("ZeroAddress"):
        d.create_campaign(1, ZERO_ADDRESS, sender=c.manager)
    open_campaign(c, 1)
    with reverts("CampaignExists", campaignId=1):
        d.create_campaign(1, c.relayer, sender=c.manager)
    with reverts("UnknownCampaign", campaignId=2):
        d.close_campaign(2, sender=c.manager)
    with reverts("UnknownCampaign", campaignId=2):
        d.fund(2, 5, sender=c.owner)
    with reverts("UnknownCampaign", campaignId=2):
        d.refund(2, 5, sender=c.owner)
    with reverts("ZeroAmount"):
        d.fund(1, 0, sender=c.owner)
    with reverts("NotCampaignOwner", campaignId=1, caller=c.relayer):
        d.fund(1, 5, sender=c.relayer)
    with reverts("CampaignNotClosed", campaignId=1):
        d.refund(1, 5, sender=c.owner)
    # Without an allowance the token's own error bubbles up through SafeERC20.
    with reverts("ERC20InsufficientAllowance"):
        d.fund(1, 5, sender=c.owner)
    fund(c, 1, 100)
    d.close_campaign(1, sender=c.manager)
    with reverts("CampaignIsClosed", campaignId=1):
        d.close_campaign(1, sender=c.manager)
    c.token.approve(d.address, 5, sender=c.owner)
    with reverts("CampaignIsClosed", campaignId=1):
        d.fund(1, 5, sender=c.owner)
    with reverts("ZeroAmount"):
        d.refund(1, 0, sender=c.owner)
    with reverts("NotCampaignOwner", campaignId=1, caller=c.relayer):
        d.refund(1, 1, sender=c.relayer)
    with reverts("RefundExceedsAvailable", campaignId=1, available=100):
        d.refund(1, 101, sender=c.owner)


def test_fund_overflowing_the_accounting_is_refused(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    open_campaign(c, 1)
    huge = 2**128
    c.token.mint(c.owner, huge, sender=c.admin)
    c.token.approve(c.distributor.address, huge, sender=c.owner)
    with reverts("AmountTooLarge"):
        c.distributor.fund(1, huge, sender=c.owner)
    c.distributor.fund(1, 2**128 - 1, sender=c.owner)  # the largest budget that fits
    assert c.distributor.totals().deposited == 2**128 - 1


def test_fund_credits_received_amount_of_fee_on_transfer_token(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    w3 = c.chain.w3
    mock_address, _ = deploy_contract(w3, "MockToken", sender=c.admin)
    mock = w3.eth.contract(address=mock_address, abi=_mock_abi())
    d = deploy_distributor(
        w3, token=mock_address, timelock=0, admin=c.admin, manager=c.manager, sender=c.admin
    )
    mock.functions.mint(c.owner, 10_000).transact({"from": c.admin})
    mock.functions.setFeeBps(100).transact({"from": c.admin})  # 1 % burnt per transfer
    mock.functions.approve(d.address, 10_000).transact({"from": c.owner})
    d.create_campaign(1, c.owner, sender=c.manager)
    receipt = d.fund(1, 10_000, sender=c.owner)
    assert d.events_in(receipt)[0].args["amount"] == 9_900
    info = d.campaign(1)
    assert info is not None
    assert info.deposited == 9_900
    assert d.totals().deposited == mock.functions.balanceOf(d.address).call() == 9_900


def test_token_returning_false_and_reentrancy_are_refused(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    w3 = c.chain.w3
    mock_address, _ = deploy_contract(w3, "MockToken", sender=c.admin)
    mock = w3.eth.contract(address=mock_address, abi=_mock_abi())
    d = deploy_distributor(
        w3, token=mock_address, timelock=0, admin=c.admin, manager=c.manager, sender=c.admin
    )
    d.create_campaign(1, c.owner, sender=c.manager)
    mock.functions.mint(c.owner, 10_000).transact({"from": c.admin})
    mock.functions.approve(d.address, 10_000).transact({"from": c.owner})

    mock.functions.setReturnFalse(True).transact({"from": c.admin})
    with reverts("SafeERC20FailedOperation", token=mock_address):
        d.fund(1, 100, sender=c.owner)
    mock.functions.setReturnFalse(False).transact({"from": c.admin})

    # The token calls fund() again from inside transferFrom: the guard stops the nested call.
    nested = d.contract.encode_abi("fund", args=[1, 1])
    mock.functions.setHook(d.address, nested).transact({"from": c.admin})
    with reverts("ReentrancyGuardReentrantCall"):
        d.fund(1, 100, sender=c.owner)


def test_claim_with_token_returning_false_reverts_and_changes_nothing(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    w3 = c.chain.w3
    mock_address, _ = deploy_contract(w3, "MockToken", sender=c.admin)
    mock = w3.eth.contract(address=mock_address, abi=_mock_abi())
    d = deploy_distributor(
        w3,
        token=mock_address,
        timelock=0,
        admin=c.admin,
        updater=c.updater,
        manager=c.manager,
        sender=c.admin,
    )
    d.create_campaign(1, c.owner, sender=c.manager)
    mock.functions.mint(c.owner, 1_000).transact({"from": c.admin})
    mock.functions.approve(d.address, 1_000).transact({"from": c.owner})
    d.fund(1, 1_000, sender=c.owner)
    tree = StandardMerkleTree.of([(A, 600), (B, 400)])
    d.submit_root(tree.root, CID, 1_000, {1: 1_000}, sender=c.updater)
    d.accept_root(sender=c.relayer)
    mock.functions.setReturnFalse(True).transact({"from": c.admin})
    with reverts("SafeERC20FailedOperation"):
        d.claim(A, 600, tree.proof(A), sender=c.relayer)
    assert d.claimed(A) == 0
    mock.functions.setReturnFalse(False).transact({"from": c.admin})
    # A token that calls claim() again during the payout cannot make it pay twice.
    replay = d.contract.encode_abi("claim", args=[A, 600, tree.proof_bytes(A)])
    mock.functions.setHook(d.address, replay).transact({"from": c.admin})
    with reverts("NothingToClaim", alreadyClaimed=600):
        d.claim(A, 600, tree.proof(A), sender=c.relayer)
    assert d.claimed(A) == 0
    # The same through claimMany: every state change of a batch precedes its first transfer.
    replay = d.contract.encode_abi("claimMany", args=[[B], [400], [tree.proof_bytes(B)]])
    mock.functions.setHook(d.address, replay).transact({"from": c.admin})
    with reverts("ClaimRejected", index=0):
        d.claim_many([ClaimEntry(B, 400, tree.proof(B))], sender=c.relayer)
    assert d.claimed(B) == 0
    mock.functions.setHook(ZERO_ADDRESS, b"").transact({"from": c.admin})
    d.claim(A, 600, tree.proof(A), sender=c.relayer)
    assert mock.functions.balanceOf(A).call() == 600
    d.claim_many([ClaimEntry(B, 400, tree.proof(B))], sender=c.relayer)
    assert mock.functions.balanceOf(B).call() == 400


def _mock_abi() -> list[dict]:
    from rewards.chain import load_artifact

    return load_artifact("MockToken").abi


# ------------------------------------------------------------------ roots


def test_submit_accept_claim_and_views(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    open_campaign(c, 2, 500)
    tree = StandardMerkleTree.of([(A, 300), (B, 450), (C, 50)])
    receipt = d.submit_root(tree.root, CID, 800, {2: 350, 1: 450}, sender=c.updater)
    events = d.events_in(receipt)
    assert [e.name for e in events] == ["CampaignCommitted", "CampaignCommitted", "RootSubmitted"]
    assert [e.args["campaignId"] for e in events[:2]] == [1, 2]  # the client sorts the ids
    submitted = events[-1].args
    assert submitted["rootId"] == 1
    assert submitted["root"] == tree.root
    assert submitted["payoutTableCid"] == CID
    assert submitted["totalCommitted"] == 800
    pending = d.pending_root()
    assert pending is not None
    assert pending.status is RootStatus.PENDING
    assert pending.payout_table_cid == CID
    assert pending.valid_at == submitted["validAt"] == c.chain.now() + c.timelock
    assert d.current_root() is None
    info = d.campaign(1)
    assert info is not None
    assert (info.committed, info.reserved) == (0, 450)

    with reverts("TimelockNotElapsed", validAt=pending.valid_at):
        d.accept_root(sender=c.relayer)
    c.chain.increase_time(c.timelock - 100)  # margin: anvil's clock also moves with wall time
    with reverts("TimelockNotElapsed"):
        d.accept_root(sender=c.relayer)
    c.chain.increase_time(100)
    receipt = d.accept_root(sender=c.relayer)  # anyone may accept
    assert [(e.name, e.args["rootId"]) for e in d.events_in(receipt)] == [("RootAccepted", 1)]
    current = d.current_root()
    assert current is not None
    assert current.status is RootStatus.ACCEPTED
    assert current.root == tree.root
    assert d.pending_root() is None
    assert d.contract.functions.currentRoot().call() == tree.root_bytes
    info = d.campaign(1)
    assert info is not None
    assert (info.committed, info.reserved) == (450, 450)
    totals = d.totals()
    assert (totals.committed, totals.claimed, totals.outstanding) == (800, 0, 800)

    receipt = claim(c, tree, A)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [
        ("Claimed", {"account": A, "amount": 300, "cumulativeAmount": 300})
    ]
    assert c.token.balance_of(A) == 300
    assert d.claimed(A) == 300
    totals = d.totals()
    assert (totals.claimed, totals.outstanding) == (300, 500)
    assert d.contract.functions.totalClaimed().call() == 300
    with reverts("NothingToClaim", alreadyClaimed=300):
        claim(c, tree, A)  # a claim cannot be replayed

    # The next epoch: cumulative amounts grow; A gets only the difference.
    tree2 = publish(c, {A: 500, B: 450, C: 50, contributor(4): 100}, {1: 650, 2: 450}, cid=CID2)
    with reverts("InvalidProof"):
        claim(c, tree, B)  # proofs of a superseded root no longer verify
    claim(c, tree2, A)
    assert c.token.balance_of(A) == 500
    assert d.claimed(A) == 500
    claim(c, tree2, B)
    assert d.root(1).status is RootStatus.ACCEPTED
    assert d.root(2).payout_table_cid == CID2
    assert d.totals().claimed == 950


def test_claim_can_be_relayed_and_pays_the_account(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    open_campaign(c, 1, 100)
    tree = publish(c, {A: 100}, {1: 100})
    assert c.chain.w3.eth.get_balance(A) == 0  # A never needs gas
    c.distributor.claim(A, 100, tree.proof(A), sender=c.others[0])
    assert c.token.balance_of(A) == 100
    assert c.token.balance_of(c.others[0]) == 0


def test_claim_reverts(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    with reverts("InvalidProof"):
        d.claim(A, 1, [], sender=c.relayer)  # no root yet
    open_campaign(c, 1, 1_000)
    tree = publish(c, {A: 600, B: 400}, {1: 1_000})
    with reverts("InvalidProof"):
        d.claim(A, 601, tree.proof(A), sender=c.relayer)
    with reverts("InvalidProof"):
        d.claim(B, 600, tree.proof(A), sender=c.relayer)
    with reverts("InvalidProof"):
        d.claim(A, 600, [], sender=c.relayer)
    claim(c, tree, A)
    with reverts("NothingToClaim", alreadyClaimed=600):
        claim(c, tree, A)


def test_claim_beyond_a_roots_committed_total_is_refused(reward_contracts: RewardContracts) -> None:
    """A root whose leaves add up to more than its totalCommitted cannot drain other budgets."""
    c = reward_contracts
    open_campaign(c, 1, 1_000)
    open_campaign(c, 2, 1_000)
    tree = publish(c, {A: 700, B: 700}, {1: 1_000}, total=1_000)  # leaves: 1,400 > 1,000
    claim(c, tree, A)
    with reverts("ExceedsCommitted", amount=700, outstanding=300):
        claim(c, tree, B)
    assert c.token.balance_of(c.distributor.address) == 1_300


def test_claim_many_pays_every_account_once_in_one_transaction(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    d = c.distributor
    D = contributor(4)
    open_campaign(c, 1, 1_000)
    tree = publish(c, {A: 300, B: 450, C: 50, D: 200}, {1: 1_000})
    claim(c, tree, D)  # claimed alone before: the batch must not pay it again
    receipt = claim_many(c, tree, [A, B, C])
    events = [(e.name, e.args) for e in d.events_in(receipt)]
    assert events == [
        ("Claimed", {"account": A, "amount": 300, "cumulativeAmount": 300}),
        ("Claimed", {"account": B, "amount": 450, "cumulativeAmount": 450}),
        ("Claimed", {"account": C, "amount": 50, "cumulativeAmount": 50}),
    ]
    assert [c.token.balance_of(x) for x in (A, B, C, D)] == [300, 450, 50, 200]
    assert [d.claimed(x) for x in (A, B, C, D)] == [300, 450, 50, 200]
    totals = d.totals()
    assert (totals.claimed, totals.outstanding) == (1_000, 0)
    assert c.token.balance_of(d.address) == 0
    with rejects(0, "NothingToClaim", alreadyClaimed=300):
        claim_many(c, tree, [A])  # a batch cannot be replayed either
    # The next root: a batch pays only the differences, and an empty batch does nothing.
    open_campaign(c, 2, 500)
    tree2 = publish(c, {A: 400, B: 450, C: 150, D: 200}, {2: 200}, cid=CID2)
    claim_many(c, tree2, [C, A])
    assert [c.token.balance_of(x) for x in (A, C)] == [400, 150]
    receipt = c.distributor.claim_many([], sender=c.relayer)
    assert d.events_in(receipt) == []
    assert d.totals().claimed == 1_200


def test_claim_many_reverts_whole_batch_with_the_failing_index(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    tree = publish(c, {A: 600, B: 400}, {1: 1_000})
    good, bad = ClaimEntry(A, 600, tree.proof(A)), ClaimEntry(B, 401, tree.proof(B))
    with rejects(1, "InvalidProof"):
        d.claim_many([good, bad], sender=c.relayer)
    with rejects(1, "NothingToClaim", alreadyClaimed=600):
        d.claim_many([good, good], sender=c.relayer)  # the same leaf twice in one batch
    with reverts("LengthMismatch"):
        call(d.contract.functions.claimMany([A, B], [600], [tree.proof_bytes(A)]), c.relayer)
    with reverts("LengthMismatch"):
        call(d.contract.functions.claimMany([A], [600], []), c.relayer)
    d.pause(sender=c.guardian)
    with reverts("EnforcedPause"):
        claim_many(c, tree, [A, B])
    d.unpause(sender=c.admin)
    # Nothing of a rejected batch was kept.
    assert (d.claimed(A), c.token.balance_of(A), d.totals().claimed) == (0, 0, 0)
    claim_many(c, tree, [B, A])
    assert (c.token.balance_of(A), c.token.balance_of(B)) == (600, 400)


def test_claim_many_beyond_a_roots_committed_total_names_the_entry(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    open_campaign(c, 1, 1_000)
    open_campaign(c, 2, 1_000)
    tree = publish(c, {A: 700, B: 700}, {1: 1_000}, total=1_000)  # leaves: 1,400 > 1,000
    with rejects(1, "ExceedsCommitted", amount=700, outstanding=300):
        claim_many(c, tree, [A, B])
    claim_many(c, tree, [A])
    assert c.token.balance_of(c.distributor.address) == 1_300


def test_claim_many_single_entry_errors_outside_a_batch_are_unwrapped(
    reward_contracts: RewardContracts,
) -> None:
    """claim() raises the plain errors; only claimMany wraps them with the entry's index."""
    c = reward_contracts
    open_campaign(c, 1, 100)
    tree = publish(c, {A: 100}, {1: 100})
    with reverts("InvalidProof"):
        c.distributor.claim(A, 99, tree.proof(A), sender=c.relayer)
    with rejects(0, "InvalidProof"):
        c.distributor.claim_many([ClaimEntry(A, 99, tree.proof(A))], sender=c.relayer)


def test_claim_many_proofs_of_every_depth_verify(reward_contracts: RewardContracts) -> None:
    """The contract's proof loop agrees with StandardMerkleTree for trees of 1 to 33 leaves."""
    c = reward_contracts
    accounts = [contributor(100 + i) for i in range(33)]
    open_campaign(c, 1, 10**6)
    paid = 0
    for size in (1, 2, 3, 5, 8, 33):
        leaves: dict[str, int] = {a: 10 * (i + 1) + size for i, a in enumerate(accounts[:size])}
        previous = {a: c.distributor.claimed(a) for a in leaves}
        total = c.distributor.totals().committed + sum(v - previous[a] for a, v in leaves.items())
        tree = publish(c, leaves, {1: total}, total=total)
        claim_many(c, tree, list(leaves))
        paid += sum(v - previous[a] for a, v in leaves.items())
        assert c.distributor.totals().claimed == paid
    assert c.token.balance_of(accounts[0]) == 10 + 33


def test_submit_root_reverts(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    open_campaign(c, 2, 100)
    root = StandardMerkleTree.of([(A, 10)]).root
    with reverts("ZeroRoot"):
        d.submit_root(bytes(32), CID, 10, {1: 10}, sender=c.updater)
    with reverts("EmptyCid"):
        d.submit_root(root, "", 10, {1: 10}, sender=c.updater)
    with reverts("LengthMismatch"):
        call(d.contract.functions.submitRoot(root, CID, 10, [1], []), c.updater)
    with reverts("ExceedsDeposits", totalCommitted=1_101, available=1_100):
        d.submit_root(root, CID, 1_101, {1: 1_000, 2: 101}, sender=c.updater)
    with reverts("CampaignsNotSorted"):
        call(d.contract.functions.submitRoot(root, CID, 20, [2, 1], [10, 10]), c.updater)
    with reverts("CampaignsNotSorted"):
        call(d.contract.functions.submitRoot(root, CID, 20, [1, 1], [10, 10]), c.updater)
    with reverts("UnknownCampaign", campaignId=3):
        d.submit_root(root, CID, 10, {3: 10}, sender=c.updater)
    with reverts("BudgetExceeded", campaignId=2, budget=100):
        d.submit_root(root, CID, 101, {2: 101}, sender=c.updater)
    with reverts("TotalMismatch", expected=10):
        d.submit_root(root, CID, 11, {1: 10}, sender=c.updater)
    with reverts("AccessControlUnauthorizedAccount", account=c.guardian):
        d.submit_root(root, CID, 10, {1: 10}, sender=c.guardian)

    d.submit_root(root, CID, 10, {1: 10}, sender=c.updater)
    with reverts("PendingRootExists", rootId=1):
        d.submit_root(root, CID, 10, {1: 10}, sender=c.updater)
    accept(c)
    with reverts("RootUnchanged"):
        d.submit_root(root, CID, 10, {1: 10}, sender=c.updater)
    root2 = StandardMerkleTree.of([(A, 5)]).root
    with reverts("CommitmentDecreased", campaignId=1, accepted=10):
        d.submit_root(root2, CID, 5, {1: 5}, sender=c.updater)
    # A root may leave every campaign untouched (e.g. to re-attribute accounts).
    d.submit_root(root2, CID, 10, {}, sender=c.updater)


def test_accept_and_revoke_reverts(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    with reverts("NoPendingRoot"):
        d.accept_root(sender=c.relayer)
    with reverts("NoPendingRoot"):
        d.revoke_pending_root(sender=c.guardian)
    open_campaign(c, 1, 100)
    submit(c, {A: 100}, {1: 100})
    with reverts("AccessControlUnauthorizedAccount", account=c.updater):
        d.revoke_pending_root(sender=c.updater)


def test_revoke_discards_the_pending_root_and_its_commitments(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    tree = publish(c, {A: 100}, {1: 100})
    bad = submit(c, {A: 100, B: 900}, {1: 1_000}, cid=CID2)
    info = d.campaign(1)
    assert info is not None
    assert (info.committed, info.reserved) == (100, 1_000)
    receipt = d.revoke_pending_root(sender=c.guardian)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [
        ("RootRevoked", {"rootId": 2, "root": bad.root, "by": c.guardian})
    ]
    assert d.pending_root() is None
    assert d.root(2).status is RootStatus.REVOKED
    info = d.campaign(1)
    assert info is not None
    assert (info.committed, info.reserved) == (100, 100)
    c.chain.increase_time(c.timelock)
    with reverts("NoPendingRoot"):
        d.accept_root(sender=c.relayer)  # a revoked root can never be accepted
    with reverts("InvalidProof"):
        d.claim(B, 900, bad.proof(B), sender=c.relayer)
    claim(c, tree, A)
    # After a revocation the next submission starts again from the accepted state.
    tree3 = publish(c, {A: 100, B: 200}, {1: 300})
    claim(c, tree3, B)
    info = d.campaign(1)
    assert info is not None
    assert info.committed == 300


def test_refund_respects_accepted_and_pending_commitments(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    open_campaign(c, 2, 1_000)
    publish(c, {A: 300, B: 200}, {1: 300, 2: 200})
    submit(c, {A: 700, B: 200}, {1: 700})  # pending: campaign 1 commits 700
    d.close_campaign(1, sender=c.manager)
    info = d.campaign(1)
    assert info is not None
    assert (info.committed, info.reserved, info.refundable) == (300, 700, 300)
    with reverts("RefundExceedsAvailable", campaignId=1, available=300):
        d.refund(1, 301, sender=c.owner)
    d.revoke_pending_root(sender=c.guardian)
    info = d.campaign(1)
    assert info is not None
    assert info.refundable == 700
    d.refund(1, 700, sender=c.owner)
    with reverts("RefundExceedsAvailable", campaignId=1, available=0):
        d.refund(1, 1, sender=c.owner)
    # A closed campaign's committed rewards stay claimable, and other budgets are untouched.
    info2 = d.campaign(2)
    assert info2 is not None
    assert info2.deposited == 1_000
    assert not info2.closed
    totals = d.totals()
    assert totals.deposited - totals.refunded - totals.claimed == c.token.balance_of(d.address)
    assert totals.deposited - totals.refunded >= totals.committed


def test_commitments_of_a_closed_campaign_are_bounded_by_what_is_left(
    reward_contracts: RewardContracts,
) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    d.close_campaign(1, sender=c.manager)
    d.refund(1, 600, sender=c.owner)
    with reverts("ExceedsDeposits", totalCommitted=401, available=400):
        submit(c, {A: 401}, {1: 401})
    tree = publish(c, {A: 400}, {1: 400})
    claim(c, tree, A)
    info = d.campaign(1)
    assert info is not None
    assert info.refundable == 0


# ------------------------------------------------------------------ pause and roles


def test_pause_stops_token_movements_but_not_roots(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 1_000)
    tree = publish(c, {A: 100}, {1: 100})
    receipt = d.pause(sender=c.guardian)
    assert [(e.name, e.args) for e in d.events_in(receipt)] == [("Paused", {"account": c.guardian})]
    assert d.paused()
    with reverts("EnforcedPause"):
        claim(c, tree, A)
    c.token.approve(d.address, 10, sender=c.owner)
    with reverts("EnforcedPause"):
        d.fund(1, 10, sender=c.owner)
    d.close_campaign(1, sender=c.manager)
    with reverts("EnforcedPause"):
        d.refund(1, 10, sender=c.owner)
    with reverts("EnforcedPause"):
        d.pause(sender=c.guardian)
    # A bad root can still be replaced while paused.
    tree2 = publish(c, {A: 200}, {1: 200})
    with reverts("AccessControlUnauthorizedAccount", account=c.guardian, neededRole=ADMIN_HEX):
        d.unpause(sender=c.guardian)  # a guardian alone cannot restart payouts
    receipt = d.unpause(sender=c.admin)
    assert [e.name for e in d.events_in(receipt)] == ["Unpaused"]
    with reverts("ExpectedPause"):
        d.unpause(sender=c.admin)
    claim(c, tree2, A)
    assert c.token.balance_of(A) == 200


@pytest.mark.parametrize(
    ("action", "role"),
    [
        ("create", Role.CAMPAIGN_MANAGER),
        ("close", Role.CAMPAIGN_MANAGER),
        ("submit", Role.ROOT_UPDATER),
        ("revoke", Role.GUARDIAN),
        ("pause", Role.GUARDIAN),
        ("unpause", Role.ADMIN),
        ("grant", Role.ADMIN),
    ],
)
def test_role_actions_need_their_role(
    reward_contracts: RewardContracts, action: str, role: Role
) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 100)
    submit(c, {A: 100}, {1: 100})
    d.pause(sender=c.guardian)
    intruder = c.others[0]
    calls = {
        "create": lambda s: d.create_campaign(9, s, sender=s),
        "close": lambda s: d.close_campaign(1, sender=s),
        "submit": lambda s: call(
            d.contract.functions.submitRoot(keccak(b"x"), CID, 100, [], []), s
        ),
        "revoke": lambda s: d.revoke_pending_root(sender=s),
        "pause": lambda s: d.pause(sender=s),
        "unpause": lambda s: d.unpause(sender=s),
        "grant": lambda s: d.grant_role(Role.GUARDIAN, s, sender=s),
    }
    needed = "0x" + role.value.hex()
    with reverts("AccessControlUnauthorizedAccount", account=intruder, neededRole=needed):
        calls[action](intruder)


def test_roles_can_be_granted_revoked_and_renounced(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    newcomer = c.others[0]
    d.grant_role(Role.GUARDIAN, newcomer, sender=c.admin)
    d.pause(sender=newcomer)
    d.unpause(sender=c.admin)
    d.revoke_role(Role.GUARDIAN, newcomer, sender=c.admin)
    with reverts("AccessControlUnauthorizedAccount"):
        d.pause(sender=newcomer)
    with reverts("AccessControlBadConfirmation"):
        call(d.contract.functions.renounceRole(Role.GUARDIAN.value, c.admin), c.guardian)
    d.contract.functions.renounceRole(Role.GUARDIAN.value, c.guardian).transact(
        {"from": c.guardian}
    )
    assert not d.has_role(Role.GUARDIAN, c.guardian)
    i_access_control = bytes.fromhex("7965db0b")
    assert d.contract.functions.supportsInterface(i_access_control).call()
    for role in Role:
        assert d.contract.functions.getRoleAdmin(role.value).call() == Role.ADMIN.value


# ------------------------------------------------------------------ revert translation


def test_raw_exceptions_of_both_backends_translate_by_selector(
    reward_contracts: RewardContracts,
) -> None:
    """py-evm and anvil raise different classes; the selector is what identifies the error."""
    c = reward_contracts
    fn = c.distributor.contract.functions.fund(99, 1)
    for attempt in (
        lambda: fn.call({"from": c.owner}),
        lambda: fn.estimate_gas({"from": c.owner}),
        lambda: fn.transact({"from": c.owner}),
    ):
        with pytest.raises(Exception) as info:  # noqa: PT011 - the class differs per backend
            attempt()
        translated = translate_revert(info.value)
        assert translated is not None, repr(info.value)
        assert translated.selector == error_selector("UnknownCampaign")
        assert translated.args_by_name == {"campaignId": 99}
        assert translated.code == "unknown_campaign"


def test_mined_failed_transaction_is_explained_by_replay(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    tx_hash = d.contract.functions.fund(99, 1).transact({"from": c.owner, "gas": 200_000})
    from rewards.chain import wait_for_receipt

    with reverts("UnknownCampaign", campaignId=99):
        wait_for_receipt(c.chain.w3, tx_hash)


def test_build_tx_returns_an_unsigned_dict_that_signs_and_sends(
    reward_contracts: RewardContracts,
) -> None:
    from eth_account import Account

    from rewards.chain import send_transaction, wait_for_receipt
    from tests.contracts.helpers import funded_key

    c = reward_contracts
    d = c.distributor
    manager_key = funded_key(c, 1)
    d.grant_role(Role.CAMPAIGN_MANAGER, manager_key.address, sender=c.admin)
    tx = d.create_campaign.build(5, c.owner, sender=manager_key.address)
    assert tx["to"] == d.address
    assert tx["from"] == manager_key.address
    assert tx["gas"] > 21_000
    assert tx["data"] == d.contract.encode_abi("createCampaign", args=[5, c.owner])
    tx["nonce"] = c.chain.w3.eth.get_transaction_count(manager_key.address)
    signed = Account.sign_transaction(tx, manager_key.key)
    receipt = wait_for_receipt(
        c.chain.w3, c.chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1
    assert d.campaign(5) is not None
    # The convenience path signs locally when given a key, and .build() fails early on a revert.
    with reverts("CampaignExists"):
        d.create_campaign.build(5, c.owner, sender=manager_key.address)
    receipt = d.create_campaign(6, c.owner, sender=manager_key)
    assert receipt["from"] == manager_key.address
    tx = d.close_campaign.build(6, sender=manager_key.address)
    send_transaction(c.chain.w3, tx, manager_key)
    info = d.campaign(6)
    assert info is not None
    assert info.closed


def test_build_tx_for_every_state_changing_method(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    open_campaign(c, 1, 100)
    c.token.approve(d.address, 50, sender=c.owner)
    tree = StandardMerkleTree.of([(A, 100)])
    built = [
        d.fund.build(1, 50, sender=c.owner),
        d.submit_root.build(tree.root, CID, 100, {1: 100}, sender=c.updater),
        d.pause.build(sender=c.guardian),
        d.grant_role.build(Role.GUARDIAN, A, sender=c.admin),
    ]
    submit(c, {A: 100}, {1: 100})
    built.append(d.revoke_pending_root.build(sender=c.guardian))
    c.chain.increase_time(c.timelock)
    built.append(d.accept_root.build(sender=c.relayer))
    d.accept_root(sender=c.relayer)
    built.append(d.claim.build(A, 100, tree.proof(A), sender=c.relayer))
    built.append(d.claim_many.build([ClaimEntry(A, 100, tree.proof(A))], sender=c.relayer))
    d.pause(sender=c.guardian)
    built.append(d.unpause.build(sender=c.admin))
    d.unpause(sender=c.admin)
    d.fund(1, 50, sender=c.owner)
    d.close_campaign(1, sender=c.manager)
    built.append(d.refund.build(1, 50, sender=c.owner))
    chain_id = c.chain.w3.eth.chain_id
    for tx in built:
        assert tx["to"] == d.address
        assert tx["gas"] > 21_000
        assert tx["chainId"] == chain_id


def test_events_are_fetched_in_chain_order(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    d = c.distributor
    start = c.chain.w3.eth.block_number + 1
    open_campaign(c, 1, 100)
    tree = publish(c, {A: 100}, {1: 100})
    claim(c, tree, A)
    names = [e.name for e in d.fetch_events(start)]
    assert names == [
        "CampaignCreated",
        "Funded",
        "CampaignCommitted",
        "RootSubmitted",
        "RootAccepted",
        "Claimed",
    ]
    events = d.fetch_events(start)
    assert [(e.block_number, e.log_index) for e in events] == sorted(
        (e.block_number, e.log_index) for e in events
    )


def test_client_checksums_addresses(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    client = RewardDistributorClient(c.chain.w3, c.distributor.address.lower())
    assert client.address == c.distributor.address
    assert TokenClient(c.chain.w3, c.token.address.lower()).address == c.token.address
    open_campaign(c, 1, 100)
    tree = publish(c, {A: 100}, {1: 100})
    client.claim(A.lower(), 100, tree.proof(A), sender=c.relayer.lower())
    assert client.claimed(A.lower()) == 100


def test_unknown_revert_data_still_translates() -> None:
    revert = ContractRevert(bytes.fromhex("deadbeef") + bytes(32))
    assert revert.selector == "0xdeadbeef"
    assert revert.error_name == "UnknownRevert"
    assert ContractRevert(b"").selector is None


def test_every_custom_error_is_exercised_by_a_test() -> None:
    """Guard: each error in the contracts' ABIs is asserted by name somewhere in these tests."""
    from pathlib import Path

    from rewards.chain import load_artifact

    here = Path(__file__).parent
    text = "".join(p.read_text() for p in sorted(here.glob("test_*.py")))
    for name in ("RewardDistributor", "KyodoToken", "PushPayout"):
        for entry in load_artifact(name).abi:
            if entry["type"] != "error" or entry["name"] in UNREACHABLE_ERRORS:
                continue
            assert f'"{entry["name"]}"' in text, f"{name}.{entry['name']} is never asserted"


# Errors in the ABIs that no call can raise: permit takes (v, r, s), never a byte string of the
# wrong length; KyodoToken's EIP-712 name is a short constant; ERC20Permit never uses checked
# nonces; the zero address never sends a transaction, so it never approves or sends.
UNREACHABLE_ERRORS = {
    "ECDSAInvalidSignatureLength",
    "InvalidShortString",
    "StringTooLong",
    "InvalidAccountNonce",
    "ERC20InvalidApprover",
    "ERC20InvalidSender",
}
