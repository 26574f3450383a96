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

Both calls check the token in the statement that does the work, one round trip fewer per call,
same rules as TokenAuthentication: next-task is one statement (the token's user, the campaign,
the worker's block and the lease), and so is the submit of a class label (the token, the lease
and the class, then the write); either writes nothing when a check fails. Other submits read the
token's user with the item and lease.

It stands in for Django's middleware and DRF's dispatch of the two views, so it is right only
while those stay what it mirrors: the `MIRRORED_*` pins at the end of this module, which
tests/labeling/test_fast_lane_mirror.py compares with the live settings and views. When that
test fails, review what it names (see "The mirror" below), then update the pin.

Off with KYODO_FAST_LANE=0.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import io
import json
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string
from rest_framework.exceptions import APIException, AuthenticationFailed
from rest_framework.exceptions import ValidationError as InputError
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.models import User
from core.errors import ApplicationError

from . import selectors, services
from .apis import ANNOTATION_OUTPUT, TASK_OUTPUT, AnnotationCreateApi
from .services import hot_sql

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Answer = tuple[str, bytes]  # status line, JSON body

_NEXT = re.compile(r"/api/campaigns/([0-9]+)/next/")
_SUBMIT = re.compile(r"/api/items/([0-9]+)/annotations/")
_NEXT_ALLOW = "GET, HEAD, OPTIONS"  # the views' Allow header
_SUBMIT_ALLOW = "POST, OPTIONS"
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
        self.headers = _security_headers()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        serve: Callable[[dict[str, Any], str, int], Answer]
        if method == "GET" and (match := _NEXT.fullmatch(path)):
            serve, allow = self._next, _NEXT_ALLOW
        elif method == "POST" and (match := _SUBMIT.fullmatch(path)):
            serve, allow = self._submit, _SUBMIT_ALLOW
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

    def _token_read(self, read: Callable[[], tuple[User, Any] | None]) -> tuple[User, Any]:
        """The token's user and the call's first read, made in one statement."""
        try:
            found = read()
        except AuthenticationFailed as exc:  # an inactive user: Django's 401
            raise _Skip("authentication failed") from exc
        if found is None:
            raise _Skip("authentication failed")
        return found

    def _next(self, environ: dict[str, Any], key: str, campaign_id: int) -> Answer:
        try:
            # One statement reads the token, the campaign and the block, and leases; when a check
            # fails it leases nothing, and Django's full path names why.
            found = services.task_lease_next_for_token(key=key, campaign_id=campaign_id)
        except CLIENT_ERRORS as exc:  # Django's to answer (see the module)
            raise _Skip("an error") from exc
        if found is None:
            raise _Skip("refused")
        _worker, assignment = found
        if assignment is None:
            return "204 No Content", b""
        payload = TASK_OUTPUT.to_representation(selectors.task_payload(assignment=assignment))
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
        if _is_class_label(fields):
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
            return "201 Created", _RENDERER.render(ANNOTATION_OUTPUT.to_representation(labelled))
        worker, target = self._token_read(
            lambda: hot_sql.token_submit_target(key=key, item_id=item_id)
        )
        if target is None:  # no such item: Django's 404 (the service would read it again)
            raise _Skip("no such item")
        try:
            annotation = services.annotation_submit(
                worker=worker, item_id=item_id, target=target, **fields
            )
        except CLIENT_ERRORS as exc:  # nothing was written (see the module)
            raise _Skip("an error") from exc
        return "201 Created", _RENDERER.render(ANNOTATION_OUTPUT.to_representation(annotation))


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


