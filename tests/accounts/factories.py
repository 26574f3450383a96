"""Factories for the accounts app: users (with or without a wallet), API tokens, SIWE nonces."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone
from eth_utils import to_checksum_address
from rest_framework.authtoken.models import Token

from accounts.models import Role, SiweNonce, User

PASSWORD = "pw-for-tests-123"


def eth_address(n: int) -> str:
    """A distinct, valid (EIP-55) address per n; nobody holds its key."""
    return to_checksum_address(f"0x{n + 1:040x}")


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    class Params:
        # A linked wallet; accounts may have none (the default), but never share one.
        with_wallet = factory.Trait(wallet_address=factory.Sequence(eth_address))

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    role = Role.CONTRIBUTOR
    password = factory.django.Password(PASSWORD)


class TokenFactory(factory.django.DjangoModelFactory[Token]):
    """An API token (its key is generated on save)."""

    class Meta:
        model = Token

    user = factory.SubFactory(UserFactory)


class SiweNonceFactory(factory.django.DjangoModelFactory[SiweNonce]):
    class Meta:
        model = SiweNonce

    nonce = factory.Sequence(lambda n: f"nonce{n:012d}")
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=5))
