"""Property tests: random sequences of fund / submit / accept / revoke / claim / claimMany /
pause / close / refund, by random senders, against a model. Every call's outcome (success or the
exact custom error, by selector) is predicted by the model; after every step the invariants are
checked:

- the distributor holds exactly deposited - refunded - claimed; total paid <= total deposited;
- claimed <= committed (current root) <= deposited - refunded, and so is the pending commitment;
- an account's cumulative claimed never decreases and never exceeds its leaf; no claim replays;
- only the holder of a role can do what the role does; a root is never accepted before its
  timelock has passed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from rewards.chain import ClaimEntry, ContractRevert, Role, error_selector
from rewards.merkle import StandardMerkleTree
from tests.chain_fixtures import Chain, RewardContracts

from .helpers import CID, contributor

CONTRIBUTORS: list[str] = [contributor(i) for i in range(4)]
CAMPAIGNS = (1, 2, 3)
# py-evm signs and executes in pure Python (~0.15 s a transaction): fewer examples keep the unit
# tier fast; anvil gets more. KYODO_PROPERTY_EXAMPLES / _STEPS raise both for a deep run.
EXAMPLES = {"pyevm": 10, "anvil": 20}
STEPS = {"pyevm": 20, "anvil": 25}


@dataclass
class CampaignModel:
    owner: str
    deposited: int = 0
    refunded: int = 0
    closed: bool = False
    accepted: int = 0
    pending: int | None = None

    @property
    def reserved(self) -> int:
        return self.accepted if self.pending is None else self.pending

    @property
    def budget(self) -> int:
        return self.deposited - self.refunded


@dataclass
class Model:
    campaigns: dict[int, CampaignModel]
    leaves: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONTRIBUTORS, 0))
    tree: StandardMerkleTree | None = None
    old_trees: list[StandardMerkleTree] = field(default_factory=list)
    committed: int = 0
    pending_tree: StandardMerkleTree | None = None
    pending_leaves: dict[str, int] | None = None
    pending_total: int = 0
    pending_valid_at: int = 0
    claimed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CONTRIBUTORS, 0))
    paused: bool = False

    @property
    def deposited(self) -> int:
        return sum(c.deposited for c in self.campaigns.values())

    @property
    def refunded(self) -> int:
        return sum(c.refunded for c in self.campaigns.values())

    @property
    def total_claimed(self) -> int:
        return sum(self.claimed.values())


def _expect(call: object, error: str | None) -> None:
    """Run ``call``; it must succeed (``error is None``) or revert with exactly ``error``."""
    assert callable(call)
    if error is None:
        call()
        return
    with pytest.raises(ContractRevert) as info:
        call()
    assert info.value.selector == error_selector(error), f"expected {error}, got {info.value}"


def _setup(c: RewardContracts) -> dict[int, str]:
    """Three campaigns: 1 and 2 owned by the fixture's owner, 3 by a second requester."""
    second = c.others[0]
    c.token.transfer(second, 10**24, sender=c.admin)
    owners: dict[int, str] = {1: c.owner, 2: c.owner, 3: second}
    for campaign_id, owner in owners.items():
        c.distributor.create_campaign(campaign_id, owner, sender=c.manager)
    for owner in set(owners.values()):
        c.token.approve(c.distributor.address, 2**255, sender=owner)
    return owners


