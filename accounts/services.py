from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from rest_framework.authtoken.models import Token

from core.errors import ApplicationError, Conflict, PermissionDenied

from .models import Role, SiweNonce, User
from .siwe import SiweError, verify_message

# Accounts created by a wallet sign-in get `<address lowercase>@wallet.invalid` as their email:
# the email column stays unique and required, and `.invalid` (RFC 2606) can never reach a mailbox.
WALLET_EMAIL_DOMAIN = "wallet.invalid"
# Expired nonces deleted per issued nonce: keeps the table bounded without a periodic job.
NONCE_PURGE_BATCH = 100


@transaction.atomic
def user_register(*, email: str, password: str, role: str = Role.CONTRIBUTOR) -> User:
    """Self-service sign-up. Contributors and buyers sign themselves up; requesters are granted."""
    email = email.strip().lower()
    if role not in (Role.CONTRIBUTOR, Role.BUYER):
        raise ApplicationError("role must be contributor or buyer", code="invalid_role")
    if email.endswith("@" + WALLET_EMAIL_DOMAIN):
        # Taking a wallet's placeholder email would block that wallet's first sign-in.
        raise ApplicationError("this email domain is reserved", code="email_reserved")
    try:
        # An unsaved user, so that the similarity validator compares with the email.
        validate_password(password, user=User(email=email, role=role))
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages), code="weak_password") from exc
    try:
        return User.objects.create_user(email=email, password=password, role=role)
    except IntegrityError as exc:
        raise Conflict("an account with this email exists", code="email_taken") from exc


def _token_for(user: User) -> str:
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def token_issue(*, email: str, password: str) -> str:
    user = authenticate(username=email.strip().lower(), password=password)
    if user is None or not user.is_active:
        raise ApplicationError("wrong email or password", code="invalid_credentials")
    return _token_for(user)


def user_set_role(*, user: User, role: str) -> User:
    user.role = role
    user.full_clean()
    user.save(update_fields=["role"])
    return user


# Sign-In with Ethereum (docs/auth.md).


def siwe_nonce_issue() -> SiweNonce:
    """A fresh single-use nonce (128 random bits, 32 hex characters), stored server-side."""
    now = timezone.now()
    expired = SiweNonce.objects.filter(expires_at__lt=now).values_list("id", flat=True)
    stale_ids = list(expired[:NONCE_PURGE_BATCH])
    if stale_ids:
        SiweNonce.objects.filter(id__in=stale_ids).delete()
    return SiweNonce.objects.create(
        nonce=secrets.token_hex(16),
        created_at=now,
        expires_at=now + timedelta(seconds=settings.KYODO_SIWE_NONCE_SECONDS),
    )


def siwe_nonce_consume(*, nonce: str, now: datetime | None = None) -> None:
    """Mark a nonce used, or refuse it. One conditional UPDATE: of two racing uses, one wins."""
    now = now or timezone.now()
    won = SiweNonce.objects.filter(nonce=nonce, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if won == 1:
        return
    row = SiweNonce.objects.filter(nonce=nonce).only("used_at").first()
    if row is None:
        reason = "unknown nonce: ask GET /api/auth/siwe/nonce/ for one"
    elif row.used_at is not None:
        reason = "this nonce has been used already"
    else:
        reason = "this nonce has expired: ask for a new one"
    raise SiweError(reason, code="siwe_bad_nonce")


def siwe_message_verify(*, message: str, signature: str) -> str:
    """Verify a signed sign-in message and spend its nonce; return the checksummed address.

    The nonce is spent in its own statement, before the caller acts on the address: a message that
    passed verification is never usable again, even if what follows fails.
    """
    now = timezone.now()
    parsed = verify_message(
        message,
        signature,
        domain=settings.KYODO_SIWE_DOMAIN,
        uri=settings.KYODO_SIWE_URI,
        chain_id=settings.KYODO_CHAIN_ID,
        now=now,
    )
    siwe_nonce_consume(nonce=parsed.nonce, now=now)
    return parsed.address


def _user_by_wallet(address: str) -> User | None:
    # Lower() and the non-empty condition match the partial unique index `user_wallet_unique`.
    return (
        User.objects.alias(wallet_lower=Lower("wallet_address"))
        .filter(wallet_lower=address.lower())
        .exclude(wallet_address="")
        .first()
    )


def wallet_placeholder_email(address: str) -> str:
    return f"{address.lower()}@{WALLET_EMAIL_DOMAIN}"


def wallet_user_get_or_create(*, address: str) -> User:
    """The account of this wallet; a new contributor account (no password) the first time."""
    user = _user_by_wallet(address)
    if user is not None:
        return user
    try:
        with transaction.atomic():
            return User.objects.create_user(
                email=wallet_placeholder_email(address),
                password=None,  # unusable: this account signs in with its wallet only
                role=Role.CONTRIBUTOR,
                wallet_address=address,
            )
    except IntegrityError as exc:
        user = _user_by_wallet(address)  # a concurrent first sign-in of the same wallet won
        if user is None:
            raise Conflict(
                "this wallet's placeholder email belongs to another account", code="wallet_taken"
            ) from exc
        return user


def siwe_sign_in(*, message: str, signature: str) -> tuple[User, str]:
    """Sign in (or sign up) with a wallet; return the account and its API token."""
    address = siwe_message_verify(message=message, signature=signature)
    user = wallet_user_get_or_create(address=address)
    if not user.is_active:
        raise PermissionDenied("this account is disabled", code="account_disabled")
    return user, _token_for(user)


@transaction.atomic
def wallet_link(*, user: User, address: str) -> User:
    """Give an account that has no wallet this one. Locks the user row.

    Replacing a linked wallet is refused: payouts are cumulative per wallet, so moving an account's
    history to a new wallet would pay it again. An operator does that, knowingly, in the admin.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    if user.wallet_address:
        if user.wallet_address.lower() == address.lower():
            return user
        raise Conflict(
            "this account already has a wallet; ask an operator to change it",
            code="wallet_already_linked",
        )
    owner = _user_by_wallet(address)
    if owner is not None:
        raise Conflict("this wallet belongs to another account", code="wallet_taken")
    user.wallet_address = address
    try:
        with transaction.atomic():
            user.save(update_fields=["wallet_address"])
    except IntegrityError as exc:  # linked elsewhere between the check and the save
        raise Conflict("this wallet belongs to another account", code="wallet_taken") from exc
    return user


def siwe_wallet_link(*, user: User, message: str, signature: str) -> User:
    """Prove control of a wallet with a signed sign-in message and link it to `user`."""
    address = siwe_message_verify(message=message, signature=signature)
    return wallet_link(user=user, address=address)
