"""Epoch step ``store table`` (building → table_stored): cumulative totals per wallet, the Merkle
tree, the payout table stored and pinned, the leaves and proofs kept for the claims API.
See ``rewards.services.epochs`` for the steps as a whole."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.db import transaction

from storage.models import PinKind
from storage.services import blob_put_bytes, pin_ensure

from ..merkle import StandardMerkleTree
from ..models import Epoch, EpochLeaf, EpochStatus
from ..payout import (
    PayoutLeaf,
    PayoutTable,
    build_tree,
    campaign_totals,
    encode_table,
    leaves_from_rows,
)
from ..runtime import distributor_client, require_chain
from ..selectors import epoch_committed, epoch_last_accepted, epoch_leaf_rows

LEAF_BATCH = 2000


def epoch_store_table(*, epoch: Epoch) -> Epoch:
    """Build, store and pin the payout table; keep the leaves. building → table_stored."""
    if epoch.status != EpochStatus.BUILDING:
        return epoch
    config = require_chain()
    previous = epoch_last_accepted()
    leaves = leaves_from_rows(epoch_leaf_rows(epoch.number))
    tree = build_tree(leaves)
    committed = campaign_totals(leaves)
    before = epoch_committed(epoch=previous)
    changed = {c: v for c, v in committed.items() if v != before.get(c, 0)}
    if settings.KYODO_PAYOUT_TABLE_PROOFS:
        leaves = [replace(leaf, proof=tuple(tree.proof(leaf.account))) for leaf in leaves]
    table = PayoutTable(
        epoch=epoch.number,
        previous_epoch=previous.number if previous else None,
        chain_id=config.chain_id,
        distributor=config.distributor,
        token=config.token or distributor_client(config).token(),
        entry_cutoff=epoch.entry_cutoff,
        root=tree.root,
        total_committed=sum(committed.values()),
        campaign_committed=committed,
        campaigns_changed=changed,
        leaves=tuple(leaves),
    )
    blob = blob_put_bytes(data=encode_table(table))
    with transaction.atomic():
        epoch = Epoch.objects.select_for_update().get(pk=epoch.pk)
        if epoch.status != EpochStatus.BUILDING:
            return epoch
        _leaves_replace(epoch, leaves, tree)
        pin_ensure(cid=blob.cid, kind=PinKind.PAYOUT_TABLE)
        epoch.merkle_root = tree.root
        epoch.payout_table_cid = blob.cid
        epoch.total_committed = table.total_committed
        epoch.campaign_committed = {str(k): str(v) for k, v in committed.items()}
        epoch.campaigns_changed = {str(k): str(v) for k, v in changed.items()}
        epoch.leaf_count = len(leaves)
        epoch.status = EpochStatus.TABLE_STORED
        epoch.error = ""
        epoch.save()
    return epoch


def _leaves_replace(epoch: Epoch, leaves: list[PayoutLeaf], tree: StandardMerkleTree) -> None:
    EpochLeaf.objects.filter(epoch=epoch).delete()
    batch = []
    for leaf in leaves:
        proof = b"".join(tree.proof_bytes(leaf.account))
        batch.append(
            EpochLeaf(epoch=epoch, account=leaf.account, cumulative=leaf.cumulative, proof=proof)
        )
        if len(batch) >= LEAF_BATCH:
            EpochLeaf.objects.bulk_create(batch)
            batch = []
    EpochLeaf.objects.bulk_create(batch)
