"""Factories for the datasets app: exports (a campaign's, by id: pass `campaign=`)."""

from __future__ import annotations

import factory

from accounts.models import Role
from datasets.models import Export, ExportKind

from ..accounts.factories import UserFactory
from ..labeling.factories import CampaignFactory


class ExportFactory(factory.django.DjangoModelFactory[Export]):
    """A queued raw export (one in flight per campaign and kind)."""

    class Meta:
        model = Export

    class Params:
        campaign = factory.SubFactory(CampaignFactory)

    campaign_id = factory.SelfAttribute("campaign.pk")
    kind = ExportKind.RAW_CAR
    requested_by = factory.SubFactory(UserFactory, role=Role.BUYER)
