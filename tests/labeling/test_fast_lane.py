"""The fast lane (labeling/fast_lane.py) answers next and submit as the API views do, and hands
every other call, and every failure, to Django.

Calls go through WSGI, as gunicorn makes them: `FastLane` in front of Django's own handler, with a
spy on the handler to see which of the two answered. The database is committed for real
(transaction=True): the fast lane runs Django's request signals, which close a connection that is
inside a test's transaction.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from accounts.models import User
from labeling.apis import AnnotationCreateApi
from labeling.fast_lane import FastLane, wrap
from labeling.models import Annotation, Assignment, Campaign, Item
from labeling.services import worker_block

from ..accounts.factories import TokenFactory, UserFactory
from .factories import AssignmentFactory, CampaignFactory
from .test_next_and_submit import add_images

pytestmark = pytest.mark.django_db(transaction=True)

Answer = tuple[int, dict[str, str], bytes]


class Spy:
    """Django's WSGI handler, counting the calls it serves."""

    def __init__(self) -> None:
        self.app = get_wsgi_application()
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)


def call(
    app: Any,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    extra: dict[str, str] | None = None,
) -> Answer:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body or b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if accept:
        environ["HTTP_ACCEPT"] = accept
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    if body is not None:
        environ["CONTENT_TYPE"] = content_type
        environ["CONTENT_LENGTH"] = str(len(body))
    environ.update(extra or {})
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = int(status.split()[0]), headers

    chunks = app(environ, start_response)
    data = b"".join(chunks)
    close = getattr(chunks, "close", None)
    if close is not None:
        close()
    return seen["status"], dict(seen["headers"]), data


@pytest.fixture
def setup() -> tuple[Campaign, User, str, list[Item]]:
    campaign = CampaignFactory.create()
    items = add_images(campaign, 3)
    worker = UserFactory.create()
    return campaign, worker, Token.objects.create(user=worker).key, items


def _label(label: str) -> bytes:
    return json.dumps({"label": label}).encode()


def test_next_and_submit_are_served_by_the_fast_lane_as_django_would(
    setup: tuple[Campaign, User, str, list[Item]],
) -> None:
    campaign, worker, token, _items = setup
    spy = Spy()
    lane = FastLane(spy)
    path = f"/api/campaigns/{campaign.pk}/next/"

    fast = call(lane, "GET", path, token=token)
    assert fast[0] == 200
    assert spy.calls == 0
    # The same question to Django now returns the same live lease: the same bytes and headers.
    slow = call(spy.app, "GET", path, token=token)
    assert slow == fast
    item_id = json.loads(fast[2])["item_id"]
    assert Assignment.objects.filter(worker=worker).count() == 1

    submitted = call(lane, "POST", f"/api/items/{item_id}/annotations/", token=token,
                     body=_label("dog"))  # fmt: skip
    assert submitted[0] == 201
    assert spy.calls == 0
    annotation = Annotation.objects.get(worker=worker, item_id=item_id)
    body = json.loads(submitted[2])
    assert body == {
        "id": annotation.pk,
        "item_id": item_id,
        "label": "dog",
        "value": {"label": "dog"},
        "created_at": body["created_at"],
    }
    assert body == AnnotationCreateApi.Output(annotation).data  # the stored row, as Django says
    assert annotation.label == "dog"
    assert Item.objects.get(pk=item_id).label_count == 1

    # A submit Django serves has the same headers (a second worker's, on another lease).
    other = TokenFactory.create().key
    other_item = json.loads(call(spy.app, "GET", path, token=other)[2])["item_id"]
    django_201 = call(spy.app, "POST", f"/api/items/{other_item}/annotations/", token=other,
                      body=_label("cat"))  # fmt: skip
    assert django_201[0] == 201
    assert list(django_201[1]) == list(submitted[1])
    strip = {"Content-Length"}
    assert {k: v for k, v in django_201[1].items() if k not in strip} == {
        k: v for k, v in submitted[1].items() if k not in strip
    }
    assert set(json.loads(django_201[2])) == set(body)


def test_every_input_field_reaches_the_service(
    setup: tuple[Campaign, User, str, list[Item]],
) -> None:
    campaign, worker, token, _items = setup
    spy = Spy()
    lane = FastLane(spy)
    item_id = json.loads(call(lane, "GET", f"/api/campaigns/{campaign.pk}/next/", token=token)[2])[
        "item_id"
    ]
    body = json.dumps({"label": "bird", "duration_ms": 1234}).encode()
    answer = call(lane, "POST", f"/api/items/{item_id}/annotations/", token=token, body=body,
                  content_type="application/json; charset=utf-8")  # fmt: skip
    assert answer[0] == 201
    assert spy.calls == 0
    stored = Annotation.objects.get(worker=worker, item_id=item_id)
    assert (stored.label, stored.duration_ms) == ("bird", 1234)


