from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import StrictSerializer

from .models import Role, User
from .selectors import request_user
from .services import token_issue, user_register


class UserOutput(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "role", "is_staff", "wallet_address")


class RegisterApi(APIView):
    permission_classes = (AllowAny,)

    class Input(StrictSerializer):
        email = serializers.EmailField()
        password = serializers.CharField(max_length=128)
        role = serializers.ChoiceField(
            choices=[Role.CONTRIBUTOR, Role.BUYER], default=Role.CONTRIBUTOR
        )

    @extend_schema(request=Input, responses={201: UserOutput}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response(UserOutput(user).data, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    permission_classes = (AllowAny,)

    class Input(StrictSerializer):
        email = serializers.EmailField()
        password = serializers.CharField(max_length=128)

    class Output(serializers.Serializer[dict[str, str]]):
        token = serializers.CharField()

    @extend_schema(request=Input, responses={200: Output}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response({"token": token_issue(**data.validated_data)})


class MeApi(APIView):
    @extend_schema(responses={200: UserOutput}, tags=["auth"])
    def get(self, request: Request) -> Response:
        return Response(UserOutput(request_user(request)).data)
