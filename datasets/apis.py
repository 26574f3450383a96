from __future__ import annotations

from typing import Any

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import request_user
from core.errors import ApplicationError, Conflict
from core.jobs import JobStatus
from core.pagination import list_schema, paginate
from core.serializers import StrictSerializer
from labeling import selectors as labeling_selectors
from storage.services import get_store

from . import selectors, services
from .models import Export

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

    @list_schema(DatasetOutput, operation_id="api_datasets_list", tags=["datasets"])
    def get(self, request: Request) -> Response:
        campaigns = labeling_selectors.campaigns_with_completed_items()
        return paginate(request, campaigns, DatasetOutput, ordering="-id")


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
        campaign = labeling_selectors.dataset_campaign_get(campaign_id=campaign_id)
        content_type, render = FORMATS[fmt]
        response = StreamingHttpResponse(render(campaign_id=campaign.pk), content_type=content_type)
        response["Content-Disposition"] = (
            f'attachment; filename="kyodo-campaign-{campaign.pk}.{fmt}"'
        )
        return response


class ExportOutput(serializers.ModelSerializer[Export]):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = (
            "id",
            "campaign_id",
            "kind",
            "status",
            "root_cid",
            "cid",
            "size",
            "item_count",
            "error",
            "created_at",
            "finished_at",
            "download_url",
        )

    def get_download_url(self, obj: Export) -> str | None:
        return f"/api/datasets/exports/{obj.pk}/download" if obj.status == JobStatus.DONE else None


class ExportCreateApi(APIView):
    @extend_schema_serializer(component_name="ExportCreateInput")
    class Input(StrictSerializer):
        format = serializers.ChoiceField(choices=["car"], default="car")

    @extend_schema(request=Input, responses={202: ExportOutput}, tags=["datasets"])
    def post(self, request: Request, campaign_id: int) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = request_user(request)
        campaign = labeling_selectors.campaign_get(campaign_id=campaign_id)
        labeling_selectors.campaign_check_can_manage(user=user, campaign=campaign)
        export = services.export_request(campaign_id=campaign.pk, user=user)
        return Response(ExportOutput(export).data, status=status.HTTP_202_ACCEPTED)


def _export_for(request: Request, export_id: int) -> Export:
    export = selectors.export_get(export_id=export_id)
    campaign = labeling_selectors.campaign_get(campaign_id=export.campaign_id)
    labeling_selectors.campaign_check_can_manage(user=request_user(request), campaign=campaign)
    return export


class ExportDetailApi(APIView):
    @extend_schema(responses={200: ExportOutput}, tags=["datasets"])
    def get(self, request: Request, export_id: int) -> Response:
        return Response(ExportOutput(_export_for(request, export_id)).data)


class ExportDownloadApi(APIView):
    @extend_schema(responses={(200, "application/vnd.ipld.car"): bytes}, tags=["datasets"])
    def get(self, request: Request, export_id: int) -> StreamingHttpResponse:
        export = _export_for(request, export_id)
        if export.status != JobStatus.DONE:
            raise Conflict(f"export is {export.status}", code="export_not_ready")
        response = StreamingHttpResponse(
            get_store().open(export.cid), content_type="application/vnd.ipld.car"
        )
        response["Content-Length"] = str(export.size)
        response["Content-Disposition"] = (
            f'attachment; filename="kyodo-campaign-{export.campaign_id}-{export.root_cid}.car"'
        )
        response["ETag"] = f'"{export.cid}"'
        return response
