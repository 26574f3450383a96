from __future__ import annotations

from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction
from rest_framework.authtoken.models import Token

from core.errors import ApplicationError, Conflict

from .models import Role, User


@transaction.atomic
def user_register(*, email: str, password: str, role: str = Role.CONTRIBUTOR) -> User:
    """Self-service sign-up. Contributors and buyers sign themselves up; requesters are granted."""
    email = email.strip().lower()
    if role not in (Role.CONTRIBUTOR, Role.BUYER):
        raise ApplicationError("role must be contributor or buyer", code="invalid_role")
    from django.core.exceptions import ValidationError

    try:
        validate_password(password)
    except ValidationError as exc:
        raise ApplicationError(" ".join(exc.messages), code="weak_password") from exc
    try:
        return User.objects.create_user(email=email, password=password, role=role)
    except IntegrityError as exc:
        raise Conflict("an account with this email exists", code="email_taken") from exc


def token_issue(*, email: str, password: str) -> str:
    user = authenticate(username=email.strip().lower(), password=password)
    if user is None or not user.is_active:
        raise ApplicationError("wrong email or password", code="invalid_credentials")
    token, _ = Token.objects.get_or_create(user=user)
    return token.key


def user_set_role(*, user: User, role: str) -> User:
    user.role = role
    user.full_clean()
    user.save(update_fields=["role"])
    return user