def test_nothing_left_is_a_204_from_the_fast_lane(
    setup: tuple[Campaign, User, str, list[Item]],
) -> None:
    campaign, _worker, token, items = setup
    Item.objects.filter(pk__in=[i.pk for i in items]).update(status="complete")
    spy = Spy()
    answer = call(FastLane(spy), "GET", f"/api/campaigns/{campaign.pk}/next/", token=token)
    assert answer[0] == 204
    assert answer[2] == b""
    assert spy.calls == 0
    assert answer == call(spy.app, "GET", f"/api/campaigns/{campaign.pk}/next/", token=token)


def test_next_reclaims_an_expired_lease_when_nothing_else_is_free() -> None:
    """The one-statement next found nothing free: as Django's path, it returns expired leases'
    slots to the pool and asks once more."""
    campaign = CampaignFactory.create(min_labels=1, max_labels=1)
    (item,) = add_images(campaign, 1)
    first, second = UserFactory.create(), UserFactory.create()
    AssignmentFactory.create(
        item=item, worker=first, leased_until=timezone.now() - timedelta(seconds=1)
    )
    Item.objects.filter(pk=item.pk).update(slots_taken=1)
    spy = Spy()
    key = Token.objects.create(user=second).key
    answer = call(FastLane(spy), "GET", f"/api/campaigns/{campaign.pk}/next/", token=key)
    assert (answer[0], spy.calls) == (200, 0)
    assert json.loads(answer[2])["item_id"] == item.pk
    assert Assignment.objects.get(worker=first).status == "expired"
    assert Assignment.objects.get(worker=second).status == "leased"
    assert Item.objects.get(pk=item.pk).slots_taken == 1


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("bad token", 401),
        ("inactive user", 401),
        ("unknown class", 400),
        ("NUL in the class", 400),
        ("lone surrogate in the class", 400),
        ("unknown field", 400),
        ("malformed JSON", 400),
        ("NaN", 400),
        ("not JSON", 415),
        ("not leased", 409),
        ("no such item", 404),
        ("second label", 409),
        ("html accepted", 201),
        ("session, no token", 401),
        ("host not allowed", 400),
    ],
)
def test_everything_else_is_django_s_answer(
    setup: tuple[Campaign, User, str, list[Item]], case: str, status: int
) -> None:
    campaign, worker, token, items = setup
    spy = Spy()
    lane = FastLane(spy)
    leased = json.loads(call(spy.app, "GET", f"/api/campaigns/{campaign.pk}/next/", token=token)[2])
    item_id = leased["item_id"]
    not_leased = next(i.pk for i in items if i.pk != item_id)
    path = f"/api/items/{item_id}/annotations/"
    kwargs: dict[str, Any] = {"token": token, "body": _label("cat")}
    if case == "bad token":
        kwargs["token"] = "0" * 40
    elif case == "inactive user":
        User.objects.filter(pk=worker.pk).update(is_active=False)
    elif case == "unknown class":
        kwargs["body"] = _label("horse")
    elif case == "NUL in the class":  # PostgreSQL's jsonb has no \u0000: never a class name
        kwargs["body"] = _label("cat\u0000")
    elif case == "lone surrogate in the class":  # valid JSON, but no UTF-8 for PostgreSQL
        kwargs["body"] = b'{"label": "cat\\ud800"}'
    elif case == "unknown field":
        kwargs["body"] = b'{"label": "cat", "colour": "red"}'
    elif case == "malformed JSON":
        kwargs["body"] = b'{"label": '
    elif case == "NaN":
        kwargs["body"] = b'{"label": "cat", "duration_ms": NaN}'
    elif case == "not JSON":
        kwargs["content_type"] = "text/plain"
    elif case == "not leased":
        path = f"/api/items/{not_leased}/annotations/"
    elif case == "no such item":
        path = "/api/items/999999999/annotations/"
    elif case == "second label":
        assert call(spy.app, "POST", path, **kwargs)[0] == 201
        spy.calls = 0
    elif case == "html accepted":
        kwargs["accept"] = "text/html"
    elif case == "session, no token":
        kwargs["token"] = None
    elif case == "host not allowed":
        kwargs["extra"] = {"HTTP_HOST": "evil.example"}
    before = Annotation.objects.count()
    answer = call(lane, "POST", path, **kwargs)
    assert spy.calls == 1, "Django answered"
    assert answer[0] == status, answer
    if status >= 400:
        assert Annotation.objects.count() == before  # nothing half-written
        # What Django says to the same call, asked directly (the failed call changed nothing).
        assert answer == call(spy.app, "POST", path, **kwargs)


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("bad token", 401, None),
        ("inactive user", 401, None),
        ("no such campaign", 404, "campaign_not_found"),
        ("paused", 403, "campaign_forbidden"),
        ("paused, owner", 409, "campaign_not_active"),
        ("blocked", 403, "worker_suspended"),
        ("budget used up", 409, "budget_exhausted"),
    ],
)
def test_a_refused_next_is_django_s_answer(
    setup: tuple[Campaign, User, str, list[Item]], case: str, status: int, code: str | None
) -> None:
    """The one-statement next leases nothing when a check fails, and Django names the error."""
    campaign, worker, token, _items = setup
    path = f"/api/campaigns/{campaign.pk}/next/"
    if case == "bad token":
        token = "0" * 40
    elif case == "inactive user":
        User.objects.filter(pk=worker.pk).update(is_active=False)
    elif case == "no such campaign":
        path = f"/api/campaigns/{campaign.pk + 999}/next/"
    elif case == "paused":
        Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    elif case == "paused, owner":
        Campaign.objects.filter(pk=campaign.pk).update(status="paused", owner=worker)
    elif case == "blocked":
        worker_block(campaign_id=campaign.pk, worker_id=worker.pk, reason="spam")
    elif case == "budget used up":
        Campaign.objects.filter(pk=campaign.pk).update(
            budget=10, reward_per_label=10, labels_reserved=1
        )
    spy = Spy()
    answer = call(FastLane(spy), "GET", path, token=token)
    assert spy.calls == 1, "Django answered"
    assert answer[0] == status, answer
    if code is not None:
        assert json.loads(answer[2])["error"]["code"] == code
    assert not Assignment.objects.exists()
    assert sum(Item.objects.values_list("slots_taken", flat=True)) == 0
    assert answer == call(spy.app, "GET", path, token=token)


