from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ("email",)
    list_display = ("email", "role", "is_staff", "wallet_address", "date_joined")
    list_filter = ("role", "is_staff", "is_active")
    search_fields = ("email", "wallet_address")
    fieldsets = (
        (None, {"fields": ("email", "password", "display_name")}),
        ("Role", {"fields": ("role", "wallet_address")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "role")}),
    )
