"""The one API exception handler: every error a client sees is JSON of one shape.

{"error": {"code": "...", "message": "...", "fields": {...}?, ...extra}}
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import ApplicationError
from storage.ipfs import IpfsUnavailable
from storage.stores import BlobNotFound, StorageError

logger = logging.getLogger(__name__)


def _storage_error(exc: Exception) -> Response | None:
    """Storage failures as clear JSON: a missing blob is 404, a node that is down 503.

    Anything else (a block that fails verification) is never served: 502, and logged loudly.
    """
    if isinstance(exc, BlobNotFound):
        body = {"code": "blob_not_found", "message": str(exc)}
        return Response({"error": body}, status=404)
    if isinstance(exc, IpfsUnavailable):
        body = {"code": "storage_unavailable", "message": "the IPFS node is not answering"}
        return Response({"error": body}, status=503)
    if isinstance(exc, StorageError):
        logger.error("storage integrity error: %s", exc)
        body = {"code": "storage_integrity", "message": "stored data failed verification"}
        return Response({"error": body}, status=502)
    return None


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        prefix = "" if key == "non_field_errors" else f"{key}: "
        return prefix + _first_message(value)
    return str(detail)


def _first_code(codes: Any) -> str:
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return str(codes) if codes else "invalid"


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if (storage := _storage_error(exc)) is not None:
        return storage
    if isinstance(exc, ApplicationError):
        body = {"code": exc.code, "message": exc.message, **exc.extra}
        return Response({"error": body}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500
    if isinstance(exc, drf.ValidationError):
        body = {
            "code": _first_code(exc.get_codes()),
            "message": _first_message(exc.detail),
            "fields": exc.detail
            if isinstance(exc.detail, dict)
            else {"non_field_errors": exc.detail},
        }
    elif isinstance(exc, drf.APIException):
        codes = exc.get_codes()
        body = {
            "code": codes if isinstance(codes, str) else "error",
            "message": _first_message(exc.detail),
        }
    else:
        body = {"code": "error", "message": str(exc)}
    response.data = {"error": body}
    return response
