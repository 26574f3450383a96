"""labeling.services.items: the quality engine's writes to items, many at a time."""

from __future__ import annotations

import pytest

from labeling.models import Item
from labeling.services import items_set_priority

from .factories import CampaignFactory, TextItemFactory

pytestmark = pytest.mark.django_db


def test_many_priorities_in_one_update_and_unchanged_rows_are_left_alone() -> None:
    campaign = CampaignFactory.create()
    items = TextItemFactory.create_batch(4, campaign=campaign)
    Item.objects.filter(pk=items[0].pk).update(priority=-500)
    wanted = {items[0].pk: -500, items[1].pk: -1200, items[2].pk: 300}
    assert items_set_priority(priorities=wanted) == 2  # items[0] had it already
    found = dict(Item.objects.filter(campaign=campaign).values_list("pk", "priority"))
    assert found == {**wanted, items[3].pk: 0}
    assert items_set_priority(priorities={}) == 0
