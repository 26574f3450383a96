from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Role, User

pytestmark = pytest.mark.django_db


def test_register_then_token_then_me() -> None:
    client = APIClient()
    response = client.post(
        "/api/auth/register/",
        {"email": "Ann@Example.com", "password": "a-long-passphrase"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["role"] == Role.CONTRIBUTOR
    token = client.post(
        "/api/auth/token/",
        {"email": "ann@example.com", "password": "a-long-passphrase"},
        format="json",
    )
    assert token.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    assert client.get("/api/auth/me/").json()["email"] == "ann@example.com"


def test_register_twice_is_a_conflict() -> None:
    client = APIClient()
    body = {"email": "bob@example.com", "password": "a-long-passphrase"}
    assert client.post("/api/auth/register/", body, format="json").status_code == 201
    again = client.post("/api/auth/register/", body, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "a-long-passphrase"}, "email"),
        ({"email": "c@example.com"}, "password"),
        ({"email": "c@example.com", "password": "a-long-passphrase", "is_staff": True}, "is_staff"),
        ({"email": "c@example.com", "password": "a-long-passphrase", "role": "requester"}, "role"),
        ({"email": 5, "password": ["x"]}, "email"),
    ],
)
def test_register_rejects_bad_input(body: dict[str, object], field: str) -> None:
    response = APIClient().post("/api/auth/register/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["fields"]
    assert error["message"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "password",
    [
        "123",
        "12345678901",  # all digits (issue 15: an 8-digit number was accepted)
        "d.smith@example.com",  # the email itself
        "kyodo-9x",  # under 10 characters
    ],
)
def test_register_rejects_weak_password(password: str) -> None:
    response = APIClient().post(
        "/api/auth/register/",
        {"email": "d.smith@example.com", "password": password},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "weak_password"


def test_malformed_json_is_a_400_naming_the_problem() -> None:
    response = APIClient().post(
        "/api/auth/register/", data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "JSON" in response.json()["error"]["message"]


def test_json_array_body_is_rejected() -> None:
    response = APIClient().post(
        "/api/auth/register/", data="[1, 2]", content_type="application/json"
    )
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_wrong_password_gets_no_token(contributor: User) -> None:
    response = APIClient().post(
        "/api/auth/token/",
        {"email": contributor.email, "password": "nope-nope-nope"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_api_requires_authentication() -> None:
    response = APIClient().get("/api/campaigns/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"


def test_buyer_can_register_as_buyer() -> None:
    response = APIClient().post(
        "/api/auth/register/",
        {"email": "e@example.com", "password": "a-long-passphrase", "role": "buyer"},
        format="json",
    )
    assert response.status_code == 201
    assert User.objects.get(email="e@example.com").role == Role.BUYER


def test_createsuperuser_noinput(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.management import call_command

    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "root-pass-123")
    call_command("createsuperuser", "--noinput", verbosity=0)
    user = User.objects.get(email="root@example.com")
    assert user.is_staff
    assert user.is_superuser
    assert user.check_password("root-pass-123")
