"""Issue 15, item 8: every answer under /api/ and /ipfs/ is JSON in the one error shape, also
where no view runs (an unmatched path, an id that is not a number, a body Django refuses);
pages keep their HTML."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import User

from ..conftest import client_for

pytestmark = pytest.mark.django_db


def error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body: dict[str, Any] = response.json()["error"]
    assert set(body) >= {"code", "message"}
    return body


@pytest.mark.parametrize(
    "path",
    [
        "/api/no-such-thing/",
        "/api/campaigns/abc/",  # an id that is not a number
        "/api/campaigns/1/nope",
        "/ipfs/bafkrei/extra/parts",
    ],
)
def test_unmatched_paths_are_json_404(contributor: User, path: str) -> None:
    response = client_for(contributor).get(path)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_a_missing_trailing_slash_still_redirects(contributor: User) -> None:
    client = client_for(contributor)
    response = client.get("/api/rewards/me?x=1")
    assert response.status_code == 301
    assert response["Location"] == "/api/rewards/me/?x=1"
    posted = client.post("/api/campaigns", {}, format="json")
    assert posted.status_code == 404
    assert "did you mean /api/campaigns/?" in error_of(posted)["message"]


def test_a_body_over_the_limit_is_a_json_400(requester: User, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client_for(requester).post("/api/campaigns/", {"title": "x" * 5000}, format="json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


def test_pages_keep_their_html_404(client: Any) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
