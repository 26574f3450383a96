"""Every factory saves a valid row, twice over (unique fields do not collide), so a model change
that breaks one fails here first rather than somewhere in the tests that use it."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models

from labeling.models import AssignmentStatus

from .accounts.factories import SiweNonceFactory, TokenFactory, UserFactory
from .datasets.factories import ExportFactory
from .labeling.factories import (
    AnnotationFactory,
    AssignmentFactory,
    CampaignFactory,
    CampaignLabelTallyFactory,
    ImportJobFactory,
    ItemFactory,
    TextItemFactory,
    WorkerBlockFactory,
)
from .quality.factories import (
    CampaignQualityFactory,
    ImageFeaturesFactory,
    ItemConsensusFactory,
    ItemPredictionFactory,
    ModelVersionFactory,
    WorkerSkillFactory,
)
from .rewards.factories import (
    ChainCursorFactory,
    ChainDeploymentFactory,
    ChainEventFactory,
    ChainSenderFactory,
    ChainTxFactory,
    ClaimRequestFactory,
    EpochFactory,
    EpochLeafFactory,
    RewardEntryFactory,
    WalletClaimFactory,
)
from .storage.factories import PinFactory

pytestmark = pytest.mark.django_db

FACTORIES: list[Any] = [
    UserFactory,
    TokenFactory,
    SiweNonceFactory,
    CampaignFactory,
    CampaignLabelTallyFactory,
    ItemFactory,
    TextItemFactory,
    AssignmentFactory,
    AnnotationFactory,
    WorkerBlockFactory,
    ImportJobFactory,
    ItemConsensusFactory,
    WorkerSkillFactory,
    CampaignQualityFactory,
    ModelVersionFactory,
    ItemPredictionFactory,
    ImageFeaturesFactory,
    RewardEntryFactory,
    ChainDeploymentFactory,
    EpochFactory,
    EpochLeafFactory,
    ChainTxFactory,
    ChainSenderFactory,
    ChainCursorFactory,
    ChainEventFactory,
    WalletClaimFactory,
    ClaimRequestFactory,
    ExportFactory,
    PinFactory,
]


def _left_to_the_model(row: models.Model) -> list[str]:
    """Fields still at the model's default. Their validity is the model's concern: full_clean
    calls an empty JSON default blank, yet it is what the services write."""
    return [
        field.name
        for field in row._meta.concrete_fields
        if field.has_default() and getattr(row, field.attname) == field.get_default()
    ]


@pytest.mark.parametrize("model_factory", FACTORIES, ids=lambda f: f.__name__)
def test_a_factory_saves_valid_distinct_rows(model_factory: Any) -> None:
    rows = model_factory.create_batch(2)
    model = model_factory._meta.model
    assert model.objects.filter(pk__in=[row.pk for row in rows]).count() == 2
    for row in rows:
        fresh = model.objects.get(pk=row.pk)
        fresh.full_clean(exclude=_left_to_the_model(fresh))


def test_a_label_and_its_lease_name_the_same_item_worker_and_campaign() -> None:
    annotation = AnnotationFactory.create()
    lease = annotation.assignment
    assert (lease.item_id, lease.worker_id) == (annotation.item_id, annotation.worker_id)
    assert lease.campaign_id == annotation.item.campaign_id
    assert lease.status == AssignmentStatus.SUBMITTED
    assert annotation.value == {"label": annotation.label}


def test_rows_named_by_id_follow_the_row_they_are_given() -> None:
    item = ItemFactory.create()
    consensus = ItemConsensusFactory.create(item=item)
    assert (consensus.item_id, consensus.campaign_id) == (item.pk, item.campaign_id)
    skill = WorkerSkillFactory.create(campaign=item.campaign)
    assert skill.campaign_id == item.campaign_id
