from __future__ import annotations

from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from .models import User


def request_user(request: Request | HttpRequest) -> User:
    """The signed-in user of a request; views behind IsAuthenticated never see an anonymous one."""
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated()
    return user
