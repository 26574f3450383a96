"""core.pagination in the OpenAPI schema: every list endpoint documents its page shape (`next`,
`previous`, `results`) and its `cursor` and bounded `page_size` parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command

from accounts.models import User
from core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

from ..conftest import client_for

pytestmark = pytest.mark.django_db

# Every list endpoint, and the component its rows are.
LISTS = {
    "/api/campaigns/": "CampaignOutput",
    "/api/campaigns/{campaign_id}/imports/": "ImportOutput",
    "/api/imports/{import_id}/rejected/": "ImportRejectionOutput",
    "/api/datasets/": "DatasetOutput",
    "/api/rewards/epochs/": "RewardsEpochOutput",
}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


@pytest.fixture
def schema(staff: User) -> dict[str, Any]:
    response = client_for(staff).get("/api/schema/")
    assert response.status_code == 200
    loaded: dict[str, Any] = yaml.safe_load(response.content)
    return loaded


@pytest.mark.parametrize(("path", "row"), LISTS.items())
def test_each_list_documents_its_page(schema: dict[str, Any], path: str, row: str) -> None:
    get = schema["paths"][path]["get"]
    page = resolve(schema, get["responses"]["200"]["content"]["application/json"]["schema"])
    assert page["type"] == "object"
    assert set(page["properties"]) == {"next", "previous", "results"}
    assert set(page["required"]) == {"next", "previous", "results"}
    for link in ("next", "previous"):
        assert page["properties"][link]["nullable"] is True
        assert page["properties"][link]["format"] == "uri"
    results = page["properties"]["results"]
    assert results["type"] == "array"
    assert results["items"]["$ref"] == f"#/components/schemas/{row}"
    parameters = {p["name"]: p for p in get["parameters"] if p["in"] == "query"}
    assert parameters["cursor"]["schema"]["type"] == "string"
    assert parameters["page_size"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_PAGE_SIZE,
        "default": DEFAULT_PAGE_SIZE,
    }


def test_schema_generates_without_warnings(tmp_path: Path) -> None:
    """A paginated list keeps its `_list` operation id (no collision with its detail)."""
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "s.yaml"))


def test_no_other_get_answers_a_bare_list(schema: dict[str, Any]) -> None:
    """A list endpoint added without pagination would answer a JSON array: none does."""
    bare = []
    for path, operations in schema["paths"].items():
        ok = operations.get("get", {}).get("responses", {}).get("200", {})
        body = ok.get("content", {}).get("application/json", {}).get("schema", {})
        if body.get("type") == "array":
            bare.append(path)
    assert bare == []
