"""The quality update of many items at once (issue 22): the same decisions as one item at a time,
a fixed number of queries however many items, and one close, one reward message per batch."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Assignment, AssignmentStatus, Campaign, Item, ItemStatus
from quality import services
from quality.models import ItemConsensus
from rewards.models import RewardEntry
from rewards.services import rewards_account_item, rewards_account_items

from .helpers import add_items, answer, text_campaign, workers

pytestmark = pytest.mark.django_db

FIELDS = ("label", "confidence", "n_labels", "method", "is_complete", "priority", "votes")


def decided(item_ids: list[int]) -> dict[int, tuple[Any, ...]]:
    rows = ItemConsensus.objects.filter(item_id__in=item_ids).values_list("item_id", *FIELDS)
    return {row[0]: row[1:] for row in rows}


def labeled_campaign(n_items: int, pattern: list[tuple[str, ...]]) -> tuple[Campaign, list[Item]]:
    """Items labeled by the same crowd: item i gets the labels pattern[i % len(pattern)]."""
    campaign, items = text_campaign(n_items=n_items, min_labels=2, max_labels=3)
    crowd = workers(3)
    for i, item in enumerate(items):
        for worker, label in zip(crowd, pattern[i % len(pattern)], strict=False):
            answer(item, worker, label)
    return campaign, items


PATTERN = [("yes",), ("yes", "yes"), ("yes", "no"), ("no", "no", "yes"), ("no",)]


def test_a_batch_decides_as_one_item_at_a_time() -> None:
    _, one_by_one = labeled_campaign(10, PATTERN)
    _, batched = labeled_campaign(10, PATTERN)
    for item in one_by_one:
        services.item_consensus_update(item_id=item.pk)
    services.items_consensus_update(item_ids=[item.pk for item in reversed(batched)])
    single = decided([item.pk for item in one_by_one])
    together = decided([item.pk for item in batched])
    # The same decisions, item by item (the votes name the same workers in the same order).
    assert [single[i.pk][:-1] for i in one_by_one] == [together[i.pk][:-1] for i in batched]
    assert [single[i.pk][-1]["posterior"] for i in one_by_one] == [
        together[i.pk][-1]["posterior"] for i in batched
    ]
    closed = [i.pk for i in batched if together[i.pk][4]]
    assert len(closed) == 4  # the two items of each pattern with two agreeing or three labels
    assert set(Item.objects.filter(pk__in=closed).values_list("status", flat=True)) == {
        ItemStatus.COMPLETE
    }
    campaign = Campaign.objects.get(pk=batched[0].campaign_id)
    assert campaign.completed_count == 4
    # Open items carry their new queue priority.
    for item in Item.objects.filter(pk__in=[i.pk for i in batched], status=ItemStatus.OPEN):
        assert item.priority == together[item.pk][5]


def test_the_queries_do_not_grow_with_the_batch() -> None:
    counts = []
    for n in (5, 40):
        _, items = labeled_campaign(n, PATTERN)
        with CaptureQueriesContext(connection) as queries:
            services.items_consensus_update(item_ids=[item.pk for item in items])
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_a_batch_spans_campaigns_and_skips_unknown_items() -> None:
    _, first = labeled_campaign(3, [("yes", "yes")])
    _, second = labeled_campaign(2, [("no", "no")])
    ids = [i.pk for i in first + second]
    result = services.items_consensus_update(item_ids=[*ids, 10**9])
    assert sorted(result) == sorted(ids)
    assert {row[0] for row in decided(ids).values()} == {"yes", "no"}
    assert Item.objects.filter(pk__in=ids, status=ItemStatus.COMPLETE).count() == 5


def test_one_close_releases_every_lease_and_returns_each_campaigns_reservations() -> None:
    campaign, items = text_campaign(n_items=3, min_labels=1, max_labels=3, budget=10**6)
    Campaign.objects.filter(pk=campaign.pk).update(labels_reserved=5)
    crowd = workers(3)
    for item in items:
        answer(item, crowd[0], "yes")
    # Two outstanding leases on the first item, one on the second.
    for item, worker in ((items[0], crowd[1]), (items[0], crowd[2]), (items[1], crowd[1])):
        Assignment.objects.create(
            item=item, worker=worker, campaign=campaign, leased_until="2100-01-01T00:00:00Z"
        )
        Item.objects.filter(pk=item.pk).update(slots_taken=item.slots_taken + 1)
        item.slots_taken += 1
    from quality.services.closing import items_close_and_queue_reward

    assert items_close_and_queue_reward(item_ids=[i.pk for i in items]) == [i.pk for i in items]
    assert items_close_and_queue_reward(item_ids=[items[0].pk]) == []  # closed once
    slots = dict(Item.objects.filter(campaign=campaign).values_list("pk", "slots_taken"))
    assert [slots[i.pk] for i in items] == [1, 1, 1]  # each keeps its one label's slot
    assert not Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.LEASED).exists()
    fresh = Campaign.objects.get(pk=campaign.pk)
    assert (fresh.completed_count, fresh.labels_reserved) == (3, 2)


def test_accounting_many_items_writes_what_one_at_a_time_writes() -> None:
    _, one_by_one = labeled_campaign(10, PATTERN)
    _, batched = labeled_campaign(10, PATTERN)
    services.items_consensus_update(item_ids=[i.pk for i in one_by_one + batched])
    for item in one_by_one:
        rewards_account_item(item_id=item.pk)
    with CaptureQueriesContext(connection) as few:
        rewards_account_items(item_ids=[i.pk for i in batched[:2]])
    with CaptureQueriesContext(connection) as many:
        written = rewards_account_items(item_ids=[i.pk for i in batched])
    assert len(many) == len(few)
    written += RewardEntry.objects.filter(item_id__in=[i.pk for i in batched[:2]]).count()
    assert written == RewardEntry.objects.filter(item_id__in=[i.pk for i in batched]).count() > 0

    def ledger(items: list[Item]) -> list[list[tuple[Any, ...]]]:
        return [
            list(
                RewardEntry.objects.filter(item_id=item.pk)
                .order_by("annotation_id")
                .values_list("amount", "status", "reason")
            )
            for item in items
        ]

    assert ledger(one_by_one) == ledger(batched)
    assert rewards_account_items(item_ids=[i.pk for i in batched]) == 0  # exactly once


def test_gold_items_in_a_batch_are_judged_and_never_close(
    django_capture_on_commit_callbacks: Any,
) -> None:
    campaign, _ = text_campaign(min_labels=1, max_labels=2)
    gold, plain = add_items(campaign, 2, gold={0: "no"})
    crowd = workers(2)
    for worker in crowd:
        answer(gold, worker, "yes")
        answer(plain, worker, "yes")
    with django_capture_on_commit_callbacks(execute=True) as sent:
        services.items_consensus_update(item_ids=[gold.pk, plain.pk])
    assert len(sent) == 2  # one reward message for the closed item, one for the gold one
    rows = decided([gold.pk, plain.pk])
    assert rows[gold.pk][:5] == ("no", 1.0, 2, "gold", False)
    assert rows[plain.pk][4] is True
    assert Item.objects.get(pk=gold.pk).status == ItemStatus.OPEN
    # Eager in tests: both items' labels were accounted.
    reasons = set(RewardEntry.objects.filter(item_id=gold.pk).values_list("reason", flat=True))
    assert reasons == {"disagrees_gold"}
    assert RewardEntry.objects.filter(item_id=plain.pk).count() == 2
