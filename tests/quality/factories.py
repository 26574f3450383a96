"""Factories for the quality app. Its rows name items and campaigns by id only (quality never
writes labeling's tables): pass `item=` or `campaign=` and the ids follow; a row made without one
gets a new item or campaign of its own."""

from __future__ import annotations

import factory

from quality.ml.features import FEATURES_VERSION, IMAGE_FEATURES
from quality.ml.train import TEXT
from quality.models import (
    CampaignQuality,
    ImageFeatures,
    ItemConsensus,
    ItemPrediction,
    ModelVersion,
    WorkerSkill,
)

from ..accounts.factories import UserFactory
from ..labeling.factories import CampaignFactory, ItemFactory


class ItemConsensusFactory(factory.django.DjangoModelFactory[ItemConsensus]):
    """An open decision; pass `is_complete=True` for a decided item."""

    class Meta:
        model = ItemConsensus

    class Params:
        item = factory.SubFactory(ItemFactory)

    item_id = factory.SelfAttribute("item.pk")
    campaign_id = factory.SelfAttribute("item.campaign_id")
    label = "cat"
    confidence = 0.97
    n_labels = 2
    method = "majority_vote"


class WorkerSkillFactory(factory.django.DjangoModelFactory[WorkerSkill]):
    class Meta:
        model = WorkerSkill

    class Params:
        campaign = factory.SubFactory(CampaignFactory)

    worker = factory.SubFactory(UserFactory)
    campaign_id = factory.SelfAttribute("campaign.pk")


class CampaignQualityFactory(factory.django.DjangoModelFactory[CampaignQuality]):
    class Meta:
        model = CampaignQuality

    class Params:
        campaign = factory.SubFactory(CampaignFactory)

    campaign_id = factory.SelfAttribute("campaign.pk")
    classes = factory.LazyAttribute(lambda o: o.campaign.class_names)


class ModelVersionFactory(factory.django.DjangoModelFactory[ModelVersion]):
    class Meta:
        model = ModelVersion

    class Params:
        campaign = factory.SubFactory(CampaignFactory)

    campaign_id = factory.SelfAttribute("campaign.pk")
    version = factory.Sequence(lambda n: n + 1)
    kind = TEXT
    classes = factory.LazyAttribute(lambda o: o.campaign.class_names)
    trained_on = 20
    oof_accuracy = 0.9


class ItemPredictionFactory(factory.django.DjangoModelFactory[ItemPrediction]):
    class Meta:
        model = ItemPrediction

    class Params:
        item = factory.SubFactory(ItemFactory)

    item_id = factory.SelfAttribute("item.pk")
    campaign_id = factory.SelfAttribute("item.campaign_id")
    version = 1
    label = "cat"
    probability = 0.9


class ImageFeaturesFactory(factory.django.DjangoModelFactory[ImageFeatures]):
    class Meta:
        model = ImageFeatures

    cid = factory.Sequence(lambda n: f"bafkreifactoryfeatures{n:06d}")
    version = FEATURES_VERSION
    # float64, little-endian, as quality.services.training stores them.
    features = bytes(8 * IMAGE_FEATURES)
