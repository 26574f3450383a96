"""Server-rendered pages through Django's test client."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import User
from frontend.views import EN_DASH, hotkey_hint
from labeling.models import Campaign, CampaignStatus, Item
from tests.factories import PASSWORD, CampaignFactory

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_login_page_renders(client: Client) -> None:
    response = client.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'type="email"' in html
    assert 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_login_with_email_and_password(client: Client, contributor: User) -> None:
    response = client.post("/login/", {"username": contributor.email, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_a_wrong_password_says_so(client: Client, contributor: User) -> None:
    response = client.post("/login/", {"username": contributor.email, "password": "wrong"})
    assert response.status_code == 200
    assert "Wrong email or password." in response.content.decode()


@pytest.mark.parametrize("path", ["/", "/label/1/"])
def test_anonymous_users_are_sent_to_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_home_lists_active_campaigns(contributor: User, campaign: Campaign) -> None:
    html = signed_in(contributor).get("/").content.decode()
    assert campaign.title in html
    assert f'href="/label/{campaign.pk}/"' in html


def test_label_page_shows_classes_with_hotkeys(contributor: User, campaign: Campaign) -> None:
    response = signed_in(contributor).get(f"/label/{campaign.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    buttons = re.findall(r"<button[^>]*class=\"cls\"[^>]*>.*?</button>", html, flags=re.S)
    assert len(buttons) == 3
    for button, (name, key) in zip(
        buttons, [("cat", "1"), ("dog", "2"), ("bird", "3")], strict=True
    ):
        assert f'data-label="{name}"' in button
        assert f'aria-keyshortcuts="{key}"' in button
        assert f'<kbd aria-hidden="true">{key}</kbd>' in button
        assert f'<span class="name">{name}</span>' in button
    assert f"Press <kbd>1{EN_DASH}3</kbd>" in html
    assert 'id="workspace"' in html
    assert f'data-campaign="{campaign.pk}"' in html
    assert "frontend/label.js" in html


def test_label_page_never_includes_a_gold_label(contributor: User, campaign: Campaign) -> None:
    # Gold labels are class names in real campaigns (and those are on the page as buttons), so the
    # check uses distinctive strings, written straight to the rows as a broken importer might.
    Item.objects.create(
        campaign=campaign, cid="bafkreigoldone", media_type="image/png", gold_label="GOLD-SECRET-1"
    )
    Item.objects.create(
        campaign=campaign,
        cid="bafkreigoldtwo",
        media_type="text/plain",
        text="a text",
        gold_label="GOLD-SECRET-2",
    )
    html = signed_in(contributor).get(f"/label/{campaign.pk}/").content.decode()
    assert "GOLD-SECRET" not in html
    assert "gold" not in html.lower()
    assert "bafkreigold" not in html  # no item at all: items come one at a time from the API


def test_label_page_progress_counts_the_workers_own_labels(
    contributor: User, campaign: Campaign
) -> None:
    html = signed_in(contributor).get(f"/label/{campaign.pk}/").content.decode()
    assert "You labeled 0 items here" in html


def test_label_page_for_a_missing_campaign_is_404(contributor: User) -> None:
    assert signed_in(contributor).get("/label/999999/").status_code == 404


def test_label_page_for_a_closed_campaign_is_403_for_contributors(
    contributor: User, requester: User
) -> None:
    campaign = CampaignFactory.create(owner=requester, status=CampaignStatus.PAUSED)
    assert signed_in(contributor).get(f"/label/{campaign.pk}/").status_code == 403
    # Its owner may still open it (the API then says why nothing can be leased).
    assert signed_in(requester).get(f"/label/{campaign.pk}/").status_code == 200


def test_label_page_escapes_campaign_text(contributor: User, requester: User) -> None:
    campaign = CampaignFactory.create(
        owner=requester, title="<script>x()</script>", instructions="<b>bold</b>"
    )
    html = signed_in(contributor).get(f"/label/{campaign.pk}/").content.decode()
    assert "<script>x()" not in html
    assert "&lt;script&gt;x()" in html
    assert "<b>bold</b>" not in html


@pytest.mark.parametrize(
    ("keys", "hint"),
    [
        (["1", "2", "3"], f"1{EN_DASH}3"),
        (["1"], "1"),
        (["a", "b"], "a b"),
        (["2", "1"], "2 1"),
        (["", ""], ""),
    ],
)
def test_hotkey_hint(keys: list[str], hint: str) -> None:
    assert hotkey_hint([{"name": f"c{i}", "hotkey": k} for i, k in enumerate(keys)]) == hint
