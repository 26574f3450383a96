from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.forms import UserChangeForm as BaseUserChangeForm
from django.http import HttpRequest
from eth_utils import is_address, is_checksum_address, to_checksum_address

from .models import SiweNonce, User


class UserChangeForm(BaseUserChangeForm[User]):
    class Meta(BaseUserChangeForm.Meta):
        model = User
        fields = "__all__"

    def clean_wallet_address(self) -> str:
        """Stored EIP-55 checksummed, as a wallet sign-in stores it; a bad checksum is refused."""
        value: str = self.cleaned_data["wallet_address"].strip()
        if not value:
            return ""
        digits = value[2:]
        mixed_case = digits not in (digits.lower(), digits.upper())
        # eth-utils' is_address accepts a mixed-case address with a wrong checksum: a typo.
        if not is_address(value) or (mixed_case and not is_checksum_address(value)):
            raise forms.ValidationError("Not an Ethereum address (or a wrong EIP-55 checksum).")
        return str(to_checksum_address(value))


@admin.register(User)
class UserAdmin(BaseUserAdmin[User]):
    form = UserChangeForm
    ordering = ("email",)
    list_display = ("email", "role", "is_staff", "wallet_address", "date_joined")
    list_filter = ("role", "is_staff", "is_active")
    search_fields = ("email", "wallet_address")
    fieldsets = (
        (None, {"fields": ("email", "password", "display_name")}),
        (
            "Role",
            {
                "fields": ("role", "wallet_address"),
                "description": (
                    "Payouts are cumulative per wallet: changing the wallet of an account that "
                    "has been paid lets the new wallet claim that history again (docs/auth.md)."
                ),
            },
        ),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "role")}),
    )


@admin.register(SiweNonce)
class SiweNonceAdmin(admin.ModelAdmin[SiweNonce]):
    list_display = ("nonce", "created_at", "expires_at", "used_at")
    readonly_fields = ("nonce", "created_at", "expires_at", "used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
