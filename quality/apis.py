from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user

from . import selectors


class AnnotatorSerializer(serializers.Serializer[Any]):
    annotator = serializers.CharField(help_text='"annotator 1", ... in labeling order')
    you = serializers.BooleanField(help_text="this annotation is the caller's own")
    worker_id = serializers.IntegerField(
        required=False,
        help_text="only for whoever may manage the campaign (staff, or its requester owner)",
    )
    label = serializers.CharField(  # type: ignore[assignment]
        required=False, help_text="classification: the label given"
    )
    weight = serializers.FloatField(
        help_text="classification: log-odds this label added for the decided class over the "
        "runner-up; bounding boxes: the contributor's skill weight in the fusion"
    )
    f1 = serializers.FloatField(required=False, help_text="bounding boxes: F1 vs the consensus")
    boxes_accepted = serializers.ListField(child=serializers.BooleanField(), required=False)


class ModelVoteSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    label = serializers.CharField()  # type: ignore[assignment]
    weight = serializers.FloatField()


class FusedBoxSerializer(serializers.Serializer[Any]):
    x = serializers.FloatField()
    y = serializers.FloatField()
    w = serializers.FloatField()
    h = serializers.FloatField()
    label = serializers.CharField()  # type: ignore[assignment]
    support = serializers.FloatField()
    kept = serializers.BooleanField()


class ItemExplanationApi(APIView):
    @extend_schema_serializer(component_name="ItemExplanation")
    class Output(serializers.Serializer[Any]):
        item_id = serializers.IntegerField()
        campaign_id = serializers.IntegerField()
        task_type = serializers.CharField()
        label = serializers.CharField()  # type: ignore[assignment]
        confidence = serializers.FloatField()
        method = serializers.CharField(
            help_text="dawid_skene, gold_dawid_skene, one_coin_agreement, cold_start, gold or "
            "weighted_box_fusion"
        )
        is_complete = serializers.BooleanField()
        n_labels = serializers.IntegerField()
        posterior = serializers.DictField(child=serializers.FloatField())
        runner_up = serializers.CharField(allow_null=True)
        prior_weight = serializers.FloatField(allow_null=True)
        temperature = serializers.FloatField(allow_null=True)
        gold = serializers.BooleanField()
        annotators = AnnotatorSerializer(many=True)
        model = ModelVoteSerializer(allow_null=True)
        boxes = FusedBoxSerializer(many=True, allow_null=True)

    @extend_schema(responses={200: Output}, tags=["quality"])
    def get(self, request: Request, item_id: int) -> Response:
        explanation = selectors.item_explanation_for(user=request_user(request), item_id=item_id)
        return Response(self.Output(explanation).data)


class WorkerStatusApi(APIView):
    @extend_schema_serializer(component_name="WorkerQualityStatus")
    class Output(serializers.Serializer[Any]):
        campaign_id = serializers.IntegerField()
        status = serializers.CharField(help_text="probation, trusted or suspended")
        reason = serializers.CharField()
        may_label = serializers.BooleanField()
        accuracy = serializers.FloatField(allow_null=True)
        answers = serializers.IntegerField()
        gold_seen = serializers.IntegerField()
        gold_passed = serializers.IntegerField()
        gold_accuracy = serializers.FloatField(allow_null=True)

    @extend_schema(responses={200: Output}, tags=["quality"])
    def get(self, request: Request, campaign_id: int) -> Response:
        """The caller's own standing in a campaign."""
        status = selectors.worker_status_for(user=request_user(request), campaign_id=campaign_id)
        return Response(self.Output(status).data)
