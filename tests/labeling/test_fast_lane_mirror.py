"""The fast lane (labeling/fast_lane.py) mirrors Django's middleware and DRF's dispatch of the two
views it stands in for. Its pins of what it mirrors match the live settings and code; and each
check reports a changed configuration, naming what to review.

When a test here fails on the real configuration, its message names what changed and what in
labeling/fast_lane.py stands in for it: review that ("The mirror" in that module), then update
the pin.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import fast_lane
from labeling.apis import AnnotationCreateApi, NextTaskApi
from labeling.fast_lane import (
    MIRRORED_CODE,
    api_policy_drift,
    code_drift,
    code_fingerprint,
    middleware_drift,
    route_drift,
    settings_drift,
    view_policy,
)

SEE = "\n\n".join  # one message per change, each naming what to review


def test_middleware_is_what_the_fast_lane_mirrors() -> None:
    assert not (drift := middleware_drift()), SEE(drift)


def test_settings_are_what_the_fast_lane_assumes() -> None:
    assert not (drift := settings_drift()), SEE(drift)


def test_the_views_drf_policy_is_what_the_fast_lane_mirrors() -> None:
    assert not (drift := api_policy_drift()), SEE(drift)


def test_the_fast_lane_s_paths_resolve_to_the_views_it_mirrors() -> None:
    assert not (drift := route_drift()), SEE(drift)


def test_the_code_the_fast_lane_repeats_is_unchanged() -> None:
    assert not (drift := code_drift(MIRRORED_CODE)), SEE(drift)


# The checks on a changed configuration.


def test_a_new_middleware_is_drift(settings: Any) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    (message,) = middleware_drift()
    assert "added ['django.middleware.gzip.GZipMiddleware'], removed []" in message
    assert "FastLane._admitted and _security_headers" in message
    assert "MIRRORED_MIDDLEWARE = (" in message


def test_reordered_middleware_is_drift(settings: Any) -> None:
    settings.MIDDLEWARE = list(reversed(settings.MIDDLEWARE))
    (message,) = middleware_drift()
    assert "reordered" in message


def test_a_setting_the_fast_lane_does_not_act_on_is_drift(settings: Any) -> None:
    settings.PREPEND_WWW = True
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    first, second = settings_drift()
    assert first.startswith("settings.PREPEND_WWW is True, the fast lane assumes False")
    assert "FastLane._admitted" in first
    assert "DATA_UPLOAD_MAX_MEMORY_SIZE (1024) is below the fast lane's _MAX_BODY" in second


def test_a_default_throttle_is_drift_for_both_views(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"user": "100/minute"},
    }
    drift = api_policy_drift()
    assert [m.split(" is ")[0] for m in drift] == [
        "labeling.apis.NextTaskApi.throttle_classes",
        "labeling.apis.AnnotationCreateApi.throttle_classes",
    ]
    assert "('rest_framework.throttling.UserRateThrottle',)" in drift[0]
    assert "it counts nothing" in drift[0]
    assert "MIRRORED_API_POLICY['throttle_classes']" in drift[0]


def test_changed_default_authentication_is_drift(settings: Any) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.SessionAuthentication",
            "accounts.authentication.TokenAuthentication",
        ],  # the session first: a token call with a cookie would be the session's
    }
    drift = api_policy_drift()
    assert len(drift) == 2
    assert all(".authentication_classes is " in m and "FastLane._admitted" in m for m in drift)


class _OpenNext(NextTaskApi):
    permission_classes = (AllowAny,)


def test_a_view_s_own_policy_is_drift() -> None:
    (message,) = api_policy_drift({"labeling.apis.NextTaskApi": _OpenNext})
    assert message.startswith(
        "labeling.apis.NextTaskApi.permission_classes is "
        "('rest_framework.permissions.AllowAny',), the fast lane mirrors "
        "('rest_framework.permissions.IsAuthenticated',)"
    )


def test_a_view_s_own_attribute_wins_over_the_setting(settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_PERMISSION_CLASSES": []}
    assert view_policy(NextTaskApi, "permission_classes") == ()
    assert view_policy(_OpenNext, "permission_classes") == ("rest_framework.permissions.AllowAny",)
    assert view_policy(NextTaskApi, "versioning_class") == ()


class _OtherNext(APIView):
    def get(self, request: Request, campaign_id: int) -> Response:
        return Response(status=204)


class _MovedUrls:
    """A URLconf where next-task is another view and submit moved away."""

    urlpatterns = [
        path("api/campaigns/<int:campaign_id>/next/", _OtherNext.as_view()),
        path("api/v2/items/<int:item_id>/annotations/", AnnotationCreateApi.as_view()),
    ]


def test_a_moved_or_replaced_view_is_drift(settings: Any) -> None:
    settings.ROOT_URLCONF = _MovedUrls
    next_drift, submit_drift = route_drift()
    assert next_drift.startswith(
        "/api/campaigns/1/next/ no longer resolves to labeling.apis.NextTaskApi (it resolves to "
    )
    assert "_OtherNext" in next_drift
    assert submit_drift.startswith(
        "/api/items/1/annotations/ no longer resolves to labeling.apis.AnnotationCreateApi "
        "(it resolves to None)"
    )
    assert "_NEXT and _SUBMIT" in submit_drift


def test_another_allow_header_is_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    sample, pattern, _allow = fast_lane.MIRRORED_VIEWS["labeling.apis.NextTaskApi"]
    monkeypatch.setitem(
        fast_lane.MIRRORED_VIEWS, "labeling.apis.NextTaskApi", (sample, pattern, "GET")
    )
    (message,) = route_drift()
    assert message.startswith(
        "labeling.apis.NextTaskApi allows GET, HEAD, OPTIONS, the fast lane's Allow header says GET"
    )


def test_changed_code_is_drift() -> None:
    path, (live, review) = next(iter(MIRRORED_CODE.items()))
    (message,) = code_drift({path: ("0" * 16, review)})
    assert message.startswith(f"{path} changed (fingerprint {live}, pinned {'0' * 16}). Review ")
    assert review in message
    assert f"MIRRORED_CODE[{path!r}] to {live!r}" in message


_VIEW = '''
class Api(APIView):
    """The docstring."""

    class Input(Serializer):
        label = CharField()

    @extend_schema(responses={201: Output}, tags=["labeling"])
    def post(self, request: Request, item_id: int) -> Response:
        data = self.Input(data=request.data)  # a comment
        return Response(service(item_id=item_id, **data), status=201)
'''


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        ("a comment", "# a comment", "# another comment"),
        ("the docstring", '"""The docstring."""', '"""Another docstring."""'),
        ("the schema", 'tags=["labeling"]', 'tags=["labels"]'),
        ("the nested serializer", "label = CharField()", "label = JSONField()"),
        (
            "the layout",
            "service(item_id=item_id, **data)",
            "service(\n  item_id=item_id, **data\n)",
        ),
    ],
)
def test_what_cannot_change_an_answer_keeps_the_fingerprint(
    change: str, before: str, after: str
) -> None:
    assert before in _VIEW
    assert code_fingerprint(_VIEW.replace(before, after)) == code_fingerprint(_VIEW), change


@pytest.mark.parametrize(
    ("change", "before", "after"),
    [
        ("the service", "service(item_id", "other_service(item_id"),
        ("the status", "status=201", "status=200"),
        ("a base", "class Api(APIView)", "class Api(ThrottledView)"),
        (
            "a decorator",
            "    @extend_schema(",
            "    @method_decorator(cache_page(60))\n    @extend_schema(",
        ),
        ("a policy", '    """The docstring."""', "    throttle_classes = (UserRateThrottle,)"),
        (
            "a method",
            "    @extend_schema(",
            "    def initial(self, *a: Any) -> None: ...\n\n    @extend_schema(",
        ),
    ],
)
def test_what_can_change_an_answer_changes_the_fingerprint(
    change: str, before: str, after: str
) -> None:
    assert before in _VIEW
    assert code_fingerprint(_VIEW.replace(before, after)) != code_fingerprint(_VIEW), change
