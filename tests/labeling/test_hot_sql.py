"""The hand-written hot path (labeling/services/hot_sql.py, accounts/authentication.py) loads the
same objects the ORM would: every field it reads equals the ORM's value, and the fields it does
not read load on access. The behaviour of next-task and submit is covered by the rest of
tests/labeling, which takes this path (the only one)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import TokenAuthentication
from accounts.models import User
from core.errors import ApplicationError
from labeling.models import (
    Annotation,
    Assignment,
    Campaign,
    CampaignLabelTally,
    Item,
    WorkerBlock,
)
from labeling.schema import normalize_schema, validate_value
from labeling.selectors import campaign_label_count
from labeling.services import hot_sql

from ..accounts.factories import TokenFactory, UserFactory
from .factories import AssignmentFactory, CampaignFactory, ItemFactory

pytestmark = pytest.mark.django_db


def _same_fields(loaded: object, fresh: object, names: list[str]) -> None:
    for name in names:
        assert getattr(loaded, name) == getattr(fresh, name), name


def test_campaign_for_lease_matches_the_orm_and_reports_blocks() -> None:
    campaign = CampaignFactory.create(budget=10**18, gold_ratio=0.25)
    worker = UserFactory.create()
    found = hot_sql.campaign_for_lease(campaign_id=campaign.pk, worker_id=worker.pk)
    assert found is not None
    loaded, reason = found
    assert reason is None
    fresh = Campaign.objects.get(pk=campaign.pk)
    _same_fields(loaded, fresh, [f.attname for f in Campaign._meta.concrete_fields])
    assert isinstance(loaded.budget, int)
    assert isinstance(loaded.reward_per_label, int)

    WorkerBlock.objects.create(campaign=campaign, worker=worker, reason="")
    found = hot_sql.campaign_for_lease(campaign_id=campaign.pk, worker_id=worker.pk)
    assert found is not None
    assert found[1] == ""
    assert hot_sql.campaign_for_lease(campaign_id=campaign.pk + 999, worker_id=worker.pk) is None


def _lease(campaign: Campaign, worker: User, now: datetime) -> tuple[Assignment, bool] | None:
    return hot_sql.lease_next(
        lock_class=1,
        campaign=campaign,
        worker=worker,
        gold_first=False,
        affordable=None,
        now=now,
        until=now + timedelta(minutes=5),
    )


def test_lease_and_submit_load_what_the_database_holds() -> None:
    campaign = CampaignFactory.create()
    item = ItemFactory.create(campaign=campaign)
    worker = UserFactory.create()
    now = timezone.now()
    found = _lease(campaign, worker, now)
    assert found is not None
    lease, is_new = found
    assert is_new
    fresh = Assignment.objects.get(pk=lease.pk)
    _same_fields(lease, fresh, ["id", "item_id", "worker_id", "campaign_id", "status"])
    assert lease.leased_until == fresh.leased_until
    _same_fields(lease.item, item, ["id", "campaign_id", "cid", "media_type", "text"])
    assert lease.item.filename == item.filename  # not read: loads on access

    with transaction.atomic():
        again = _lease(campaign, worker, now)
        assert again is not None
        assert again[0].pk == lease.pk
        assert not again[1]
        target = hot_sql.submit_target(worker=worker, item_id=item.pk)
        assert target is not None
        assert target.assignment_id == lease.pk
        assert target.campaign.label_schema == campaign.label_schema
        annotation = hot_sql.submit_write(
            item_id=item.pk,
            assignment_id=lease.pk,
            value={"label": "dog"},
            duration_ms=1200,
            now=timezone.now(),
        )
    assert annotation is not None
    stored = Annotation.objects.get(pk=annotation.pk)
    _same_fields(
        annotation,
        stored,
        ["id", "item_id", "worker_id", "assignment_id", "value", "label", "duration_ms"],
    )
    assert annotation.created_at == stored.created_at
    assert Assignment.objects.get(pk=lease.pk).status == "submitted"
    assert Item.objects.get(pk=item.pk).label_count == 1
    assert campaign_label_count(campaign_id=campaign.pk) == 1
    tally = CampaignLabelTally.objects.get(campaign=campaign)
    assert tally.shard == worker.pk % CampaignLabelTally.SHARDS


def test_token_authentication_loads_the_user_or_refuses() -> None:
    user = UserFactory.create(display_name="Ann")
    token = Token.objects.create(user=user)
    auth = TokenAuthentication()
    loaded, loaded_token = auth.authenticate_credentials(token.key)
    fresh = User.objects.get(pk=user.pk)
    _same_fields(loaded, fresh, [f.attname for f in User._meta.concrete_fields])
    assert loaded_token.key == token.key
    assert loaded_token.user_id == user.pk
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        auth.authenticate_credentials("0" * 40)
    User.objects.filter(pk=user.pk).update(is_active=False)
    with pytest.raises(AuthenticationFailed, match="inactive"):
        auth.authenticate_credentials(token.key)


def test_submit_write_writes_nothing_unless_the_lease_is_still_leased() -> None:
    """The write re-checks the lease: a lease that expired (or was submitted) after the first
    read, as when the submit waited for the item's lock, gets no label and no count."""
    campaign = CampaignFactory.create()
    item = ItemFactory.create(campaign=campaign)
    worker = UserFactory.create()
    lease = AssignmentFactory.create(item=item, worker=worker, leased_until=timezone.now())
    Assignment.objects.filter(pk=lease.pk).update(status="expired")
    with transaction.atomic():
        written = hot_sql.submit_write(
            item_id=item.pk,
            assignment_id=lease.pk,
            value={"label": "cat"},
            duration_ms=None,
            now=timezone.now(),
        )
        assert written is None
        target = hot_sql.submit_target(worker=worker, item_id=item.pk)
        assert target is not None
        assert target.assignment_status == "expired"
    assert not Annotation.objects.filter(item=item).exists()
    assert Item.objects.get(pk=item.pk).label_count == 0
    assert campaign_label_count(campaign_id=campaign.pk) == 0
    assert Assignment.objects.get(pk=lease.pk).status == "expired"


