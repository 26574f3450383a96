"""The rewards app's tables: the ledger, epochs and their leaves, the chain outbox and watcher.

Every external side effect is a row first: a payout root to publish is an ``Epoch`` moving through
its statuses, a transaction to send is a ``ChainTx`` with a unique business key, and what the chain
said back is a ``ChainEvent`` (unique by ``(tx_hash, log_index)``). See docs/rewards.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.fields import TokenAmountField


class RewardStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


class RewardEntry(models.Model):
    """The ledger: one row per annotation, written once when its item closes."""

    worker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reward_entries"
    )
    campaign_id = models.BigIntegerField()
    item_id = models.BigIntegerField()
    # Unique: this is what makes accounting exactly-once however often the task runs.
    annotation_id = models.BigIntegerField(unique=True)
    amount = TokenAmountField()
    status = models.CharField(
        max_length=16, choices=RewardStatus.choices, default=RewardStatus.PENDING
    )
    reason = models.CharField(max_length=64, blank=True)
    # The epoch whose root first includes this entry (every later root includes it too: roots are
    # cumulative). NULL until settled; set back to NULL if that epoch fails before acceptance.
    epoch = models.PositiveIntegerField(null=True, blank=True)
    # The payee, frozen when the entry joins an epoch: a leaf is per wallet, so an entry is paid
    # to the wallet its worker had then, whatever happens to the account later.
    wallet = models.CharField(max_length=42, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["worker", "status"], name="reward_worker_status"),
            models.Index(fields=["campaign_id", "status"], name="reward_campaign_status"),
            models.Index(fields=["item_id"], name="reward_item"),
            # The payout table aggregates every settled entry up to an epoch.
            models.Index(fields=["epoch", "wallet"], name="reward_epoch_wallet"),
            # What the next epoch may take: accepted and not settled, per campaign in id order.
            models.Index(
                fields=["campaign_id", "id"],
                condition=Q(status="accepted", epoch__isnull=True),
                name="reward_unsettled",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.amount} to {self.worker_id} for annotation {self.annotation_id} ({self.status})"
        )


class ChainDeployment(models.Model):
    """Where the contracts live (written by ``manage.py chain_deploy``).

    Settings (``KYODO_DISTRIBUTOR_ADDRESS`` ...) win over this row; the demo and tests deploy at run
    time and record the addresses here so every process finds them.
    """

    chain_id = models.BigIntegerField()
    token = models.CharField(max_length=42)
    distributor = models.CharField(max_length=42)
    deploy_block = models.PositiveBigIntegerField(default=0)
    timelock = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["chain_id", "active"], name="chain_deployment_active")]

    def __str__(self) -> str:
        return f"distributor {self.distributor} on chain {self.chain_id}"


class EpochStatus(models.TextChoices):
    BUILDING = "building", "Building"  # entries assigned; table not stored yet
    TABLE_STORED = "table_stored", "Payout table stored"
    SUBMITTED = "submitted", "submitRoot queued or sent"
    PENDING_TIMELOCK = "pending_timelock", "Root pending (timelock)"
    ACCEPTED = "accepted", "Accepted"
    FAILED = "failed", "Failed"  # its entries were released to the next epoch


UNFINISHED_EPOCH_STATUSES = (
    EpochStatus.BUILDING,
    EpochStatus.TABLE_STORED,
    EpochStatus.SUBMITTED,
    EpochStatus.PENDING_TIMELOCK,
)


class Epoch(models.Model):
    """One cumulative payout root, from the ledger to ``acceptRoot``.

    At most one epoch is unfinished at a time (the contract allows one pending root): the service
    refuses to open another, and every step is resumable from ``status``.
    """

    number = models.PositiveIntegerField(unique=True)
    status = models.CharField(
        max_length=16, choices=EpochStatus.choices, default=EpochStatus.BUILDING
    )
    chain_id = models.BigIntegerField()
    distributor = models.CharField(max_length=42)
    # The largest RewardEntry id this epoch looked at; entries past it wait for the next one.
    entry_cutoff = models.BigIntegerField(default=0)
    entry_count = models.PositiveIntegerField(default=0)  # entries new in this epoch
    new_amount = TokenAmountField(default=0)  # their sum
    total_committed = TokenAmountField(default=0)  # cumulative: the sum of every leaf
    # {"<campaign id>": "<cumulative amount>"} for every campaign, and the subset that changed
    # since the last accepted root (what submitRoot lists). Decimal strings: uint256 in JSON.
    campaign_committed = models.JSONField(default=dict)
    campaigns_changed = models.JSONField(default=dict)
    # Campaigns with accepted entries left out for lack of on-chain budget: {"<id>": "<amount>"}.
    deferred = models.JSONField(default=dict)
    leaf_count = models.PositiveIntegerField(default=0)
    merkle_root = models.CharField(max_length=66, blank=True)
    payout_table_cid = models.CharField(max_length=100, blank=True)
    root_id = models.PositiveBigIntegerField(null=True, blank=True)  # the contract's rootId
    valid_at = models.PositiveBigIntegerField(null=True, blank=True)  # unix seconds
    submit_tx = models.ForeignKey(
        "ChainTx", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    accept_tx = models.ForeignKey(
        "ChainTx", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submit_tx_hash = models.CharField(max_length=66, blank=True)
    accept_tx_hash = models.CharField(max_length=66, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "number"], name="epoch_status_number")]

    def __str__(self) -> str:
        return f"epoch {self.number} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (EpochStatus.ACCEPTED, EpochStatus.FAILED)


class EpochLeaf(models.Model):
    """One wallet's leaf in an epoch's tree, with its proof (for the claims API).

    Kept for the latest accepted epoch and any newer one; older rows are pruned on acceptance
    (the payout table on IPFS keeps the history).
    """

    epoch = models.ForeignKey(Epoch, on_delete=models.CASCADE, related_name="leaves")
    account = models.CharField(max_length=42)  # EIP-55 checksum form
    cumulative = TokenAmountField()
    proof = models.BinaryField()  # 32-byte sibling hashes, concatenated, leaf to root

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["epoch", "account"], name="epoch_leaf_unique")
        ]

    def __str__(self) -> str:
        return f"{self.account}: {self.cumulative} (epoch {self.epoch_id})"

    def proof_hex(self) -> list[str]:
        raw = bytes(self.proof)
        return ["0x" + raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


class ChainTxKind(models.TextChoices):
    SUBMIT_ROOT = "submit_root", "submitRoot"
    ACCEPT_ROOT = "accept_root", "acceptRoot"
    CLAIM = "claim", "claim (relayed one by one, before batches)"
    CLAIM_MANY = "claim_many", "claimMany (a batch of relayed claims)"
    CREATE_CAMPAIGN = "create_campaign", "createCampaign"
    CLOSE_CAMPAIGN = "close_campaign", "closeCampaign"


class ChainTxStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not signed yet (no nonce)
    SENT = "sent", "Sent"  # signed with a nonce, hash recorded, broadcast (maybe)
    CONFIRMED = "confirmed", "Confirmed"  # mined, succeeded, enough confirmations
    FAILED = "failed", "Failed"  # reverted (on-chain or in the estimate); see error_code


OPEN_TX_STATUSES = (ChainTxStatus.PENDING, ChainTxStatus.SENT)


class ChainTx(models.Model):
    """The transaction outbox: every transaction the platform sends is a row first.

    ``idempotency_key`` is the business key (``submit_root:<epoch>``, ``accept_root:<epoch>``,
    ``claim_many:<request ids>``, ``create_campaign:<id>``): asking twice gives the same row.
    The nonce and the signed transaction's hash are written *before* the broadcast, so a crash at
    any point leaves a row that the next run reconciles against the chain.
    """

    kind = models.CharField(max_length=24, choices=ChainTxKind.choices)
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=12, choices=ChainTxStatus.choices, default=ChainTxStatus.PENDING
    )
    chain_id = models.BigIntegerField()
    sender = models.CharField(max_length=42)
    to = models.CharField(max_length=42)
    data = models.TextField()  # 0x-prefixed call data
    value = TokenAmountField(default=0)
    gas = models.PositiveBigIntegerField(null=True, blank=True)
    max_fee_per_gas = models.PositiveBigIntegerField(null=True, blank=True)
    max_priority_fee_per_gas = models.PositiveBigIntegerField(null=True, blank=True)
    nonce = models.PositiveBigIntegerField(null=True, blank=True)
    # Every hash ever signed for this row (a re-send with a higher fee has a new one), oldest
    # first; any of them may be the one that gets mined.
    tx_hashes = models.JSONField(default=list)
    tx_hash = models.CharField(max_length=66, blank=True)  # the latest signed
    raw_tx = models.TextField(blank=True)  # the latest signed, for re-broadcasting
    mined_tx_hash = models.CharField(max_length=66, blank=True)
    block_number = models.PositiveBigIntegerField(null=True, blank=True)
    confirmations = models.PositiveSmallIntegerField(default=1)  # required before confirmed
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)  # the latest signature's broadcast
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # The worker's claim query; partial so the confirmed history stays out of it.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status__in=["pending", "sent"]),
                name="chain_tx_open_due",
            ),
            models.Index(fields=["kind", "status"], name="chain_tx_kind_status"),
        ]

    def __str__(self) -> str:
        return f"{self.idempotency_key} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TX_STATUSES


class ChainSender(models.Model):
    """The next nonce of one signing account. Locked (``select_for_update``) while assigning."""

    chain_id = models.BigIntegerField()
    address = models.CharField(max_length=42)
    next_nonce = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "address"], name="chain_sender_unique")
        ]

    def __str__(self) -> str:
        return f"{self.address} next nonce {self.next_nonce}"


class ChainCursor(models.Model):
    """The watcher's last processed block, per contract."""

    chain_id = models.BigIntegerField()
    contract = models.CharField(max_length=42)
    last_block = models.BigIntegerField(default=-1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "contract"], name="chain_cursor_unique")
        ]

    def __str__(self) -> str:
        return f"{self.contract} at block {self.last_block}"


