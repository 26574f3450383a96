from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.serializers import StrictSerializer

from .models import Role, User
from .selectors import request_user
from .services import siwe_nonce_issue, siwe_sign_in, siwe_wallet_link, token_issue, user_register
from .siwe import DEFAULT_STATEMENT, MAX_MESSAGE_CHARS


class UserOutput(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ("id", "email", "role", "is_staff", "wallet_address")


class RegisterApi(APIView):
    permission_classes = (AllowAny,)

    # Named: two nested `Input` classes would share one OpenAPI component.
    @extend_schema_serializer(component_name="Register")
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

    @extend_schema_serializer(component_name="TokenCredentials")
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


class SiweInput(StrictSerializer):
    # Never trimmed: the signature covers the exact text.
    message = serializers.CharField(max_length=MAX_MESSAGE_CHARS, trim_whitespace=False)
    signature = serializers.CharField(max_length=200, trim_whitespace=False)


# Module-level, uniquely named: nested classes called `Output` collide in the OpenAPI schema.
class SiweNonceOutput(serializers.Serializer[dict[str, Any]]):
    nonce = serializers.CharField()
    expires_at = serializers.DateTimeField()
    domain = serializers.CharField()
    uri = serializers.CharField()
    chain_id = serializers.IntegerField()
    statement = serializers.CharField()


class SiweSignInOutput(serializers.Serializer[dict[str, Any]]):
    token = serializers.CharField()
    user = UserOutput()


class SiweNonceApi(APIView):
    """A single-use nonce and the values the message to sign must carry (docs/auth.md)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema(request=None, responses={200: SiweNonceOutput}, tags=["auth"])
    def get(self, request: Request) -> Response:
        nonce = siwe_nonce_issue()
        body = {
            "nonce": nonce.nonce,
            "expires_at": nonce.expires_at,
            "domain": settings.KYODO_SIWE_DOMAIN,
            "uri": settings.KYODO_SIWE_URI,
            "chain_id": settings.KYODO_CHAIN_ID,
            "statement": DEFAULT_STATEMENT,
        }
        return Response(SiweNonceOutput(body).data, headers={"Cache-Control": "no-store"})


class SiweVerifyApi(APIView):
    """Sign in with a wallet: an API token, and a session cookie for the browser."""

    permission_classes = (AllowAny,)
    # No authentication: the signed message is the credential. JSON only: a cross-site form cannot
    # send it without a CORS preflight, so no other site can log a browser into its own account.
    authentication_classes = ()
    parser_classes = (JSONParser,)

    @extend_schema(request=SiweInput, responses={200: SiweSignInOutput}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = SiweInput(data=request.data)
        data.is_valid(raise_exception=True)
        user, token = siwe_sign_in(**data.validated_data)
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response(SiweSignInOutput({"token": token, "user": user}).data)


class SiweLinkApi(APIView):
    """Link a wallet to the signed-in account (one wallet per account, one account per wallet)."""

    parser_classes = (JSONParser,)

    @extend_schema(request=SiweInput, responses={200: UserOutput}, tags=["auth"])
    def post(self, request: Request) -> Response:
        data = SiweInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = siwe_wallet_link(user=request_user(request), **data.validated_data)
        return Response(UserOutput(user).data)