def test_token_read_loads_the_user_with_the_submit_target() -> None:
    """The fast lane's first read of a submit that is not a class label: the token's user (as
    token auth loads it) and the same submit target as the read without a token; None for an
    unknown key."""
    campaign = CampaignFactory.create()
    item = ItemFactory.create(campaign=campaign)
    worker = UserFactory.create(display_name="Ann")
    token = Token.objects.create(user=worker)
    lease = AssignmentFactory.create(item=item, worker=worker, leased_until=timezone.now())
    fresh = User.objects.get(pk=worker.pk)

    found_target = hot_sql.token_submit_target(key=token.key, item_id=item.pk)
    assert found_target is not None
    user, target = found_target
    _same_fields(user, fresh, _USER_FIELDS)
    assert target is not None
    assert (target.item_status, target.assignment_id, target.assignment_status) == (
        "open",
        lease.pk,
        "leased",
    )
    assert target.campaign.pk == campaign.pk
    assert target.campaign.label_schema == campaign.label_schema
    no_item = hot_sql.token_submit_target(key=token.key, item_id=item.pk + 999)
    assert no_item is not None
    assert no_item[1] is None

    assert hot_sql.token_submit_target(key="0" * 40, item_id=item.pk) is None
    User.objects.filter(pk=worker.pk).update(is_active=False)
    with pytest.raises(AuthenticationFailed, match="inactive"):
        hot_sql.token_submit_target(key=token.key, item_id=item.pk)


_USER_FIELDS = [f.attname for f in User._meta.concrete_fields]


def _token_lease(key: str, campaign_id: int, *, draw: float = 0.5) -> hot_sql.TokenLease | None:
    now = timezone.now()
    return hot_sql.token_lease_next(
        key=key,
        campaign_id=campaign_id,
        lock_class=1,
        gold_draw=draw,
        now=now,
        until=now + timedelta(minutes=5),
    )


def test_token_lease_next_loads_the_user_the_campaign_and_the_lease() -> None:
    """Next-task in one statement: the token's user as token auth loads it, the campaign as
    `campaign_for_lease` does, and a lease as `lease_next` makes it; asked again, the same one."""
    campaign = CampaignFactory.create(budget=10**18, reward_per_label=10**15)
    item = Item.objects.create(
        campaign=campaign, cid="bafkreitoken", media_type="text/plain", text="a text"
    )
    worker = UserFactory.create(display_name="Ann")
    token = Token.objects.create(user=worker)

    found = _token_lease(token.key, campaign.pk)
    assert found is not None
    _same_fields(found.worker, User.objects.get(pk=worker.pk), _USER_FIELDS)
    assert found.campaign is not None
    _same_fields(found.campaign, Campaign.objects.get(pk=campaign.pk), hot_sql._CAMPAIGN_FIELDS)
    assert found.went
    assert found.lease is not None
    lease, is_new = found.lease
    assert is_new
    stored = Assignment.objects.get(worker=worker)
    assert (lease.pk, lease.item_id, lease.status, lease.leased_until) == (
        stored.pk,
        item.pk,
        "leased",
        stored.leased_until,
    )
    assert (lease.item.cid, lease.item.media_type, lease.item.text) == (
        "bafkreitoken",
        "text/plain",
        "a text",
    )
    assert lease.worker is found.worker
    assert lease.campaign is found.campaign
    assert Item.objects.get(pk=item.pk).slots_taken == 1
    assert Campaign.objects.get(pk=campaign.pk).labels_reserved == 1

    again = _token_lease(token.key, campaign.pk)
    assert again is not None
    assert again.lease is not None
    assert (again.lease[0].pk, again.lease[1]) == (lease.pk, False)
    assert Assignment.objects.count() == 1
    assert Campaign.objects.get(pk=campaign.pk).labels_reserved == 1