class ChainEvent(models.Model):
    """A contract event with enough confirmations; recorded once whatever the replays."""

    chain_id = models.BigIntegerField()
    contract = models.CharField(max_length=42)
    name = models.CharField(max_length=40)
    block_number = models.PositiveBigIntegerField()
    block_hash = models.CharField(max_length=66)
    tx_hash = models.CharField(max_length=66)
    log_index = models.PositiveIntegerField()
    args = models.JSONField()  # integers as decimal strings
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tx_hash", "log_index"], name="chain_event_unique")
        ]
        indexes = [models.Index(fields=["name", "block_number"], name="chain_event_name_block")]

    def __str__(self) -> str:
        return f"{self.name} at {self.block_number}:{self.log_index}"


class WalletClaim(models.Model):
    """What the distributor has paid a wallet so far (its ``claimed`` cumulative amount)."""

    wallet = models.CharField(max_length=42, unique=True)  # EIP-55 checksum form
    # max(cumulativeAmount) of its Claimed events: order-safe, replays change nothing.
    claimed = TokenAmountField(default=0)
    last_block = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.wallet}: {self.claimed} claimed"


class ClaimRequestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # waiting for the next claimMany batch
    BATCHED = "batched", "In a batch"  # in a claimMany outbox transaction (batch_tx)
    CONFIRMED = "confirmed", "Paid"  # its batch is confirmed: the wallet holds the tokens
    FAILED = "failed", "Failed"  # see error_code; nothing_to_claim means paid by other means
    SUPERSEDED = "superseded", "Superseded"  # a newer root's leaf replaced it (a new request)


