from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import request_user
from core.errors import ApplicationError
from core.pagination import list_schema, paginate, paginate_sequence
from core.serializers import StrictSerializer

from . import selectors, services
from .models import Campaign, CampaignStatus, ImportJob, TaskType
from .selectors import campaign_check_can_manage
from .services.imports import MAX_REJECTED_LISTED


class ClassSerializer(serializers.Serializer[dict[str, str]]):
    name = serializers.CharField()
    hotkey = serializers.CharField(allow_blank=True)
    color = serializers.CharField()


class CampaignOutput(serializers.ModelSerializer[Campaign]):
    reward_per_label = serializers.CharField(help_text="token base units, as a decimal string")
    budget = serializers.CharField(
        allow_null=True, help_text="token base units, or null for no cap"
    )
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = (
            "id",
            "title",
            "instructions",
            "task_type",
            "label_schema",
            "min_labels",
            "max_labels",
            "target_confidence",
            "gold_ratio",
            "reward_per_label",
            "budget",
            "status",
            "created_at",
            "progress",
        )

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "properties": {
                    "items": {"type": "integer"},
                    "completed": {"type": "integer"},
                    "labels": {"type": "integer"},
                },
            }
        }
    )
    def get_progress(self, obj: Campaign) -> dict[str, int]:
        return selectors.campaign_progress(campaign=obj)


class AmountField(serializers.CharField):
    """A token amount: a non-negative integer, as a JSON number or a decimal string."""

    def to_internal_value(self, data: Any) -> int:  # type: ignore[override]
        if isinstance(data, bool) or not isinstance(data, int | str):
            raise serializers.ValidationError("must be a non-negative integer in token base units")
        text = str(data).strip()
        if not text.isdigit() or len(text) > 78 or int(text) >= 2**256:
            raise serializers.ValidationError("must be a non-negative integer in token base units")
        return int(text)


class CampaignListCreateApi(APIView):
    @extend_schema_serializer(component_name="CampaignCreateInput")
    class Input(StrictSerializer):
        title = serializers.CharField(max_length=200)
        instructions = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
        task_type = serializers.ChoiceField(choices=TaskType.choices)
        label_schema = serializers.JSONField(
            help_text='{"classes": [{"name", "hotkey", "color"}]} or a list of names'
        )
        min_labels = serializers.IntegerField(min_value=1, max_value=50, default=3)
        max_labels = serializers.IntegerField(min_value=1, max_value=50, default=5)
        target_confidence = serializers.FloatField(min_value=0.5, max_value=0.9999, default=0.95)
        gold_ratio = serializers.FloatField(min_value=0.0, max_value=0.5, default=0.0)
        reward_per_label = AmountField(default="0")
        budget = AmountField(required=False, allow_null=True, default=None)
        status = serializers.ChoiceField(
            choices=CampaignStatus.choices, default=CampaignStatus.ACTIVE
        )

    @list_schema(CampaignOutput, operation_id="api_campaigns_list", tags=["campaigns"])
    def get(self, request: Request) -> Response:
        campaigns = selectors.campaign_list_for(user=request_user(request))
        return paginate(request, campaigns, CampaignOutput, ordering="-id")

    @extend_schema(request=Input, responses={201: CampaignOutput}, tags=["campaigns"])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = services.campaign_create(owner=request_user(request), **data.validated_data)
        return Response(CampaignOutput(campaign).data, status=status.HTTP_201_CREATED)


class CampaignDetailApi(APIView):
    @extend_schema_serializer(component_name="CampaignUpdateInput")
    class Input(StrictSerializer):
        status = serializers.ChoiceField(choices=CampaignStatus.choices)

    @extend_schema(responses={200: CampaignOutput}, tags=["campaigns"])
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = selectors.campaign_get_for(user=request_user(request), campaign_id=campaign_id)
        return Response(CampaignOutput(campaign).data)

    @extend_schema(request=Input, responses={200: CampaignOutput}, tags=["campaigns"])
    def patch(self, request: Request, campaign_id: int) -> Response:
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        campaign_check_can_manage(user=request_user(request), campaign=campaign)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        campaign = services.campaign_set_status(
            campaign=campaign, status=data.validated_data["status"]
        )
        return Response(CampaignOutput(campaign).data)


class UploadOutput(serializers.Serializer[Any]):
    class Rejection(serializers.Serializer[Any]):
        name = serializers.CharField()
        reason = serializers.CharField()

    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = Rejection(many=True)


class ItemUploadApi(APIView):
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "images, or zips of images",
                    },
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "CSV (text column) or JSONL of texts",
                    },
                },
            }
        },
        responses={
            201: UploadOutput,
            400: OpenApiResponse(description="nothing could be imported"),
        },
        tags=["campaigns"],
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        campaign_check_can_manage(user=request_user(request), campaign=campaign)
        unknown = sorted(set(request.data) - {"files", "file"})
        if unknown:
            raise ApplicationError(
                f"unknown fields: {unknown}; send `files` or `file`", code="unknown_field"
            )
        files = request.FILES.getlist("files")
        text_files = request.FILES.getlist("file")
        if len(text_files) > 1:
            raise ApplicationError("send one `file` per upload", code="too_many_files")
        result = services.items_upload(
            campaign=campaign, files=files, text_file=text_files[0] if text_files else None
        )
        return Response(UploadOutput(result).data, status=status.HTTP_201_CREATED)