@pytest.mark.parametrize("case", ["blocked", "paused", "draft, owner", "no campaign"])
def test_token_lease_next_leases_nothing_when_a_check_fails(case: str) -> None:
    """The lease function is not called at all when the campaign is not active or the worker is
    blocked from it (it would lease: there is a free item): nothing is written."""
    worker = UserFactory.create()
    token = Token.objects.create(user=worker)
    owner = {"owner": worker} if case == "draft, owner" else {}
    campaign = CampaignFactory.create(**owner)
    ItemFactory.create(campaign=campaign)
    campaign_id = campaign.pk
    if case == "blocked":
        WorkerBlock.objects.create(campaign=campaign, worker=worker, reason="spam")
    elif case == "paused":
        Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    elif case == "draft, owner":
        Campaign.objects.filter(pk=campaign.pk).update(status="draft")
    else:
        campaign_id += 999

    found = _token_lease(token.key, campaign_id)
    assert found is not None
    assert found.worker.pk == worker.pk
    assert not found.went
    assert found.lease is None
    if case == "no campaign":
        assert found.campaign is None
    else:
        assert found.campaign is not None
        assert found.campaign.pk == campaign.pk
    assert not Assignment.objects.exists()
    assert Item.objects.get(campaign=campaign).slots_taken == 0


def test_token_lease_next_refuses_an_unknown_token_and_an_inactive_user() -> None:
    campaign = CampaignFactory.create()
    ItemFactory.create(campaign=campaign)
    worker = UserFactory.create()
    token = Token.objects.create(user=worker)
    assert _token_lease("0" * 40, campaign.pk) is None
    User.objects.filter(pk=worker.pk).update(is_active=False)
    with pytest.raises(AuthenticationFailed, match="inactive"):
        _token_lease(token.key, campaign.pk)
    assert not Assignment.objects.exists()


def test_token_lease_next_draws_gold_and_counts_the_budget_as_the_python_rules() -> None:
    """The gold draw against the gold ratio, and the labels the budget affords (budget // reward,
    unlimited at reward 0), computed in SQL as `labeling.selectors.campaign_serves_gold` and
    `campaign_labels_affordable` do (test_rules.py pins the two on a table of cases)."""
    campaign = CampaignFactory.create(gold_ratio=0.5, budget=25, reward_per_label=10)
    plain = ItemFactory.create(campaign=campaign)
    gold = ItemFactory.create(campaign=campaign, gold_label="cat")
    ItemFactory.create(campaign=campaign)
    keys = [TokenFactory.create().key for _ in range(4)]

    def leased_item(key: str, draw: float) -> int:
        found = _token_lease(key, campaign.pk, draw=draw)
        assert found is not None
        assert found.lease is not None
        return found.lease[0].item_id

    assert leased_item(keys[0], 0.49) == gold.pk  # below the ratio: gold first
    assert leased_item(keys[1], 0.5) == plain.pk  # not below it: the main queue
    # 25 // 10 = 2 labels reserved: the third lease is refused, and rolled back whole.
    with pytest.raises(DatabaseError) as refused, transaction.atomic():
        _token_lease(keys[2], campaign.pk)
    assert getattr(refused.value.__cause__, "sqlstate", None) == hot_sql.BUDGET_EXHAUSTED
    assert Assignment.objects.count() == 2
    assert Campaign.objects.get(pk=campaign.pk).labels_reserved == 2
    Campaign.objects.filter(pk=campaign.pk).update(reward_per_label=0)
    assert leased_item(keys[2], 0.9) != gold.pk
    assert Campaign.objects.get(pk=campaign.pk).labels_reserved == 3


def test_token_lease_next_says_when_nothing_is_free() -> None:
    campaign = CampaignFactory.create(min_labels=1, max_labels=1)
    ItemFactory.create(campaign=campaign)
    first, second = (TokenFactory.create().key for _ in range(2))
    taken = _token_lease(first, campaign.pk)
    assert taken is not None
    assert taken.lease is not None
    found = _token_lease(second, campaign.pk)
    assert found is not None
    assert found.went
    assert found.lease is None
    assert Assignment.objects.count() == 1


def _leased(campaign: Campaign, worker: User) -> tuple[Item, Assignment]:
    lease = AssignmentFactory.create(
        item__campaign=campaign, worker=worker, leased_until=timezone.now()
    )
    return lease.item, lease