class ClaimRequest(models.Model):
    """A relayed claim asked for: one leaf ``(account, cumulative)`` to pay through ``claimMany``.

    Unique per leaf, so asking twice is one request; a beat task puts queued requests into a
    ``claimMany`` outbox transaction (``batch_tx``), and that transaction's fate settles them.
    """

    account = models.CharField(max_length=42)  # EIP-55 checksum form
    cumulative = TokenAmountField()  # the leaf
    amount = TokenAmountField(default=0)  # leaf - claimed when asked: what it is expected to pay
    epoch = models.PositiveIntegerField()  # the accepted epoch whose leaf it is
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=12, choices=ClaimRequestStatus.choices, default=ClaimRequestStatus.QUEUED
    )
    batch_tx = models.ForeignKey(
        ChainTx, null=True, blank=True, on_delete=models.PROTECT, related_name="claim_requests"
    )
    batch_index = models.PositiveIntegerField(null=True, blank=True)  # position in claimMany
    error_code = models.CharField(max_length=64, blank=True)
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "cumulative"], name="claim_request_leaf")
        ]
        indexes = [
            # The batcher's query: queued requests, oldest first.
            models.Index(fields=["id"], condition=Q(status="queued"), name="claim_request_queued"),
            models.Index(fields=["account", "id"], name="claim_request_account"),
            # Wallets with a batch in flight, which the batcher leaves out.
            models.Index(
                fields=["account"], condition=Q(status="batched"), name="claim_request_batched"
            ),
        ]

    def __str__(self) -> str:
        return f"claim {self.account}:{self.cumulative} ({self.status})"