def test_a_failure_after_the_commit_is_not_run_again(
    setup: tuple[Campaign, User, str, list[Item]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An on-commit hook that fails comes after the label committed: running the call again would
    answer 409 "already labeled" for a label that was stored. It propagates. (A broker error of
    the quality update's publish is logged instead: tests/quality/test_sweep.py.)"""
    campaign, worker, token, _items = setup
    spy = Spy()
    lane = FastLane(spy)
    item_id = json.loads(call(lane, "GET", f"/api/campaigns/{campaign.pk}/next/", token=token)[2])[
        "item_id"
    ]

    def failing_hook(task_name: str, *args: Any) -> None:
        transaction.on_commit(lambda: (_ for _ in ()).throw(ConnectionError("hook failed")))

    monkeypatch.setattr(
        "labeling.services.annotations.enqueue_batched_on_commit_or_log", failing_hook
    )
    with pytest.raises(ConnectionError):
        call(lane, "POST", f"/api/items/{item_id}/annotations/", token=token, body=_label("cat"))
    assert spy.calls == 0
    assert Annotation.objects.filter(worker=worker, item_id=item_id).exists()


def test_security_headers_follow_the_settings(
    setup: tuple[Campaign, User, str, list[Item]],
) -> None:
    campaign, _worker, token, _items = setup
    path = f"/api/campaigns/{campaign.pk}/next/"
    with override_settings(
        SECURE_CONTENT_TYPE_NOSNIFF=False,
        SECURE_REFERRER_POLICY=["origin", "strict-origin"],
        X_FRAME_OPTIONS="sameorigin",
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ):
        spy = Spy()
        fast = call(FastLane(spy), "GET", path, token=token,
                    extra={"HTTP_X_FORWARDED_PROTO": "https"})  # fmt: skip
        slow = call(spy.app, "GET", path, token=token, extra={"HTTP_X_FORWARDED_PROTO": "https"})
        assert spy.calls == 0  # served by the fast lane, with Django's headers
        assert fast == slow
        assert "X-Content-Type-Options" not in fast[1]
        assert fast[1]["X-Frame-Options"] == "SAMEORIGIN"
        with override_settings(SECURE_HSTS_SECONDS=3600):
            spy = Spy()
            hsts = call(FastLane(spy), "GET", path, token=token,
                        extra={"HTTP_X_FORWARDED_PROTO": "https"})  # fmt: skip
            assert spy.calls == 1, "HSTS is SecurityMiddleware's to add"
            assert hsts[1]["Strict-Transport-Security"].startswith("max-age=3600")


def test_switched_off_by_the_setting() -> None:
    app = get_wsgi_application()
    with override_settings(KYODO_FAST_LANE=False):
        assert wrap(app) is app
    with override_settings(KYODO_FAST_LANE=True):
        assert isinstance(wrap(app), FastLane)


def test_the_project_application_has_the_fast_lane() -> None:
    from config.wsgi import application

    assert isinstance(application, FastLane)
