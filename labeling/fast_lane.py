"""Next-task and submit for API clients, served in front of Django's request stack.

Why: every label is one next and one submit, and in the web process the framework around them
(request and response objects, seven middlewares, URL resolving, DRF's dispatch, negotiation and
parsing) cost more CPU than the work itself (bench/README.md, "Next task"). This WSGI layer
serves exactly those two calls, through the same services and serializers as the API views:

    GET  /api/campaigns/{id}/next/          -> 200 task | 204
    POST /api/items/{id}/annotations/       -> 201 annotation

and only when they succeed, for a client with `Authorization: Token <key>` that accepts JSON and
sends a JSON body. Everything else goes to Django unchanged: other calls, the browser (session
and CSRF), and every error a client can act on (a service's ApplicationError, a bad token or
body). Such an error is raised before anything commits (a lease is one transaction, rolled back
on error; a submit's one write statement writes nothing when it refuses; next-task's reclaim of
expired leases is fine to repeat), so Django runs the
call again and answers with its usual error. Any other exception is not retried (it may come after
the commit, from an on-commit hook): it propagates, a 500 as Django would give. The answers are the
API views' answers, byte for byte and header for header (tests/labeling/test_fast_lane.py).

On PostgreSQL both calls check the token in the statement that does the work, one round trip
fewer per call, same rules: next-task is one statement (the token's user, the campaign, the
worker's block and the lease), and so is the submit of a class label (the token, the lease and
the class, then the write); either writes nothing when a check fails. Other submits read the
token's user with the item and lease.

Off with KYODO_FAST_LANE=0.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404
from django.http.request import split_domain_port, validate_host
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.exceptions import ValidationError as InputError
from rest_framework.renderers import JSONRenderer

from accounts.authentication import TokenAuthentication
from accounts.models import User
from core.errors import ApplicationError

from . import selectors, services
from .apis import _ANNOTATION_OUTPUT, _TASK_OUTPUT, AnnotationCreateApi
from .services import hot_sql

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Answer = tuple[str, bytes]  # status line, JSON body

_NEXT = re.compile(r"/api/campaigns/([0-9]+)/next/")
_SUBMIT = re.compile(r"/api/items/([0-9]+)/annotations/")
_ACCEPTS_JSON = {"", "*/*", "application/json"}
_JSON_TYPES = {"application/json", "application/json; charset=utf-8"}
_MAX_BODY = 64 * 1024  # a label is a few hundred bytes; larger bodies take the long way
_RENDERER = JSONRenderer()
# The view's input serializer, built once: `run_validation` keeps no state on the instance, and
# building one per call (DRF deep-copies its fields) was a few per cent of a submit.
_ANNOTATION_INPUT = AnnotationCreateApi.Input()
# What the services raise for a call they refuse, always before anything commits.
CLIENT_ERRORS = (ApplicationError, APIException, Http404, DjangoPermissionDenied, ValidationError)


class _Skip(Exception):
    """Not a call for the fast lane: Django serves it."""


def _strict_constant(name: str) -> Any:
    raise _Skip(f"non-standard JSON constant {name}")  # DRF's parser rejects NaN and Infinity


class FastLane:
    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.auth = TokenAuthentication()
        self.headers = _security_headers()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        serve: Callable[[dict[str, Any], str, int], Answer]
        if method == "GET" and (match := _NEXT.fullmatch(path)):
            serve, allow = self._next, "GET, HEAD, OPTIONS"
        elif method == "POST" and (match := _SUBMIT.fullmatch(path)):
            serve, allow = self._submit, "POST, OPTIONS"
        else:
            return self.app(environ, start_response)
        try:
            key = self._admitted(environ)
        except _Skip:
            return self.app(environ, start_response)
        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            answer = serve(environ, key, int(match.group(1)))
        except _Skip:
            answer = None
        finally:
            signals.request_finished.send(sender=self.__class__)
        if answer is None:
            return self.app(environ, start_response)
        status, body = answer
        frame, security = self.headers
        headers = [("Content-Type", "application/json")] if body else []  # none on a 204
        headers += [("Vary", "Accept"), ("Allow", allow)]
        headers += [*frame, ("Content-Length", str(len(body))), *security]
        start_response(status, headers)
        return [body]

    def _admitted(self, environ: dict[str, Any]) -> str:
        """The token key of a request the fast lane may serve (else _Skip)."""
        parts = environ.get("HTTP_AUTHORIZATION", "").split()
        if len(parts) != 2 or parts[0].lower() != "token":
            raise _Skip("not token authentication")
        if environ.get("HTTP_ACCEPT", "") not in _ACCEPTS_JSON:
            raise _Skip("content negotiation")
        secure = _is_secure(environ)
        if (settings.SECURE_SSL_REDIRECT and not secure) or (
            settings.SECURE_HSTS_SECONDS and secure
        ):
            raise _Skip("an HTTPS redirect or HSTS header: SecurityMiddleware's to add")
        if settings.USE_X_FORWARDED_HOST:
            raise _Skip("the host comes from a proxy header")
        host, _port = split_domain_port(environ.get("HTTP_HOST", ""))
        if not host or not validate_host(host, _allowed_hosts()):
            raise _Skip("host not allowed")
        return parts[1]

    def _user(self, key: str) -> User:
        try:
            user, _token = self.auth.authenticate_credentials(key)
        except Exception as exc:
            raise _Skip("authentication failed") from exc
        if not isinstance(user, User):
            raise _Skip("not a user")
        return user

    def _token_read(self, read: Callable[[], tuple[User, Any] | None]) -> tuple[User, Any]:
        """The token's user and the call's first read, made in one statement (PostgreSQL)."""
        try:
            found = read()
        except AuthenticationFailed as exc:  # an inactive user: Django's 401
            raise _Skip("authentication failed") from exc
        if found is None:
            raise _Skip("authentication failed")
        return found

    def _next(self, environ: dict[str, Any], key: str, campaign_id: int) -> Answer:
        try:
            if connection.vendor == "postgresql":
                # One statement reads the token, the campaign and the block, and leases; when a
                # check fails it leases nothing, and Django's full path names why.
                found = services.task_lease_next_for_token(key=key, campaign_id=campaign_id)
                if found is None:
                    raise _Skip("refused")
                _worker, assignment = found
            else:
                worker = self._user(key)
                assignment = services.task_lease_next_in(campaign_id=campaign_id, worker=worker)
        except CLIENT_ERRORS as exc:  # Django's to answer (see the module)
            raise _Skip("an error") from exc
        if assignment is None:
            return "204 No Content", b""
        payload = _TASK_OUTPUT.to_representation(selectors.task_payload(assignment=assignment))
        return "200 OK", _RENDERER.render(payload)

    def _submit(self, environ: dict[str, Any], key: str, item_id: int) -> Answer:
        body = _read_body(environ)
        try:
            data = json.loads(body, parse_constant=_strict_constant)
        except ValueError as exc:
            raise _Skip("not JSON") from exc
        try:
            fields = _ANNOTATION_INPUT.run_validation(data)
        except InputError as exc:
            raise _Skip("invalid input") from exc
        if connection.vendor == "postgresql" and _is_class_label(fields):
            # One statement checks the token, the lease and the class and writes; when it wrote
            # nothing, Django's full path names why (the check is repeated there).
            labelled = services.annotation_submit_label_for_token(
                key=key,
                item_id=item_id,
                label=fields["label"],
                duration_ms=fields.get("duration_ms"),
            )
            if labelled is None:
                raise _Skip("refused")
            return "201 Created", _RENDERER.render(_ANNOTATION_OUTPUT.to_representation(labelled))
        target = None
        if connection.vendor == "postgresql":
            worker, target = self._token_read(
                lambda: hot_sql.token_submit_target(key=key, item_id=item_id)
            )
            if target is None:  # no such item: Django's 404 (the service would read it again)
                raise _Skip("no such item")
        else:
            worker = self._user(key)
        try:
            annotation = services.annotation_submit(
                worker=worker, item_id=item_id, target=target, **fields
            )
        except CLIENT_ERRORS as exc:  # nothing was written (see the module)
            raise _Skip("an error") from exc
        return "201 Created", _RENDERER.render(_ANNOTATION_OUTPUT.to_representation(annotation))


def _is_class_label(fields: dict[str, Any]) -> bool:
    """A submission of only a class name (and a duration): what one statement can check."""
    return isinstance(fields.get("label"), str) and set(fields) <= {"label", "duration_ms"}


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back for Django in case it ends up serving the call."""
    if environ.get("CONTENT_TYPE", "").lower() not in _JSON_TYPES:
        raise _Skip("not a JSON body")
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError as exc:
        raise _Skip("no Content-Length") from exc
    if not 0 < length <= _MAX_BODY:
        raise _Skip("body size")
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _is_secure(environ: dict[str, Any]) -> bool:
    """HttpRequest.is_secure, from the WSGI environ."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        header, secure_value = proxy
        value = environ.get(header)
        if value is not None:
            return str(value).split(",", 1)[0].strip() == secure_value
    return bool(environ.get("wsgi.url_scheme") == "https")


def _allowed_hosts() -> list[str]:
    """HttpRequest.get_host's list: with DEBUG and no ALLOWED_HOSTS, the local names."""
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return allowed


Headers = list[tuple[str, str]]


def _security_headers() -> tuple[Headers, Headers]:
    """The headers XFrameOptionsMiddleware, and those SecurityMiddleware, add to these answers
    (in the order Django sends them: the first before Content-Length, the rest after)."""
    frame: Headers = []
    headers: Headers = []
    middleware = settings.MIDDLEWARE
    if "django.middleware.clickjacking.XFrameOptionsMiddleware" in middleware:
        frame.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY").upper()))
    if "django.middleware.security.SecurityMiddleware" in middleware:
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            headers.append(("X-Content-Type-Options", "nosniff"))
        policy = settings.SECURE_REFERRER_POLICY
        if policy:
            values = [policy] if isinstance(policy, str) else list(policy)
            headers.append(("Referrer-Policy", ",".join(v.strip() for v in values)))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            headers.append(
                ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
            )
    return frame, headers


def wrap(app: WsgiApp) -> WsgiApp:
    """The project's WSGI application, with the fast lane in front unless KYODO_FAST_LANE=0."""
    return FastLane(app) if settings.KYODO_FAST_LANE else app