# --- The mirror ---------------------------------------------------------------------------------
# The fast lane answers in place of Django's middleware and DRF's dispatch of two views. What it
# was written against is pinned below, and tests/labeling/test_fast_lane_mirror.py compares every
# pin with the live settings and code (`mirror_drift`). When that test fails:
#   1. Read its message: what changed, and what in this module stands in for it.
#   2. Decide whether an API client's next or submit would now get another answer from Django (a
#      header, a refusal, a throttle, another parser or renderer, another check in the service).
#   3. If it would, make the fast lane give that answer too, or hand such calls to Django (a
#      `_Skip` in `FastLane._admitted`), with a case in tests/labeling/test_fast_lane.py that
#      compares both answers.
#   4. Then update the pin to the value the message prints.
# A new rule of the two calls belongs in the services or serializers both paths share
# (docs/architecture.md, "Next task and leases"); only the code pinned in MIRRORED_CODE repeats
# their rules elsewhere.

# Django's middleware, in order (the order of the headers the fast lane copies is theirs).
MIRRORED_MIDDLEWARE = (
    # `_security_headers` adds its headers; an HTTPS redirect or HSTS goes to Django (`_admitted`).
    "django.middleware.security.SecurityMiddleware",
    # Serves static files only, never /api/.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # A token call never reads the session: no cookie, no `Vary: Cookie`.
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Its host check is `_admitted`'s; PREPEND_WWW and DISALLOWED_USER_AGENTS: MIRRORED_SETTINGS.
    # APPEND_SLASH cannot apply: both paths end in a slash.
    "django.middleware.common.CommonMiddleware",
    # DRF's views are exempt, and a token call sets no CSRF cookie.
    "django.middleware.csrf.CsrfViewMiddleware",
    # `request.user` is lazy and never read: DRF authenticates the token itself.
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The API sends no messages.
    "django.contrib.messages.middleware.MessageMiddleware",
    # `_security_headers` adds X-Frame-Options.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# Settings of those middlewares that the fast lane does not act on, at the values it assumes.
# (Those it reads itself: SECURE_*, X_FRAME_OPTIONS, ALLOWED_HOSTS, USE_X_FORWARDED_HOST, DEBUG.)
MIRRORED_SETTINGS: dict[str, object] = {
    "PREPEND_WWW": False,  # CommonMiddleware would redirect to www.
    "DISALLOWED_USER_AGENTS": [],  # CommonMiddleware would refuse by User-Agent
}
# DRF's policy of both views (their own attributes, else REST_FRAMEWORK's defaults), as dotted
# paths; what in the fast lane stands in for each is _POLICY_REVIEW's.
MIRRORED_API_POLICY: dict[str, tuple[str, ...]] = {
    "authentication_classes": (
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ),
    "permission_classes": ("rest_framework.permissions.IsAuthenticated",),
    "throttle_classes": (),
    "parser_classes": (
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ),
    "renderer_classes": (
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ),
    "content_negotiation_class": ("rest_framework.negotiation.DefaultContentNegotiation",),
    "versioning_class": (),
}
_POLICY_REVIEW = {
    "authentication_classes": "FastLane._admitted (it takes `Token <key>` only, tried first) and "
    "the statements that check the token (TOKEN_USER_FROM, user_from_row)",
    "permission_classes": "what the fast lane lets a token's active user do: it checks no "
    "permission beyond IsAuthenticated (a live token of an active user)",
    "throttle_classes": "FastLane: it counts nothing, so a throttled view must have its calls "
    "throttled there too or handed to Django",
    "parser_classes": "_read_body and FastLane._submit (a JSON body only, parsed as JSONParser "
    "does, NaN and Infinity refused)",
    "renderer_classes": "_ACCEPTS_JSON and _RENDERER (the first renderer answers Accept '', */* "
    "and application/json)",
    "content_negotiation_class": "_ACCEPTS_JSON (which Accept headers get JSONRenderer's answer)",
    "versioning_class": "FastLane (it reads no version from the URL, headers or query)",
}
_POLICY_DEFAULTS = {
    "authentication_classes": "DEFAULT_AUTHENTICATION_CLASSES",
    "permission_classes": "DEFAULT_PERMISSION_CLASSES",
    "throttle_classes": "DEFAULT_THROTTLE_CLASSES",
    "parser_classes": "DEFAULT_PARSER_CLASSES",
    "renderer_classes": "DEFAULT_RENDERER_CLASSES",
    "content_negotiation_class": "DEFAULT_CONTENT_NEGOTIATION_CLASS",
    "versioning_class": "DEFAULT_VERSIONING_CLASS",
}
# The two views: a path the fast lane serves for each, its pattern here and the Allow it sends.
MIRRORED_VIEWS: dict[str, tuple[str, re.Pattern[str], str]] = {
    "labeling.apis.NextTaskApi": ("/api/campaigns/1/next/", _NEXT, _NEXT_ALLOW),
    "labeling.apis.AnnotationCreateApi": ("/api/items/1/annotations/", _SUBMIT, _SUBMIT_ALLOW),
}
# Code whose rules the fast lane repeats (`code_fingerprint`: comments, formatting, docstrings,
# schema decorators and the views' nested serializers, which the fast lane uses itself, do not
# count), and what repeats them. A new Python may dump its syntax trees differently: then every
# fingerprint changes at once, with nothing to review.
MIRRORED_CODE: dict[str, tuple[str, str]] = {
    "labeling.apis.NextTaskApi": (
        "9d43c9f5debdd96a",
        "FastLane._next (same payload, 200 or 204) and services.task_lease_next_for_token",
    ),
    "labeling.apis.AnnotationCreateApi": (
        "de56c808117abda6",
        "FastLane._submit (same input serializer and service, 201) and _is_class_label",
    ),
    "labeling.services.leases.task_lease_next_in": (
        "bda457558b51a20f",
        "services.task_lease_next_for_token and hot_sql.token_lease_next, which check in one "
        "statement what this checks (token, campaign, block, lease)",
    ),
    "labeling.services.annotations.annotation_submit": (
        "a031f7e64f0fabb1",
        "services.annotation_submit_label_for_token and hot_sql.token_submit_label (a class "
        "label's checks in one statement), and FastLane._submit's call of this",
    ),
    "accounts.authentication.TokenAuthentication": (
        "cb1bd5fc9948716a",
        "the fast lane's statements, which read the token's user in SQL (TOKEN_USER_FROM, "
        "user_from_row) instead of calling this class",
    ),
}
_SCHEMA_ONLY = {"extend_schema", "extend_schema_serializer", "extend_schema_field"}
_WHERE = "(labeling/fast_lane.py, 'The mirror')"


def mirror_drift() -> list[str]:
    """What changed since the fast lane's pins, one message per change; empty when nothing did."""
    return [
        *middleware_drift(),
        *settings_drift(),
        *api_policy_drift(),
        *route_drift(),
        *code_drift(MIRRORED_CODE),
    ]


def middleware_drift() -> list[str]:
    live = tuple(settings.MIDDLEWARE)
    if live == MIRRORED_MIDDLEWARE:
        return []
    added = [m for m in live if m not in MIRRORED_MIDDLEWARE]
    removed = [m for m in MIRRORED_MIDDLEWARE if m not in live]
    change = f"added {added}, removed {removed}" if added or removed else "reordered"
    return [
        f"MIDDLEWARE changed ({change}): the fast lane runs none of it. Review FastLane._admitted "
        f"and _security_headers: would an API client's next or submit get another answer from "
        f"Django now? Then set MIRRORED_MIDDLEWARE = {live!r} {_WHERE}."
    ]


def settings_drift() -> list[str]:
    problems = [
        f"settings.{name} is {getattr(settings, name)!r}, the fast lane assumes {assumed!r} (see "
        f"the comment at MIRRORED_SETTINGS): make FastLane._admitted hand such calls to Django, "
        f"then set MIRRORED_SETTINGS[{name!r}] {_WHERE}."
        for name, assumed in MIRRORED_SETTINGS.items()
        if getattr(settings, name) != assumed
    ]
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and limit < _MAX_BODY:
        problems.append(
            f"settings.DATA_UPLOAD_MAX_MEMORY_SIZE ({limit}) is below the fast lane's _MAX_BODY "
            f"({_MAX_BODY}): Django would refuse bodies the fast lane serves; lower _MAX_BODY."
        )
    return problems


def api_policy_drift(views: Mapping[str, type[APIView]] | None = None) -> list[str]:
    """The views' DRF policy against MIRRORED_API_POLICY (default: the two mirrored views)."""
    if views is None:
        views = {path: import_string(path) for path in MIRRORED_VIEWS}
    problems = []
    for path, view in views.items():
        for attribute, pinned in MIRRORED_API_POLICY.items():
            live = view_policy(view, attribute)
            if live != pinned:
                problems.append(
                    f"{path}.{attribute} is {live!r}, the fast lane mirrors {pinned!r}. Review "
                    f"{_POLICY_REVIEW[attribute]}. Then set MIRRORED_API_POLICY[{attribute!r}] "
                    f"= {live!r} {_WHERE}."
                )
    return problems


def view_policy(view: type[APIView], attribute: str) -> tuple[str, ...]:
    """A view's policy attribute as dotted paths: its own (or a base's below APIView), else DRF's
    setting now (APIView's class attribute keeps the setting of import time)."""
    for cls in view.__mro__:
        if cls is APIView:
            value = getattr(api_settings, _POLICY_DEFAULTS[attribute])
            break
        if attribute in vars(cls):
            value = vars(cls)[attribute]
            break
    items = value if isinstance(value, list | tuple) else [] if value is None else [value]
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in items)


