"""GET /ipfs/{cid}: stored blobs, verified on read, for those allowed to see them."""

from __future__ import annotations

import re

from django.http import HttpResponse, HttpResponseBase, JsonResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.selectors import request_user
from core.errors import ApplicationError, NotFound
from storage.cid import is_cid
from storage.services import get_store

from . import selectors

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single byte range; None for no or an unsupported header."""
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    else:  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size
    if start >= size or start >= end:
        raise ApplicationError("range not satisfiable", code="range_not_satisfiable")
    return start, end


class MediaApi(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("filename", str, description="name for Content-Disposition")],
        responses={
            (200, "application/octet-stream"): bytes,
            (206, "application/octet-stream"): bytes,
        },
        tags=["storage"],
    )
    def get(self, request: Request, cid: str) -> HttpResponseBase:
        if not is_cid(cid):
            raise NotFound("not a CID", code="invalid_cid")
        item = selectors.blob_visible_to(user=request_user(request), cid=cid)
        if item is None:
            raise NotFound("no such blob, or not yours to see", code="blob_not_found")
        if request.headers.get("If-None-Match", "").strip('"') == cid:
            not_modified = HttpResponse(status=304)
            not_modified["ETag"] = f'"{cid}"'
            return not_modified
        store = get_store()
        size = store.size(cid)
        try:
            byte_range = _parse_range(request.headers.get("Range", ""), size)
        except ApplicationError:
            error = {"code": "range_not_satisfiable", "message": f"the blob has {size} bytes"}
            unsatisfiable = JsonResponse({"error": error}, status=416)
            unsatisfiable["Content-Range"] = f"bytes */{size}"
            return unsatisfiable
        start, end = byte_range or (0, size)
        response = StreamingHttpResponse(
            store.open(cid, start=start, end=end),
            status=206 if byte_range else 200,
            content_type=item.media_type or "application/octet-stream",
        )
        response["Content-Length"] = str(end - start)
        if byte_range:
            response["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        response["Accept-Ranges"] = "bytes"
        response["ETag"] = f'"{cid}"'
        # Immutable (the bytes are the CID's), but private: every blob here is served only to
        # who may see it, so no shared cache may keep it for others (issue 15).
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        response["X-Content-Type-Options"] = "nosniff"
        filename = request.query_params.get("filename")
        if filename:
            response["Content-Disposition"] = (
                f'inline; filename="{_SAFE_NAME.sub("_", filename)[:100]}"'
            )
        return response
