"""Server-rendered pages through Django's test client."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import Role, User
from frontend.views import EN_DASH, hotkey_hint, token_amount
from labeling.models import Campaign, CampaignStatus, ImportJob, ImportKind, ImportStatus
from tests.accounts.factories import PASSWORD, UserFactory
from tests.labeling.factories import (
    CampaignFactory,
    ItemFactory,
    TextItemFactory,
    set_label_count,
)

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
    ItemFactory.create(campaign=campaign, cid="bafkreigoldone", gold_label="GOLD-SECRET-1")
    TextItemFactory.create(
        campaign=campaign, cid="bafkreigoldtwo", text="a text", gold_label="GOLD-SECRET-2"
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


# The requester's campaign page.


def test_home_links_the_campaign_page_for_campaigns_the_user_manages(
    requester: User, contributor: User, campaign: Campaign
) -> None:
    other = CampaignFactory.create()  # another requester's, active: listed, not managed
    html = signed_in(requester).get("/").content.decode()
    assert f'href="/campaigns/{campaign.pk}/"' in html
    assert other.title in html
    assert f'href="/campaigns/{other.pk}/"' not in html
    assert "/campaigns/" not in signed_in(contributor).get("/").content.decode()


def test_staff_manage_every_campaign_from_home(staff: User, campaign: Campaign) -> None:
    assert f'href="/campaigns/{campaign.pk}/"' in signed_in(staff).get("/").content.decode()


def test_owner_sees_the_campaign_page(requester: User) -> None:
    campaign = CampaignFactory.create(
        owner=requester,
        title="Pets <b>v2</b>",
        min_labels=2,
        max_labels=4,
        target_confidence=0.9,
        reward_per_label=12_500_000_000_000_000,  # 0.0125 tokens
        budget=3 * 10**18,
        item_count=40,
        completed_count=10,
    )
    set_label_count(campaign, 57)
    response = signed_in(requester).get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pets &lt;b&gt;v2&lt;/b&gt;" in html
    assert "Image classification" in html
    assert "Active" in html
    # Classes as colour chips with their hotkeys, in the schema's order.
    chips = re.findall(r'<li class="chip" style="--c: (#[0-9A-Fa-f]{6})">(.*?)</li>', html, re.S)
    assert [c for c, _ in chips] == ["#0072B2", "#E69F00", "#009E73"]
    for (_, chip), (name, key) in zip(
        chips, [("cat", "1"), ("dog", "2"), ("bird", "3")], strict=True
    ):
        assert f'<span class="name">{name}</span>' in chip
        assert f">{key}</kbd>" in chip
    assert f"2{EN_DASH}4 labels per item · closes at 90% confidence · 0% gold" in html
    # Money: base units as an exact decimal string, and whole tokens at 18 decimals.
    assert "<strong>0.0125</strong> tokens" in html
    assert "<code>12500000000000000</code> base units" in html
    assert "<strong>3</strong> tokens" in html
    assert "<code>3000000000000000000</code> base units" in html
    assert "pays for 240 labels" in html
    # Progress: the counters and the bar (25% of the items completed).
    for stat, value in [("items", "40"), ("completed", "10"), ("open", "30"), ("labels", "57")]:
        assert f'<span class="num" id="stat-{stat}">{value}</span>' in html
    assert 'aria-valuenow="25"' in html
    assert 'id="bar-done" x="0" y="0" width="25"' in html
    # The upload form: a multiple file input and a drop zone; the scripts, served locally.
    assert re.search(
        r'<input type="file" id="files" name="files" multiple accept="[^"]*image/\*', html
    )
    assert 'id="dropzone"' in html
    assert "frontend/api.js" in html
    assert "frontend/campaign.js" in html
    # No CDN, no external script: the machine is offline.
    assert "http://" not in html
    assert "https://" not in html
    assert f'href="/label/{campaign.pk}/"' in html
    assert "No imports yet." in html


def test_campaign_page_without_a_budget_cap_and_for_texts(requester: User) -> None:
    campaign = CampaignFactory.create(
        owner=requester, task_type="text_classification", reward_per_label=0, budget=None
    )
    html = signed_in(requester).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert '<dd id="budget">No cap</dd>' in html
    assert "<strong>0</strong> tokens" in html
    assert 'accept=".csv,.jsonl,.ndjson,.txt"' in html
    assert 'data-text="1"' in html


def test_campaign_page_lists_recent_imports(requester: User, campaign: Campaign) -> None:
    ImportJob.objects.create(
        campaign=campaign,
        created_by=requester,
        kind=ImportKind.IMAGES_ZIP,
        source_cid="bafkreisource",
        source_name="batch-<1>.zip",
        status=ImportStatus.DONE,
        total=22,
        processed=22,
        created=20,
        rejected=[{"name": "batch.zip/bad.png", "reason": "not an image"}] * 2,
        rejected_count=2,
    )
    html = signed_in(requester).get(f"/campaigns/{campaign.pk}/").content.decode()
    row = re.search(r'<tr data-import="\d+" data-status="done">(.*?)</tr>', html, re.S)
    assert row is not None
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    ]
    assert cells[1:7] == ["batch-&lt;1&gt;.zip", "Done", "22 / 22", "20", "0", "2"]
    assert "No imports yet." in html  # in the page, hidden, for when the list is emptied
    assert re.search(r'<p id="no-imports" class="muted" hidden>', html)


def test_campaign_page_never_includes_a_gold_label(requester: User, campaign: Campaign) -> None:
    ItemFactory.create(campaign=campaign, cid="bafkreigoldone", gold_label="GOLD-SECRET-1")
    html = signed_in(requester).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "GOLD-SECRET" not in html
    assert "bafkreigold" not in html  # no items at all: the page shows counters


def test_staff_see_any_campaign_page(staff: User, campaign: Campaign) -> None:
    assert signed_in(staff).get(f"/campaigns/{campaign.pk}/").status_code == 200


def test_contributors_get_403_on_a_campaign_page(contributor: User, campaign: Campaign) -> None:
    response = signed_in(contributor).get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "Not allowed" in html  # a page of the site, not a bare error
    assert "Only requesters can manage campaigns." in html


def test_other_requesters_get_403_on_a_campaign_page(campaign: Campaign) -> None:
    other = UserFactory.create(role=Role.REQUESTER)
    response = signed_in(other).get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 403
    assert "This campaign belongs to someone else." in response.content.decode()


def test_a_missing_campaign_page_is_404(requester: User) -> None:
    response = signed_in(requester).get("/campaigns/999999/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_anonymous_users_are_sent_to_login_from_a_campaign_page(
    client: Client, campaign: Campaign
) -> None:
    response = client.get(f"/campaigns/{campaign.pk}/")
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next=/campaigns/{campaign.pk}/"


@pytest.mark.parametrize(
    ("units", "tokens"),
    [
        (0, "0"),
        (1, "0.000000000000000001"),
        (10**16, "0.01"),
        (10**18, "1"),
        (1234 * 10**18 + 5 * 10**17, "1,234.5"),
        (2**256 - 1, f"{(2**256 - 1) // 10**18:,}.{(2**256 - 1) % 10**18:018d}".rstrip("0")),
    ],
)
def test_token_amount(units: int, tokens: str) -> None:
    assert token_amount(units) == tokens