def route_drift() -> list[str]:
    """Each path the fast lane serves resolves to the view it mirrors, with the same Allow."""
    problems = []
    for path, (sample, pattern, allow) in MIRRORED_VIEWS.items():
        if not pattern.fullmatch(sample):
            problems.append(f"MIRRORED_VIEWS[{path!r}]: {sample} does not match {pattern.pattern}")
        try:
            view = resolve(sample).func.view_class  # type: ignore[attr-defined]
        except (Resolver404, AttributeError):
            view = None
        if view is None or f"{view.__module__}.{view.__qualname__}" != path:
            problems.append(
                f"{sample} no longer resolves to {path} (it resolves to {view}): review the URL "
                f"patterns _NEXT and _SUBMIT, which the fast lane serves, and MIRRORED_VIEWS "
                f"{_WHERE}."
            )
            continue
        instance = view()
        instance.setup(HttpRequest())  # Django's View adds `head` here
        live = ", ".join(instance._allowed_methods())
        if live != allow:
            problems.append(
                f"{path} allows {live}, the fast lane's Allow header says {allow}: review the "
                f"methods the fast lane serves (FastLane.__call__) and _NEXT_ALLOW/_SUBMIT_ALLOW."
            )
    return problems


def code_drift(pins: Mapping[str, tuple[str, str]]) -> list[str]:
    problems = []
    for path, (pinned, review) in pins.items():
        live = code_fingerprint(inspect.getsource(import_string(path)))
        if live != pinned:
            problems.append(
                f"{path} changed (fingerprint {live}, pinned {pinned}). Review {review}: do they "
                f"still answer as it does? Then set MIRRORED_CODE[{path!r}] to {live!r} {_WHERE}."
            )
    return problems


def code_fingerprint(source: str) -> str:
    """A hash of a class's or function's code as Python reads it: comments, formatting,
    docstrings, drf-spectacular's schema decorators and a class's nested classes do not count."""
    tree = ast.parse(textwrap.dedent(source))
    top = tree.body[0]
    if isinstance(top, ast.ClassDef):
        top.body = [node for node in top.body if not isinstance(node, ast.ClassDef)]
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.decorator_list = [d for d in node.decorator_list if _name(d) not in _SCHEMA_ONLY]
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                node.body = body[1:]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def _name(decorator: ast.expr) -> str:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Attribute):
        return target.attr
    return target.id if isinstance(target, ast.Name) else ""
