"""The buyers' dataset list pages with cursors."""

from __future__ import annotations

import pytest

from accounts.models import User
from labeling.models import Campaign

from ..conftest import client_for
from ..labeling.factories import CampaignFactory
from ..pages import assert_bad_page_queries, follow_pages

pytestmark = pytest.mark.django_db


def test_datasets_page_through_every_campaign_once(buyer: User) -> None:
    with_data = CampaignFactory.create_batch(5)
    Campaign.objects.filter(pk__in=[c.pk for c in with_data]).update(
        completed_count=1, item_count=1
    )
    CampaignFactory.create()  # nothing completed: not a dataset
    client = client_for(buyer)
    pages = follow_pages(client, "/api/datasets/?page_size=2")
    assert [len(p) for p in pages] == [2, 2, 1]
    ids = [d["campaign_id"] for p in pages for d in p]
    assert ids == sorted((c.pk for c in with_data), reverse=True)
    assert_bad_page_queries(client, "/api/datasets/")
