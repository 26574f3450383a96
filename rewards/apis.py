"""The rewards API: a contributor's balances, proof and relayed claim; the epochs (public data).

Token amounts are uint256 in base units: always decimal strings in JSON.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from core.errors import NotFound
from core.pagination import list_schema, paginate

from .models import ChainTx, ClaimRequest, Epoch
from .runtime import require_chain
from .selectors import epoch_get, epoch_list, reward_summary
from .services import claim_check, claim_request


class AmountField(serializers.CharField):
    """A uint256 token amount as a decimal string."""

    def to_representation(self, value: Any) -> str:
        return str(int(value))


class RewardsEpochOutput(serializers.ModelSerializer[Epoch]):
    total_committed = AmountField()
    new_amount = AmountField()

    class Meta:
        model = Epoch
        fields = (
            "number",
            "status",
            "chain_id",
            "distributor",
            "root_id",
            "merkle_root",
            "payout_table_cid",
            "total_committed",
            "new_amount",
            "entry_count",
            "leaf_count",
            "entry_cutoff",
            "valid_at",
            "submit_tx_hash",
            "accept_tx_hash",
            "created_at",
            "accepted_at",
        )


class RewardsClaimTxOutput(serializers.ModelSerializer[ChainTx]):
    class Meta:
        model = ChainTx
        fields = ("id", "idempotency_key", "status", "tx_hash", "mined_tx_hash", "error_code")


class RewardsClaimRequestOutput(serializers.ModelSerializer[ClaimRequest]):
    cumulative_amount = AmountField(source="cumulative", help_text="the leaf being claimed")
    amount = AmountField(help_text="what it pays: the leaf minus what was paid when asked")
    tx = RewardsClaimTxOutput(
        source="batch_tx",
        allow_null=True,
        help_text="the claimMany transaction carrying it (null while queued)",
    )

    class Meta:
        model = ClaimRequest
        fields = (
            "id",
            "account",
            "cumulative_amount",
            "amount",
            "epoch",
            "status",
            "error_code",
            "tx",
            "created_at",
            "updated_at",
        )
        extra_kwargs = {
            "status": {
                "help_text": "queued (waiting for the next batch), batched (sent in tx), "
                "confirmed (paid), failed (error_code; nothing_to_claim: paid by other means), "
                "superseded (a newer root's leaf replaced it: see the newer request)"
            }
        }


class RewardsMeOutput(serializers.Serializer[Any]):
    wallet = serializers.CharField(allow_null=True)
    pending = AmountField(help_text="awaiting the quality decision")
    accepted = AmountField(help_text="every accepted reward, settled or not")
    awaiting_settlement = AmountField(help_text="accepted, not yet in an accepted root")
    settled = AmountField(help_text="accepted and in the current root")
    claimable = AmountField(help_text="the wallet's leaf in the current root minus what was paid")
    claimed = AmountField(help_text="paid to the wallet by the distributor")
    epoch = RewardsEpochOutput(allow_null=True, help_text="the current (latest accepted) epoch")
    last_claim = RewardsClaimRequestOutput(allow_null=True)


class RewardsProofOutput(serializers.Serializer[Any]):
    account = serializers.CharField()
    cumulative_amount = AmountField(help_text="the leaf: what the wallet has earned in total")
    claimed = AmountField()
    claimable = AmountField()
    proof = serializers.ListField(child=serializers.CharField())
    merkle_root = serializers.CharField()
    root_id = serializers.IntegerField()
    epoch = serializers.IntegerField()
    payout_table_cid = serializers.CharField()
    distributor = serializers.CharField()
    chain_id = serializers.IntegerField()


class RewardsMeApi(APIView):
    @extend_schema(responses={200: RewardsMeOutput}, tags=["rewards"])
    def get(self, request: Request) -> Response:
        summary = reward_summary(user=request_user(request))
        body = {
            "wallet": summary.wallet,
            "pending": summary.pending,
            "accepted": summary.accepted,
            "awaiting_settlement": summary.awaiting_settlement,
            "settled": summary.settled,
            "claimable": summary.claimable,
            "claimed": summary.claimed,
            "epoch": summary.epoch,
            "last_claim": summary.last_claim,
        }
        return Response(RewardsMeOutput(body).data)


class RewardsProofApi(APIView):
    """The wallet's leaf and Merkle proof in the current root: enough to claim from any wallet."""

    @extend_schema(responses={200: RewardsProofOutput}, tags=["rewards"])
    def get(self, request: Request) -> Response:
        claimable = claim_check(user=request_user(request))
        epoch = claimable.leaf.epoch
        config = require_chain()
        body = {
            "account": claimable.account,
            "cumulative_amount": claimable.leaf.cumulative,
            "claimed": claimable.claimed,
            "claimable": claimable.amount,
            "proof": claimable.leaf.proof_hex(),
            "merkle_root": epoch.merkle_root,
            "root_id": epoch.root_id,
            "epoch": epoch.number,
            "payout_table_cid": epoch.payout_table_cid,
            "distributor": config.distributor,
            "chain_id": config.chain_id,
        }
        return Response(RewardsProofOutput(body).data)


class RewardsClaimApi(APIView):
    """The platform claims the wallet's current leaf for it and pays the gas; the tokens go to
    the wallet. Queued, then sent in the next ``claimMany`` batch. Idempotent: asking again for
    the same leaf returns the same request."""

    @extend_schema(request=None, responses={202: RewardsClaimRequestOutput}, tags=["rewards"])
    def post(self, request: Request) -> Response:
        claim = claim_request(user=request_user(request))
        return Response(RewardsClaimRequestOutput(claim).data, status=status.HTTP_202_ACCEPTED)


class RewardsEpochListApi(APIView):
    @list_schema(RewardsEpochOutput, operation_id="api_rewards_epochs_list", tags=["rewards"])
    def get(self, request: Request) -> Response:
        return paginate(request, epoch_list(), RewardsEpochOutput, ordering="-number")


class RewardsEpochDetailApi(APIView):
    @extend_schema(responses={200: RewardsEpochOutput}, tags=["rewards"])
    def get(self, request: Request, number: int) -> Response:
        epoch = epoch_get(number=number)
        if epoch is None:
            raise NotFound(f"no epoch {number}")
        return Response(RewardsEpochOutput(epoch).data)
