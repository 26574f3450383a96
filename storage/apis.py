from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import StrictSerializer
from storage.cid import InvalidCid, cid_decode
from storage.models import Pin, PinStatus

from . import selectors

PAGE_MAX = 500


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
    """Pin status for operators: counts per status and the most recently changed pins."""

    permission_classes = (IsAdminUser,)

    class Filter(StrictSerializer):
        status = serializers.ChoiceField(choices=PinStatus.choices, required=False)
        cid = serializers.CharField(required=False, max_length=100)
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=PAGE_MAX, default=100
        )

        def validate_cid(self, value: str) -> str:
            try:
                cid_decode(value)
            except InvalidCid as exc:
                raise serializers.ValidationError(str(exc)) from None
            return value

    @extend_schema(
        parameters=[Filter],
        responses={
            200: inline_serializer(
                "PinList",
                {
                    "counts": inline_serializer(
                        "PinCounts",
                        {status: serializers.IntegerField() for status in PinStatus.values},
                    ),
                    "results": PinOutput(many=True),
                },
            )
        },
        tags=["storage"],
    )
    def get(self, request: Request) -> Response:
        query = self.Filter(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        args = query.validated_data
        pins = selectors.pin_list(status=args.get("status"), cid=args.get("cid"))[: args["limit"]]
        return Response(
            {
                "counts": selectors.pin_status_counts(),
                "results": PinOutput(pins, many=True).data,
            }
        )
