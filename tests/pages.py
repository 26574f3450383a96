"""Reading a paginated list the way a client does: follow `next` until it is null."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient


def follow_pages(client: APIClient, url: str) -> list[list[dict[str, Any]]]:
    """Every page of the list at `url`, in order (each page's rows)."""
    pages: list[list[dict[str, Any]]] = []
    next_url: str | None = url
    while next_url is not None:
        response = client.get(next_url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"next", "previous", "results"}, body
        first_page = not pages and "cursor=" not in url
        assert (body["previous"] is None) == first_page, body["previous"]
        pages.append(body["results"])
        next_url = body["next"]
        assert len(pages) < 1000, "a `next` link that never ends"
    return pages


def assert_bad_page_queries(client: APIClient, url: str) -> None:
    """A page size out of bounds or not a number, or a cursor not from a link: a 400 saying so."""
    for size, code in [("0", "min_value"), ("201", "max_value"), ("ten", "invalid")]:
        response = client.get(url, {"page_size": size})
        assert response.status_code == 400, (size, response.content)
        error = response.json()["error"]
        assert (error["code"], list(error["fields"])) == (code, ["page_size"]), error
        assert error["message"].startswith("page_size: ")
    # Not base64; base64 of a position its column cannot hold (a word, past bigint); too long.
    for cursor in ["!!!", "cD1hYmM=", "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "A" * 201]:
        response = client.get(url, {"cursor": cursor})
        assert response.status_code == 400, (cursor, response.content)
        error = response.json()["error"]
        assert error["code"] in ("invalid_cursor", "max_length"), error
        assert list(error["fields"]) == ["cursor"], error
