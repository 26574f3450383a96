"""Each hot rule has one home (docs/architecture.md, "Where each rule lives"). Where a rule is also
written in SQL, the SQL and the Python give the same answers here; the lease function installed
in the database is the text of labeling/sql/lease_next.sql; who may manage a campaign is decided
the same way through every entry point (API, page, quality's explanation)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from accounts.models import Role, User
from labeling import sql
from labeling.models import Campaign, CampaignStatus, Item
from labeling.selectors import (
    UNLIMITED_LABELS,
    campaign_can_manage,
    campaign_is_open_to,
    campaign_labels_affordable,
    campaign_serves_gold,
    campaigns_open_to,
)
from labeling.services import hot_sql
from quality.selectors import item_explanation_for

from ..accounts.factories import UserFactory
from ..conftest import client_for
from ..quality.factories import ItemConsensusFactory
from .factories import CampaignFactory, ItemFactory

pytestmark = pytest.mark.django_db

UINT256_MAX = 2**256 - 1


def _words(text: str) -> list[str]:
    return text.split()


def test_the_installed_lease_function_is_the_one_in_its_file() -> None:
    """Migrations load labeling/sql/lease_next.sql; an edit of the file without a migration that
    loads it again fails here."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc, pg_get_function_identity_arguments(oid) FROM pg_proc "
            "WHERE proname = 'labeling_lease_next'"
        )
        installed = cursor.fetchall()
    assert len(installed) == 1, "one labeling_lease_next: no stale signature left behind"
    source, arguments = installed[0]
    text = sql.read("lease_next.sql")
    assert _words(source) == _words(sql.function_body(text))
    assert _words(arguments) == _words(
        "p_lock_class integer, p_worker bigint, p_campaign bigint, p_gold_first boolean, "
        "p_now timestamp with time zone, p_until timestamp with time zone, "
        "p_max_labels integer, p_affordable numeric"
    )


BUDGETS = [
    # (budget, reward per label), in token base units
    (None, 10),
    (None, 0),
    (0, 10),
    (9, 10),
    (25, 10),
    (30, 10),
    (100, 0),
    (0, 0),
    (UINT256_MAX, 1),
    (UINT256_MAX, 3),
    (UINT256_MAX, UINT256_MAX),
    (UINT256_MAX - 1, UINT256_MAX),
    (10**77, 10**16),
    (2**255, 2**255 - 1),
    (5, UINT256_MAX),
]


def _affordable_in_sql(budget: int | None, reward: int) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {hot_sql.AFFORDABLE_SQL} "  # noqa: S608 - hot_sql's own constant
            "FROM (VALUES (%s::numeric, %s::numeric)) AS c(budget, reward_per_label)",
            [budget, reward],
        )
        (value,) = cursor.fetchone() or (None,)
    return None if value is None else int(value)


@pytest.mark.parametrize(("budget", "reward"), BUDGETS)
def test_the_budget_arithmetic_is_the_same_in_sql_and_python(
    budget: int | None, reward: int
) -> None:
    campaign = Campaign(budget=budget, reward_per_label=reward)
    in_python = campaign_labels_affordable(campaign=campaign)
    assert _affordable_in_sql(budget, reward) == in_python
    if budget is None:
        assert in_python is None
    elif reward == 0:
        assert in_python == UNLIMITED_LABELS
    else:
        assert in_python == budget // reward


def _gold_in_sql(draw: float, ratio: float) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {hot_sql.GOLD_FIRST_SQL} "  # noqa: S608 - hot_sql's own constant
            "FROM (VALUES (%(ratio)s::float8)) AS c(gold_ratio)",
            {"gold_draw": draw, "ratio": ratio},
        )
        (value,) = cursor.fetchone() or (None,)
    return bool(value)


def test_the_gold_draw_is_the_same_in_sql_and_python() -> None:
    ratios = [0.0, 0.1, 0.25, 0.5]
    draws = [0.0, 1e-12, 0.0999999, 0.1, 0.2500001, 0.25, 0.4999999, 0.5, 0.9999999]
    for ratio in ratios:
        for draw in draws:
            in_python = campaign_serves_gold(campaign=Campaign(gold_ratio=ratio), draw=draw)
            assert _gold_in_sql(draw, ratio) == in_python, (draw, ratio)
            assert in_python == (draw < ratio)
    # No gold ratio, no gold: whatever the draw.
    assert not campaign_serves_gold(campaign=Campaign(gold_ratio=0.0), draw=0.0)


