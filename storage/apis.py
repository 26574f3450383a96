from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import PAGE_KEYS, PAGE_PARAMETERS, paginate
from core.serializers import StrictSerializer
from storage.cid import InvalidCid, cid_decode
from storage.models import Pin, PinStatus

from . import selectors


class PinOutput(serializers.ModelSerializer[Pin]):
    class Meta:
        model = Pin
        fields = (
            "cid",
            "kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "updated_at",
            "pinned_at",
        )


class PinListApi(APIView):
    """Pin status for operators: counts per status, and the pins, newest first, a page at a time
    (core.pagination; by id, since a pin's change time moves and would shift the pages)."""

    permission_classes = (IsAdminUser,)

    class Filter(StrictSerializer):
        status = serializers.ChoiceField(choices=PinStatus.choices, required=False)
        cid = serializers.CharField(required=False, max_length=100)

        def validate_cid(self, value: str) -> str:
            try:
                cid_decode(value)
            except InvalidCid as exc:
                raise serializers.ValidationError(str(exc)) from None
            return value

    @extend_schema(
        operation_id="api_storage_pins_list",
        parameters=[Filter, *PAGE_PARAMETERS],
        responses={
            200: inline_serializer(
                "PinList",
                {
                    "counts": inline_serializer(
                        "PinCounts",
                        {status: serializers.IntegerField() for status in PinStatus.values},
                    ),
                    "next": serializers.URLField(allow_null=True),
                    "previous": serializers.URLField(allow_null=True),
                    "results": PinOutput(many=True),
                },
            )
        },
        tags=["storage"],
    )
    def get(self, request: Request) -> Response:
        # The page's own parameters (cursor, page_size) are core.pagination's to check.
        filters = {k: v for k, v in request.query_params.dict().items() if k not in PAGE_KEYS}
        query = self.Filter(data=filters)
        query.is_valid(raise_exception=True)
        args = query.validated_data
        pins = selectors.pin_list(status=args.get("status"), cid=args.get("cid"))
        page = paginate(request, pins, PinOutput, ordering="-id")
        page.data = {"counts": selectors.pin_status_counts(), **page.data}
        return page