def _machine(c: RewardContracts, owners: dict[int, str], base: list[object]) -> type:
    chain: Chain = c.chain
    d = c.distributor
    accounts = chain.accounts
    roles = {
        Role.ADMIN: c.admin,
        Role.ROOT_UPDATER: c.updater,
        Role.GUARDIAN: c.guardian,
        Role.CAMPAIGN_MANAGER: c.manager,
    }
    senders = st.sampled_from(accounts)

    class DistributorMachine(RuleBasedStateMachine):
        model: Model

        @initialize()
        def fresh_chain(self) -> None:
            chain.revert(base[0])
            base[0] = chain.snapshot()  # anvil consumes a snapshot when reverting to it
            self.model = Model({k: CampaignModel(owner) for k, owner in owners.items()})
            self.paid = 0

        def _role_error(self, role: Role, sender: str) -> str | None:
            return None if roles[role] == sender else "AccessControlUnauthorizedAccount"

        # -------------------------------------------------------------- budgets

        @rule(
            campaign_id=st.sampled_from(CAMPAIGNS),
            amount=st.integers(0, 20_000),
            as_owner=st.booleans(),
            stranger=senders,
        )
        def fund(self, campaign_id: int, amount: int, as_owner: bool, stranger: str) -> None:
            m = self.model
            campaign = m.campaigns[campaign_id]
            sender = campaign.owner if as_owner else stranger
            error = (
                "EnforcedPause"
                if m.paused
                else "ZeroAmount"
                if amount == 0
                else "NotCampaignOwner"
                if sender != campaign.owner
                else "CampaignIsClosed"
                if campaign.closed
                else None
            )
            _expect(lambda: d.fund(campaign_id, amount, sender=sender), error)
            if error is None:
                campaign.deposited += amount

        @rule(campaign_id=st.sampled_from(CAMPAIGNS), sender=senders)
        def close(self, campaign_id: int, sender: str) -> None:
            campaign = self.model.campaigns[campaign_id]
            error = self._role_error(Role.CAMPAIGN_MANAGER, sender) or (
                "CampaignIsClosed" if campaign.closed else None
            )
            _expect(lambda: d.close_campaign(campaign_id, sender=sender), error)
            if error is None:
                campaign.closed = True

        @rule(
            campaign_id=st.sampled_from(CAMPAIGNS),
            share=st.floats(0, 1.2),
            as_owner=st.booleans(),
            stranger=senders,
        )
        def refund(self, campaign_id: int, share: float, as_owner: bool, stranger: str) -> None:
            m = self.model
            campaign = m.campaigns[campaign_id]
            sender = campaign.owner if as_owner else stranger
            available = campaign.budget - campaign.reserved
            amount = int(available * share)
            error = (
                "EnforcedPause"
                if m.paused
                else "ZeroAmount"
                if amount == 0
                else "NotCampaignOwner"
                if sender != campaign.owner
                else "CampaignNotClosed"
                if not campaign.closed
                else "RefundExceedsAvailable"
                if amount > available
                else None
            )
            before = c.token.balance_of(campaign.owner) if error is None else 0
            _expect(lambda: d.refund(campaign_id, amount, sender=sender), error)
            if error is None:
                campaign.refunded += amount
                assert c.token.balance_of(campaign.owner) == before + amount

        # -------------------------------------------------------------- roots

        @rule(
            increments=st.lists(st.integers(0, 4_000), min_size=4, max_size=4),
            attribution=st.lists(st.sampled_from(CAMPAIGNS), min_size=4, max_size=4),
            inflation=st.one_of(st.just(0), st.integers(1, 3_000)),
            as_updater=st.booleans(),
            stranger=senders,
        )
        def submit(
            self,
            increments: list[int],
            attribution: list[int],
            inflation: int,
            as_updater: bool,
            stranger: str,
        ) -> None:
            """A new cumulative root. ``inflation`` models a faulty updater: leaves that add up
            to more than the committed total (claims beyond the total must then fail)."""
            m = self.model
            sender = c.updater if as_updater else stranger
            leaves: dict[str, int] = {
                a: m.leaves[a] + inc for a, inc in zip(CONTRIBUTORS, increments, strict=True)
            }
            leaves[CONTRIBUTORS[0]] += inflation
            added: dict[int, int] = {}
            for inc, campaign_id in zip(increments, attribution, strict=True):
                if inc:
                    added[campaign_id] = added.get(campaign_id, 0) + inc
            commitments = {k: m.campaigns[k].accepted + v for k, v in added.items()}
            total = m.committed + sum(increments)
            tree = StandardMerkleTree.of(leaves.items())
            over_budget = [k for k in sorted(commitments) if commitments[k] > m.campaigns[k].budget]
            error = (
                self._role_error(Role.ROOT_UPDATER, sender)
                or ("PendingRootExists" if m.pending_tree is not None else None)
                or ("RootUnchanged" if m.tree is not None and tree.root == m.tree.root else None)
                or ("ExceedsDeposits" if total > m.deposited - m.refunded else None)
                or ("BudgetExceeded" if over_budget else None)
            )
            _expect(lambda: d.submit_root(tree.root, CID, total, commitments, sender=sender), error)
            if error is None:
                m.pending_tree, m.pending_leaves, m.pending_total = tree, leaves, total
                for k, value in commitments.items():
                    m.campaigns[k].pending = value
                pending = d.pending_root()
                assert pending is not None
                assert pending.root == tree.root
                assert pending.valid_at == chain.now() + c.timelock
                m.pending_valid_at = pending.valid_at

        @precondition(lambda self: self.model.pending_tree is not None)
        @rule()
        def accept_too_early(self) -> None:
            if chain.now() + 60 < self.model.pending_valid_at:  # clear of the boundary
                _expect(lambda: d.accept_root(sender=c.relayer), "TimelockNotElapsed")

        @rule(sender=senders)
        def accept_after_timelock(self, sender: str) -> None:
            m = self.model
            if m.pending_tree is None:
                _expect(lambda: d.accept_root(sender=sender), "NoPendingRoot")
                return
            chain.increase_time(c.timelock)
            assert chain.now() >= m.pending_valid_at
            d.accept_root(sender=sender)  # anyone may accept
            assert m.pending_leaves is not None
            if m.tree is not None:
                m.old_trees.append(m.tree)
            m.tree, m.leaves, m.committed = m.pending_tree, m.pending_leaves, m.pending_total
            m.pending_tree = m.pending_leaves = None
            for campaign in m.campaigns.values():
                if campaign.pending is not None:
                    campaign.accepted, campaign.pending = campaign.pending, None

        @rule(as_guardian=st.booleans(), stranger=senders)
        def revoke(self, as_guardian: bool, stranger: str) -> None:
            m = self.model
            sender = c.guardian if as_guardian else stranger
            error = self._role_error(Role.GUARDIAN, sender) or (
                "NoPendingRoot" if m.pending_tree is None else None
            )
            _expect(lambda: d.revoke_pending_root(sender=sender), error)
            if error is None:
                m.pending_tree = m.pending_leaves = None
                for campaign in m.campaigns.values():
                    campaign.pending = None

        # -------------------------------------------------------------- claims

        @rule(index=st.integers(0, 3), stale=st.booleans(), relayer=senders)
        def claim(self, index: int, stale: bool, relayer: str) -> None:
            m = self.model
            account = CONTRIBUTORS[index]
            before = d.claimed(account)
            assert before == m.claimed[account]
            if m.tree is None:
                no_root_error = "EnforcedPause" if m.paused else "InvalidProof"
                _expect(lambda: d.claim(account, 1, [], sender=relayer), no_root_error)
                return
            if stale and m.old_trees:
                old = m.old_trees[-1]
                if old.amount_of(account) != m.leaves[account]:
                    stale_error = "EnforcedPause" if m.paused else "InvalidProof"
                    proof = old.proof(account)
                    amount = old.amount_of(account)
                    _expect(lambda: d.claim(account, amount, proof, sender=relayer), stale_error)
                    return
            leaf = m.leaves[account]
            delta = leaf - m.claimed[account]
            outstanding = m.committed - m.total_claimed
            error = (
                "EnforcedPause"
                if m.paused
                else "NothingToClaim"
                if delta <= 0
                else "ExceedsCommitted"
                if delta > outstanding
                else None
            )
            proof = m.tree.proof(account)
            balance = c.token.balance_of(account)
            _expect(lambda: d.claim(account, leaf, proof, sender=relayer), error)
            if error is None:
                m.claimed[account] = leaf
                self.paid += delta
                assert c.token.balance_of(account) == balance + delta
                # The same claim again pays nothing.
                _expect(lambda: d.claim(account, leaf, proof, sender=relayer), "NothingToClaim")
            after = d.claimed(account)
            assert after >= before  # cumulative claimed never decreases
            assert after <= leaf  # and never exceeds the account's leaf

        @rule(
            picks=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=6),
            relayer=senders,
        )
        def claim_many(self, picks: list[tuple[int, bool]], relayer: str) -> None:
            """A batch of entries (repeats and stale proofs allowed): all paid, or the first bad
            entry's error wrapped in ClaimRejected(index, ...) and nothing paid."""
            m = self.model
            entries: list[ClaimEntry] = []
            claimed = dict(m.claimed)
            outstanding = m.committed - m.total_claimed
            failure: tuple[int, str] | None = None
            for i, (index, stale) in enumerate(picks):
                account = CONTRIBUTORS[index]
                tree = m.old_trees[-1] if stale and m.old_trees else m.tree
                if tree is None:
                    entries.append(ClaimEntry(account, 1, []))
                    failure = failure or (i, "InvalidProof")
                    continue
                amount = tree.amount_of(account)
                entries.append(ClaimEntry(account, amount, tree.proof(account)))
                if failure is not None:
                    continue
                delta = amount - claimed[account]
                if tree is not m.tree:  # a proof of an older root never verifies
                    failure = (i, "InvalidProof")
                elif delta <= 0:
                    failure = (i, "NothingToClaim")
                elif delta > outstanding:
                    failure = (i, "ExceedsCommitted")
                else:
                    claimed[account] = amount
                    outstanding -= delta
            balances = {a: c.token.balance_of(a) for a in CONTRIBUTORS}
            call = lambda: d.claim_many(entries, sender=relayer)  # noqa: E731
            if m.paused:
                _expect(call, "EnforcedPause")
            elif failure is not None:
                with pytest.raises(ContractRevert) as info:
                    call()
                assert info.value.error_name == "ClaimRejected", info.value.message
                assert info.value.index == failure[0]
                assert info.value.inner is not None
                assert info.value.inner.error_name == failure[1]
            else:
                call()
                for account in CONTRIBUTORS:
                    delta = claimed[account] - m.claimed[account]
                    assert c.token.balance_of(account) == balances[account] + delta
                    self.paid += delta
                m.claimed = claimed
            for account in CONTRIBUTORS:
                assert d.claimed(account) == m.claimed[account]
                assert d.claimed(account) <= m.leaves[account]

        # -------------------------------------------------------------- pause

        @rule(as_guardian=st.booleans(), stranger=senders)
        def pause(self, as_guardian: bool, stranger: str) -> None:
            sender = c.guardian if as_guardian else stranger
            error = self._role_error(Role.GUARDIAN, sender) or (
                "EnforcedPause" if self.model.paused else None
            )
            _expect(lambda: d.pause(sender=sender), error)
            if error is None:
                self.model.paused = True

        @rule(as_admin=st.booleans(), stranger=senders)
        def unpause(self, as_admin: bool, stranger: str) -> None:
            sender = c.admin if as_admin else stranger
            error = self._role_error(Role.ADMIN, sender) or (
                "ExpectedPause" if not self.model.paused else None
            )
            _expect(lambda: d.unpause(sender=sender), error)
            if error is None:
                self.model.paused = False

        # -------------------------------------------------------------- invariants

        @invariant()
        def books_balance(self) -> None:
            m = self.model
            totals = d.totals()
            assert totals.deposited == m.deposited
            assert totals.refunded == m.refunded
            assert totals.committed == m.committed
            assert totals.claimed == m.total_claimed == self.paid
            assert c.token.balance_of(d.address) == m.deposited - m.refunded - m.total_claimed
            assert self.paid <= m.deposited  # total paid <= total deposited
            assert m.total_claimed <= m.committed <= m.deposited - m.refunded
            if m.pending_tree is not None:
                assert m.pending_total <= m.deposited - m.refunded
            for campaign in m.campaigns.values():
                assert campaign.reserved <= campaign.budget
            assert d.paused() == m.paused

        def teardown(self) -> None:
            m = self.model
            for k, campaign in m.campaigns.items():
                info = d.campaign(k)
                assert info is not None
                assert (info.deposited, info.refunded, info.closed) == (
                    campaign.deposited,
                    campaign.refunded,
                    campaign.closed,
                )
                assert (info.committed, info.reserved) == (campaign.accepted, campaign.reserved)
            for account in CONTRIBUTORS:
                assert d.claimed(account) == m.claimed[account]

    return DistributorMachine


def test_random_sequences_keep_the_invariants(reward_contracts: RewardContracts) -> None:
    c = reward_contracts
    owners = _setup(c)
    base = [c.chain.snapshot()]
    machine = _machine(c, owners, base)
    kind = c.chain.kind
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("KYODO_PROPERTY_EXAMPLES", EXAMPLES[kind])),
            stateful_step_count=int(os.environ.get("KYODO_PROPERTY_STEPS", STEPS[kind])),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
