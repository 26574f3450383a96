from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone


class Role(models.TextChoices):
    CONTRIBUTOR = "contributor", "Contributor"
    REQUESTER = "requester", "Requester"
    BUYER = "buyer", "Buyer"


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True, role=Role.REQUESTER)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person: signs in by email (or, later, a wallet). Staff can do everything."""

    email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=80, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CONTRIBUTOR)
    wallet_address = models.CharField(max_length=42, blank=True, db_index=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            # One account per wallet, whatever the letter case it was typed in; many accounts may
            # have none. Payouts are per wallet, so two accounts sharing one would share rewards.
            models.UniqueConstraint(
                Lower("wallet_address"),
                condition=~Q(wallet_address=""),
                name="user_wallet_unique",
                violation_error_message="This wallet is linked to another account.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_requester(self) -> bool:
        return self.is_staff or self.role == Role.REQUESTER

    @property
    def is_buyer(self) -> bool:
        return self.is_staff or self.role == Role.BUYER


class SiweNonce(models.Model):
    """A server-issued nonce for one Sign-In with Ethereum message: single use, short-lived.

    `used_at` is set by one conditional UPDATE (`WHERE used_at IS NULL AND expires_at > now`), so
    of two requests racing with the same signed message only one can win. Expired rows are purged
    in small batches whenever a new nonce is issued.
    """

    nonce = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "SIWE nonce"

    def __str__(self) -> str:
        return self.nonce
