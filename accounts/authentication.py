"""API token authentication: DRF's `Authorization: Token <key>`, read in one plain statement.

Every API call authenticates, so the token and its user are read with one hand-written query
instead of an ORM query compiled per request (a tenth of the CPU; see bench/README.md, "Next
task"). Same rules and messages as DRF's: unknown key or inactive user are 401.
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
# The token's user, as SQL other hot-path statements can join to (names from the models, the key a
# parameter): `SELECT {USER_COLUMNS}, … {TOKEN_USER_FROM} … WHERE t.key = %s`, the user's columns
# first; `user_from_row` makes the user of them.
USER_COLUMNS = ", ".join(f'u."{field.column}"' for field in User._meta.concrete_fields)
TOKEN_USER_FROM = (
    f'FROM "{Token._meta.db_table}" t JOIN "{User._meta.db_table}" u ON u.id = t.user_id'
)
_USER_SQL = f"SELECT {USER_COLUMNS} {TOKEN_USER_FROM} WHERE t.key = %s"


def user_from_row(row: tuple[Any, ...] | list[Any]) -> User:
    """The token's user from a row that starts with USER_COLUMNS; 401 if inactive (DRF's rule)."""
    user = User.from_db(connection.alias, _USER_FIELDS, list(row[: len(_USER_FIELDS)]))
    if not user.is_active:
        raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
    return user


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        with prepared_cursor() as cursor:
            cursor.execute(_USER_SQL, [key])
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        user = user_from_row(row)
        # Token's fields in model order: key, user, created (deferred).
        return user, Token.from_db(connection.alias, ["key", "user_id"], [key, user.pk])
