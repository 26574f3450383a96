"""Shared fixtures. Real services are used when configured (CI sets DATABASE_URL, REDIS_URL, ...);
a test that needs one and cannot have it is skipped, unless KYODO_REQUIRE_SERVICES=1 (CI):
then it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import Role, User
from labeling.models import Campaign
from storage.services import get_store

from .accounts.factories import UserFactory
from .chain_fixtures import *  # noqa: F403 - py-evm and anvil fixtures for every test folder
from .labeling.factories import CampaignFactory

REQUIRE_SERVICES = os.environ.get("KYODO_REQUIRE_SERVICES") == "1"


def need_service(name: str, reason: str) -> None:
    """Skip (locally) or fail (CI) a test whose real service is not available."""
    message = f"{name} not available: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (KYODO_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _celery_mode_restored() -> Iterator[None]:
    """A test that switches Celery to a real broker must not leak that into the next test."""
    from celery import _state

    from config.celery import app

    eager = app.conf.task_always_eager
    yield
    app.conf.task_always_eager = eager
    # A test that builds its own Celery app (a beat stand-in) makes it the current one; tasks
    # enqueued by name afterwards would go to it instead of running eagerly on ours.
    current = getattr(_state, "get_current_app")()  # noqa: B009 - absent from celery-types
    if current is not app:
        app.set_current()


@pytest.fixture(autouse=True)
def _fresh_store() -> Iterator[None]:
    """Each test gets an empty LocalStore of its own."""
    get_store.cache_clear()
    yield
    get_store.cache_clear()
    shutil.rmtree(settings.KYODO_STORE_DIR, ignore_errors=True)


def database_url_for_children() -> str:
    """A DATABASE_URL for a process the test starts (a Celery worker) that reaches this test's
    database: the machine's server, or the embedded one's socket (core/embedded_postgres)."""
    params = connection.get_connection_params()
    host = quote(str(params.get("host") or "127.0.0.1"), safe="")
    port = f":{params['port']}" if params.get("port") else ""
    password = f":{quote(str(params['password']), safe='')}" if params.get("password") else ""
    return f"postgresql://{params['user']}{password}@{host}{port}/{params['dbname']}"


def client_for(user: User) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def requester(db: Any) -> User:
    return UserFactory.create(role=Role.REQUESTER)


@pytest.fixture
def contributor(db: Any) -> User:
    return UserFactory.create(role=Role.CONTRIBUTOR)


@pytest.fixture
def buyer(db: Any) -> User:
    return UserFactory.create(role=Role.BUYER)


@pytest.fixture
def staff(db: Any) -> User:
    return UserFactory.create(role=Role.REQUESTER, is_staff=True, is_superuser=True)


@pytest.fixture
def campaign(requester: User) -> Campaign:
    return CampaignFactory.create(owner=requester)


def streamed(response: Any) -> bytes:
    """The whole body of a streaming response."""
    return b"".join(response.streaming_content)