def _people(owner: User) -> dict[str, User]:
    return {
        "owner": owner,
        "other requester": UserFactory.create(role=Role.REQUESTER),
        "contributor": UserFactory.create(),
        "staff": UserFactory.create(is_staff=True),
    }


def test_open_to_as_a_predicate_and_as_a_filter_agree() -> None:
    owner = UserFactory.create(role=Role.REQUESTER)
    campaigns = [CampaignFactory.create(owner=owner, status=s) for s in CampaignStatus.values]
    people = _people(owner)
    demoted = UserFactory.create(role=Role.CONTRIBUTOR)
    campaigns.append(CampaignFactory.create(owner=demoted, status=CampaignStatus.PAUSED))
    people["owner who lost the role"] = demoted
    for who, user in people.items():
        listed = set(
            Campaign.objects.filter(campaigns_open_to(user=user)).values_list("pk", flat=True)
        )
        for campaign in campaigns:
            open_to = campaign_is_open_to(campaign=campaign, user=user)
            assert (campaign.pk in listed) == open_to, (who, campaign.status)
    assert campaign_is_open_to(campaign=campaigns[0], user=owner)  # a draft, its owner


# Who may manage a campaign: staff, or its owner while a requester (accounts' roles: the
# requester role is what grants managing campaigns).
MANAGERS = {
    "owner": True,
    "owner who lost the role": False,
    "other requester": False,
    "staff": True,
    "contributor": False,
}


@pytest.fixture
def managed() -> tuple[Campaign, Item, dict[str, User]]:
    owner = UserFactory.create(role=Role.REQUESTER)
    campaign = CampaignFactory.create(owner=owner)
    item = ItemFactory.create(campaign=campaign)
    labeler = UserFactory.create()
    ItemConsensusFactory.create(
        item=item,
        confidence=0.99,
        n_labels=1,
        method="dawid_skene",
        is_complete=True,
        votes={
            "classes": ["cat"],
            "posterior": [1.0],
            "annotators": [{"worker_id": labeler.pk, "label": "cat", "weight": 1.0}],
        },
    )
    return campaign, item, _people(owner)


def _demote(user: User) -> None:
    User.objects.filter(pk=user.pk).update(role=Role.CONTRIBUTOR)
    user.refresh_from_db()


def _as(people: dict[str, User], who: str) -> User:
    if who == "owner who lost the role":
        _demote(people["owner"])
        return people["owner"]
    return people[who]


@pytest.mark.parametrize(("who", "may"), MANAGERS.items())
def test_who_may_manage_through_the_selector(
    managed: tuple[Campaign, Item, dict[str, User]], who: str, may: bool
) -> None:
    campaign, _item, people = managed
    assert campaign_can_manage(user=_as(people, who), campaign=campaign) is may


@pytest.mark.parametrize(("who", "may"), MANAGERS.items())
def test_who_may_manage_through_the_api(
    managed: tuple[Campaign, Item, dict[str, User]], who: str, may: bool
) -> None:
    campaign, _item, people = managed
    response = client_for(_as(people, who)).patch(
        f"/api/campaigns/{campaign.pk}/", {"status": campaign.status}, format="json"
    )
    assert response.status_code == (200 if may else 403)


@pytest.mark.parametrize(("who", "may"), MANAGERS.items())
def test_who_may_manage_through_the_pages(
    managed: tuple[Campaign, Item, dict[str, User]], who: str, may: bool
) -> None:
    campaign, _item, people = managed
    client = Client()
    client.force_login(_as(people, who))
    assert client.get(f"/campaigns/{campaign.pk}/").status_code == (200 if may else 403)
    home = client.get("/")
    assert home.status_code == 200
    assert (campaign.pk in home.context["managed"]) is may


@pytest.mark.parametrize(("who", "may"), MANAGERS.items())
def test_who_may_manage_through_the_explanation(
    managed: tuple[Campaign, Item, dict[str, User]], who: str, may: bool
) -> None:
    """A manager sees the labelers' worker ids; anyone else, numbered annotators."""
    _campaign, item, people = managed
    user = _as(people, who)
    explanation: dict[str, Any] = item_explanation_for(user=user, item_id=item.pk)
    assert ("worker_id" in explanation["annotators"][0]) is may
    api = client_for(user).get(f"/api/quality/items/{item.pk}/explanation/")
    assert api.status_code == 200
    assert ("worker_id" in api.json()["annotators"][0]) is may
