"""Django's own error answers (no view matched, a request Django refused before any view) in the
API's one JSON error shape for paths under /api/ and /ipfs/ (issue 15); pages keep HTML."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults

JSON_PREFIXES = ("/api/", "/ipfs/")


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PREFIXES)


def api_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The catch-all under /api/ and /ipfs/: an unmatched path, or an id that is not a number.

    A path that only lacks its trailing slash is redirected as CommonMiddleware's APPEND_SLASH
    did before this catch-all matched it (GET and HEAD; other methods are told the right path).
    """
    slashed = None if request.path.endswith("/") else _resolves(request.path + "/")
    if slashed and request.method in ("GET", "HEAD"):
        return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    hint = f" (did you mean {request.path}/?)" if slashed else ""
    return api_error("not_found", f"no such endpoint: {request.path}{hint}", 404)


def _resolves(path: str) -> bool:
    """Whether a real view (not this catch-all) answers `path`."""
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.func is not api_not_found


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE, refused before any view ran."""
    if is_api(request):
        message = str(exception) if exception is not None else "bad request"
        return api_error("bad_request", message, 400)
    return defaults.bad_request(request, exception)  # type: ignore[arg-type]


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a plain Django view raising Http404 under the JSON prefixes."""
    if is_api(request):
        return api_not_found(request)
    return defaults.page_not_found(request, exception)
