"""One paginator for every list endpoint: `{"next", "previous", "results"}`, a bounded page.

Cursor pagination, not page numbers. Every list here is ordered by a unique key that only grows
(an id, an epoch number), newest first, and grows while people read it (campaigns, imports,
epochs). A cursor says "after this key", so a row created while a client follows `next` never
shifts the rest by one: no duplicates, none missed. A page is an index range scan wherever it is,
where an OFFSET reads every row before it. No list needs a total (counters are columns: a
campaign's progress, an import's `rejected_count`), so a page-number paginator's COUNT(*) would be
paid for nothing.

Query parameters: `cursor` (opaque, taken from a `next`/`previous` link) and `page_size`
(1..MAX_PAGE_SIZE, default DEFAULT_PAGE_SIZE). A bad value of either is a 400 in the one error
shape, never a silent fallback or clamp: lists were once silently cut at 200/500 rows.

Views: `return paginate(request, queryset, Output)` and `@list_schema(Output, tags=[...])`.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Callable, Sequence
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Field, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

INVALID_CURSOR = "invalid cursor: use the `next` or `previous` link of a page as it is"


class PageQuery(serializers.Serializer[Any]):
    cursor = serializers.CharField(required=False, max_length=200)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE
    )


def _invalid_cursor() -> serializers.ValidationError:
    return serializers.ValidationError({"cursor": [INVALID_CURSOR]}, code="invalid_cursor")


class KeyCursorPagination(CursorPagination):
    """DRF's cursor paginator with a page size checked up front and a bad cursor as a 400.

    DRF falls back to its default page size on a bad `page_size`, and answers a bad cursor 404
    (or 500, for a position its column cannot hold: the cursor is only base64).
    """

    template = None  # no browsable-API page controls

    def __init__(self, *, ordering: str, page_size: int, key: Field[Any, Any] | None) -> None:
        self.ordering = ordering
        self.page_size = page_size
        self._size = page_size
        # The column `ordering` names (None: positions in a list, checked by their reader).
        self._key = key

    def get_page_size(self, request: Request) -> int:
        return self._size

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        try:
            if encoded is not None:
                # DRF's decode skips what is not base64: "!!!" would read as the first page.
                b64decode(encoded.encode("ascii"), validate=True)
            cursor = super().decode_cursor(request)
        except (binascii.Error, UnicodeEncodeError, exceptions.NotFound):
            raise _invalid_cursor() from None
        if cursor is not None and cursor.position is not None and self._key is not None:
            # The position is the key of a row: anything its column cannot hold (a word, an
            # integer past bigint) would fail in the query instead.
            try:
                self._key.run_validators(self._key.to_python(str(cursor.position)))
            except DjangoValidationError:
                raise _invalid_cursor() from None
        return cursor


# The query parameters a page takes; any others are the view's own.
PAGE_KEYS = ("cursor", "page_size")


def page_query(request: Request) -> dict[str, Any]:
    """The validated `cursor` and `page_size` (other query parameters are the view's own)."""
    params = request.query_params
    query = PageQuery(data={k: params[k] for k in PAGE_KEYS if k in params})
    query.is_valid(raise_exception=True)
    return query.validated_data


def paginate(
    request: Request,
    queryset: QuerySet[Any],
    output: type[serializers.BaseSerializer[Any]],
    *,
    ordering: str,
) -> Response:
    """One page of `queryset` as `{"next", "previous", "results"}`, ordered by `ordering`: a
    unique column that only grows (`-id`), never one a row can change or share."""
    key = queryset.model._meta.get_field(ordering.lstrip("-"))
    paginator = KeyCursorPagination(
        ordering=ordering,
        page_size=page_query(request)["page_size"],
        key=key,
    )
    page = paginator.paginate_queryset(queryset, request) or []
    return paginator.get_paginated_response(output(page, many=True).data)


def paginate_sequence(
    request: Request,
    fetch: Callable[[int, int], Sequence[Any]],
    output: type[serializers.BaseSerializer[Any]],
) -> Response:
    """One page of a list that only grows at its end (a JSON array column), by position.

    `fetch(start, stop)` returns the entries at positions start..stop-1 (fewer at the end):
    one more than a page is asked for, to know whether there is a `next`. Positions never move
    (entries are only appended), so the cursors are as stable as the key cursors above.
    """
    size = page_query(request)["page_size"]
    paginator = KeyCursorPagination(ordering="position", page_size=size, key=None)
    paginator.base_url = request.build_absolute_uri()
    cursor = paginator.decode_cursor(request)
    start = 0
    if cursor is not None and cursor.position is not None:
        # DRF's stubs type a position as int; DRF decodes it as the text in the cursor.
        position = str(cursor.position)
        if not position.isdigit() or len(position) > 12:
            raise _invalid_cursor()
        start = int(position)
    rows = list(fetch(start, start + size + 1))

    def link(position: int) -> str:
        return paginator.encode_cursor(Cursor(offset=0, reverse=False, position=position))

    return Response(
        {
            "next": link(start + size) if len(rows) > size else None,
            "previous": link(max(0, start - size)) if start > 0 else None,
            "results": output(rows[:size], many=True).data,
        }
    )


PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor",
        str,
        description="the page after (or before) another: take it from a `next` or `previous` link",
    ),
    OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
        description=f"rows per page, 1 to {MAX_PAGE_SIZE} (a larger value is a 400)",
    ),
]


_PAGES: dict[type[serializers.BaseSerializer[Any]], serializers.Serializer[Any]] = {}


def paginated(output: type[serializers.BaseSerializer[Any]]) -> serializers.Serializer[Any]:
    """The OpenAPI shape of a page of `output`: one component per output, `<Name>Page` (made
    once, so every view listing the same rows shares one component)."""
    if output not in _PAGES:
        _PAGES[output] = _page_of(output)
    return _PAGES[output]


def _page_of(output: type[serializers.BaseSerializer[Any]]) -> serializers.Serializer[Any]:
    name = output.__name__.removesuffix("Serializer")
    return inline_serializer(
        f"{name}Page",
        {
            "next": serializers.URLField(
                allow_null=True, help_text="the next page, or null on the last"
            ),
            "previous": serializers.URLField(
                allow_null=True, help_text="the page before, or null on the first"
            ),
            "results": output(many=True),
        },
    )


def list_schema(
    output: type[serializers.BaseSerializer[Any]], *, operation_id: str, **kwargs: Any
) -> Callable[..., Any]:
    """`extend_schema` for a paginated list: its query parameters and its page shape.

    `operation_id` is the list's own (`api_<path>_list`): a page is one object, so drf-spectacular
    would name the list `..._retrieve`, as it does the detail beside it.
    """
    parameters = [*PAGE_PARAMETERS, *kwargs.pop("parameters", [])]
    return extend_schema(
        operation_id=operation_id,
        parameters=parameters,
        responses={200: paginated(output)},
        **kwargs,
    )
