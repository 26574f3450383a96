from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from core.errors import ApplicationError
from labeling import selectors as labeling_selectors

from . import selectors

FORMATS = {"jsonl": ("application/x-ndjson", selectors.export_jsonl)}


class IsBuyer(BasePermission):
    message = "only buyers and staff can download datasets"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return isinstance(user, User) and user.is_buyer


class DatasetOutput(serializers.Serializer[Any]):
    campaign_id = serializers.IntegerField(source="pk")
    title = serializers.CharField()
    task_type = serializers.CharField()
    classes = serializers.SerializerMethodField()
    items = serializers.IntegerField(source="item_count")
    completed = serializers.IntegerField(source="completed_count")
    formats = serializers.SerializerMethodField()

    def get_classes(self, obj: Any) -> list[str]:
        return list(obj.class_names)

    def get_formats(self, obj: Any) -> list[str]:
        return sorted(FORMATS)


class DatasetListApi(APIView):
    permission_classes = (IsBuyer,)

    @extend_schema(responses={200: DatasetOutput(many=True)}, tags=["datasets"])
    def get(self, request: Request) -> Response:
        campaigns = labeling_selectors.campaigns_with_completed_items()[:500]
        return Response(DatasetOutput(campaigns, many=True).data)


class DatasetExportApi(APIView):
    permission_classes = (IsBuyer,)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=sorted(FORMATS), default="jsonl")],
        responses={
            (200, "application/x-ndjson"): {
                "type": "string",
                "description": "one JSON object a line: item_id, cid, label, confidence, n_labels",
            }
        },
        tags=["datasets"],
    )
    def get(self, request: Request, campaign_id: int) -> StreamingHttpResponse:
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in FORMATS:
            raise ApplicationError(
                f"unknown format {fmt!r}; one of {sorted(FORMATS)}", code="unknown_format"
            )
        campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
        content_type, render = FORMATS[fmt]
        response = StreamingHttpResponse(render(campaign_id=campaign.pk), content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="kyodo-campaign-{campaign.pk}.{fmt}"'
        )
        return response