def _submit_label(key: str, item_id: int, label: str) -> Annotation | None:
    return hot_sql.token_submit_label(
        key=key, item_id=item_id, label=label, duration_ms=1500, now=timezone.now()
    )


def test_token_submit_label_writes_the_label_its_lease_and_its_counts() -> None:
    """The one-statement submit stores what the full path stores: the label row (as the ORM loads
    it), the lease submitted, the item's count and the worker's shard of the campaign's tally."""
    campaign = CampaignFactory.create()
    worker = UserFactory.create()
    key = Token.objects.create(user=worker).key
    item, lease = _leased(campaign, worker)

    written = _submit_label(key, item.pk, "dog")

    assert written is not None
    _same_fields(
        written,
        Annotation.objects.get(pk=written.pk),
        ["id", "item_id", "worker_id", "assignment_id", "value", "label", "duration_ms"],
    )
    assert written.value == {"label": "dog"}
    assert written.assignment_id == lease.pk
    assert Assignment.objects.get(pk=lease.pk).status == "submitted"
    assert Item.objects.get(pk=item.pk).label_count == 1
    shard = CampaignLabelTally.objects.get(campaign=campaign)
    assert (shard.shard, shard.labels) == (worker.pk % CampaignLabelTally.SHARDS, 1)
    # The lease is used: a second label on the item is refused, and changes nothing.
    assert _submit_label(key, item.pk, "cat") is None
    assert Annotation.objects.filter(item=item).count() == 1
    assert campaign_label_count(campaign_id=campaign.pk) == 1


@pytest.mark.parametrize(
    "case",
    [
        "unknown token",
        "inactive user",
        "not leased to this worker",
        "lease expired",
        "no such item",
        "unknown class",
        "NUL in the label",
        "lone surrogate in the label",
        "bounding-box campaign",
    ],
)
def test_token_submit_label_writes_nothing_when_a_check_fails(case: str) -> None:
    """Each check the full path makes (token auth, the lease, the class) is one the statement
    makes: when one fails it returns None and nothing at all is written."""
    campaign = CampaignFactory.create()
    worker, other = UserFactory.create(), UserFactory.create()
    key = Token.objects.create(user=worker).key
    item, lease = _leased(campaign, worker)
    item_id, label = item.pk, "cat"
    if case == "unknown token":
        key = "0" * 40
    elif case == "inactive user":
        User.objects.filter(pk=worker.pk).update(is_active=False)
    elif case == "not leased to this worker":
        Assignment.objects.filter(pk=lease.pk).update(worker=other)
    elif case == "lease expired":
        Assignment.objects.filter(pk=lease.pk).update(status="expired")
    elif case == "no such item":
        item_id = item.pk + 999
    elif case == "unknown class":
        label = "horse"
    elif case == "NUL in the label":
        label = "cat\x00"
    elif case == "lone surrogate in the label":
        label = "cat\ud800"
    elif case == "bounding-box campaign":
        Campaign.objects.filter(pk=campaign.pk).update(task_type="image_bbox")
    status = Assignment.objects.get(pk=lease.pk).status

    assert _submit_label(key, item_id, label) is None

    assert not Annotation.objects.exists()
    assert Assignment.objects.get(pk=lease.pk).status == status
    assert Item.objects.get(pk=item.pk).label_count == 0
    assert not CampaignLabelTally.objects.exists()


def test_token_submit_label_accepts_exactly_the_labels_validate_value_accepts() -> None:
    """The statement's class check (jsonb containment on the stored schema) and
    `schema.validate_value` agree on every label: near misses in case, space and Unicode form,
    quotes, backslashes, JSON-looking text, another key of a class entry and the empty string."""
    names = ["cat", "Dog", 'say "hi"', "back\\slash", "naïve", "日本", "a b", "{}", "1"]
    schema = normalize_schema(names, task_type="text_classification")
    campaign = CampaignFactory.create(task_type="text_classification", label_schema=schema)
    worker = UserFactory.create()
    key = Token.objects.create(user=worker).key
    tries = [
        *names,
        "Cat",
        "cat ",
        " cat",
        "dog",
        "nai\u0308ve",  # the same word, decomposed: a different string
        '{"name": "cat"}',
        "#0072B2",  # a colour of the schema, not a class
        "",
        "a  b",
        "[]",
    ]
    for label in tries:
        item, _lease = _leased(campaign, worker)
        try:
            validate_value(task_type=campaign.task_type, schema=schema, label=label)
            valid = True
        except ApplicationError:
            valid = False
        written = _submit_label(key, item.pk, label)
        assert (written is not None) == valid, label
        if written is not None:
            assert Annotation.objects.get(pk=written.pk).label == label
    assert Annotation.objects.count() == len(names)