class TaskOutput(serializers.Serializer[Any]):
    item_id = serializers.IntegerField()
    campaign_id = serializers.IntegerField()
    classes = ClassSerializer(many=True)
    lease_expires_at = serializers.DateTimeField()
    media_type = serializers.CharField()
    media_url = serializers.CharField(required=False)
    text = serializers.CharField(required=False)


class NextTaskApi(APIView):
    @extend_schema(
        responses={200: TaskOutput, 204: OpenApiResponse(description="nothing left for you")},
        tags=["labeling"],
    )
    def get(self, request: Request, campaign_id: int) -> Response:
        assignment = services.task_lease_next_in(
            campaign_id=campaign_id, worker=request_user(request)
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            TASK_OUTPUT.to_representation(selectors.task_payload(assignment=assignment))
        )


class AnnotationCreateApi(APIView):
    @extend_schema_serializer(component_name="AnnotationInput")
    class Input(StrictSerializer):
        # DRF's metaclass moves declared fields out of the class, so `label` shadows nothing at run
        # time; mypy only sees Field.label (the field's own caption attribute).
        label = serializers.JSONField(  # type: ignore[assignment]
            required=False, help_text="the class name (classification tasks)"
        )
        boxes = serializers.JSONField(
            required=False,
            help_text="image_bbox tasks: [{x, y, w, h, label}] in fractions of the image",
        )
        duration_ms = serializers.IntegerField(min_value=0, max_value=86_400_000, required=False)

    @extend_schema_serializer(component_name="AnnotationOutput")
    class Output(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        item_id = serializers.IntegerField()
        label = serializers.CharField()  # type: ignore[assignment]
        value = serializers.JSONField()
        created_at = serializers.DateTimeField()

    @extend_schema(request=Input, responses={201: Output}, tags=["labeling"])
    def post(self, request: Request, item_id: int) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        annotation = services.annotation_submit(
            worker=request_user(request), item_id=item_id, **data.validated_data
        )
        return Response(
            ANNOTATION_OUTPUT.to_representation(annotation), status=status.HTTP_201_CREATED
        )


# The two hot calls' output serializers, built once: a serializer keeps no state between
# `to_representation` calls, and building one per request (DRF deep-copies its fields) was an
# eighth of a next + submit cycle's CPU (bench/README.md, "Next task").
TASK_OUTPUT = TaskOutput()
ANNOTATION_OUTPUT = AnnotationCreateApi.Output()


class ImportOutput(serializers.ModelSerializer[ImportJob]):
    """A job without its rejected list (up to MAX_REJECTED_LISTED entries, paged by
    GET /api/imports/{id}/rejected/): the list and the poll load the count, never the list."""

    class Meta:
        model = ImportJob
        fields = (
            "id",
            "campaign",
            "kind",
            "source_name",
            "source_cid",
            "status",
            "total",
            "processed",
            "created",
            "duplicates",
            "rejected_count",
            "error",
            "created_at",
            "finished_at",
        )
        extra_kwargs = {
            "rejected_count": {
                "help_text": "every rejected file or row; GET /api/imports/{id}/rejected/ lists "
                f"the first {MAX_REJECTED_LISTED:,} with their reasons"
            }
        }


class ImportRejectionOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    reason = serializers.CharField()


class ImportCreateApi(APIView):
    parser_classes = (MultiPartParser, FormParser)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "a zip of images, a CSV/JSONL of texts, or a JSONL of "
                        'existing CIDs ({"cid": ..., "filename"?, "gold_label"?} per line)',
                    }
                },
            }
        },
        responses={202: ImportOutput},
        tags=["campaigns"],
    )
    def post(self, request: Request, campaign_id: int) -> Response:
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        user = request_user(request)
        campaign_check_can_manage(user=user, campaign=campaign)
        unknown = sorted(set(request.data) - {"file"})
        if unknown:
            raise ApplicationError(f"unknown fields: {unknown}; send `file`", code="unknown_field")
        files = request.FILES.getlist("file")
        if len(files) != 1:
            raise ApplicationError("send exactly one `file`", code="no_files")
        job = services.import_job_create(campaign=campaign, user=user, upload=files[0])
        return Response(ImportOutput(job).data, status=status.HTTP_202_ACCEPTED)

    @list_schema(ImportOutput, operation_id="api_campaigns_imports_list", tags=["campaigns"])
    def get(self, request: Request, campaign_id: int) -> Response:
        campaign = selectors.campaign_get(campaign_id=campaign_id)
        campaign_check_can_manage(user=request_user(request), campaign=campaign)
        jobs = selectors.imports_of(campaign=campaign)
        return paginate(request, jobs, ImportOutput, ordering="-id")


class ImportDetailApi(APIView):
    @extend_schema(responses={200: ImportOutput}, tags=["campaigns"])
    def get(self, request: Request, import_id: int) -> Response:
        job = selectors.import_get(import_id=import_id)
        campaign_check_can_manage(user=request_user(request), campaign=job.campaign)
        return Response(ImportOutput(job).data)


class ImportRejectedApi(APIView):
    """The files or rows an import rejected, with why, in the order it met them."""

    @list_schema(
        ImportRejectionOutput, operation_id="api_imports_rejected_list", tags=["campaigns"]
    )
    def get(self, request: Request, import_id: int) -> Response:
        job = selectors.import_get(import_id=import_id)
        campaign_check_can_manage(user=request_user(request), campaign=job.campaign)

        def fetch(start: int, stop: int) -> list[dict[str, str]]:
            return selectors.import_rejected_slice(job=job, start=start, stop=stop)

        return paginate_sequence(request, fetch, ImportRejectionOutput)
