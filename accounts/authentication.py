"""API token authentication: DRF's `Authorization: Token <key>`, read in one plain statement.

Every API call authenticates, so on PostgreSQL the token and its user are read with one
hand-written query instead of an ORM query compiled per request (a tenth of the CPU; see
bench/README.md, "Next task"). Same rules and messages as DRF's: unknown key or inactive user
are 401. Elsewhere (SQLite, whose raw values need the fields' converters) DRF's own lookup runs.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from core.sql import prepared_cursor

from .models import User

_USER_FIELDS = [field.attname for field in User._meta.concrete_fields]
# Names from the model, the key a parameter.
_USER_SQL = (
    "SELECT "  # noqa: S608
    + ", ".join(f'u."{field.column}"' for field in User._meta.concrete_fields)
    + f' FROM "{User._meta.db_table}" u JOIN "{Token._meta.db_table}" t ON t.user_id = u.id'
    + " WHERE t.key = %s"
)


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        if connection.vendor != "postgresql":
            return super().authenticate_credentials(key)
        with prepared_cursor() as cursor:
            cursor.execute(_USER_SQL, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = User.from_db(connection.alias, _USER_FIELDS, row)
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        # Token's fields in model order: key, user, created (deferred).
        return user, Token.from_db(connection.alias, ["key", "user_id"], [key, user.pk])
