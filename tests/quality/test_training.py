"""The ML model: features, out-of-fold training, storage of versions and predictions, joining."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from bench.quality.ml_agreement import SHAPES, review, shape_png
from labeling.models import Item, TaskType
from labeling.services import items_upload
from quality import services
from quality.ml.features import FEATURES_VERSION, IMAGE_FEATURES, image_features
from quality.ml.train import IMAGE, TEXT, learnable, train_out_of_fold
from quality.models import CampaignQuality, ItemConsensus, ItemPrediction, ModelVersion

from ..labeling.factories import CampaignFactory
from ..quality.factories import ItemConsensusFactory
from .helpers import add_items, simulated_crowd, text_campaign, workers


def test_image_features_are_fixed_length_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    data = shape_png("square", rng)
    first = image_features(data)
    assert first.shape == (IMAGE_FEATURES,)
    np.testing.assert_array_equal(first, image_features(data))
    assert np.isfinite(first).all()


def test_out_of_fold_predictions_never_saw_their_label() -> None:
    # Random labels on random texts: a model that saw an item's label would recite it;
    # out of fold it can only guess.
    rng = np.random.default_rng(1)
    texts = [" ".join(f"w{rng.integers(10_000)}" for _ in range(8)) for _ in range(120)]
    labels = rng.integers(0, 2, 120)
    trained = train_out_of_fold(texts, labels, kind=TEXT, n_classes=2)
    assert trained is not None
    in_sample = np.mean(np.argmax(trained.predict_proba(texts), axis=1) == labels)
    assert in_sample > 0.95
    assert trained.oof_accuracy < 0.7
    assert trained.oof_proba.shape == (120, 2)


def test_shapes_are_learnable_and_unseen_classes_get_zero() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 3, 90)
    features = np.stack([image_features(shape_png(SHAPES[t], rng)) for t in truth])
    trained = train_out_of_fold(features, truth, kind=IMAGE, n_classes=4)
    assert trained is not None
    assert trained.oof_accuracy > 0.8
    assert trained.predict_proba(features[:3])[:, 3].max() == 0.0
    assert train_out_of_fold(features[:5], [0] * 5, kind=IMAGE, n_classes=4) is None
    np.testing.assert_array_equal(learnable([0, 0, 1, 2, 2]), [True, True, False, True, True])


@pytest.mark.django_db
def test_a_text_campaign_trains_and_the_model_joins_the_refit(settings) -> None:
    settings.KYODO_QUALITY_CALIBRATION_ITEMS = 50
    rng = np.random.default_rng(3)
    classes = ("positive", "negative", "neutral")
    campaign, _ = text_campaign(classes=classes, min_labels=1, max_labels=9)
    truth_codes = rng.integers(0, 3, 120)
    items = add_items(campaign, 120, texts=[review(int(t), rng) for t in truth_codes])
    crowd = workers(10)
    simulated_crowd(campaign, items[:100], crowd, accuracies=[0.85] * 10, per_item=3, seed=4)
    # Make the crowd's labels the texts' own classes for the first 100 items, so the model has
    # something consistent to learn; the last 20 items are unlabeled.
    for item, t in zip(items[:100], truth_codes[:100], strict=True):
        item.annotations.update(label=classes[t], value={"label": classes[t]})
    assert services.campaign_refit(campaign_id=campaign.pk) is not None
    assert CampaignQuality.objects.get(campaign_id=campaign.pk).calibrated
    version = services.model_train(campaign_id=campaign.pk)
    assert version is not None
    assert version.version == 1
    assert version.kind == TEXT
    assert version.trained_on >= 60
    assert version.oof_accuracy > 0.6
    predictions = ItemPrediction.objects.filter(campaign_id=campaign.pk, version=1)
    predicted = set(predictions.values_list("item_id", flat=True))
    assert {i.pk for i in items[100:]} <= predicted  # the unlabeled ones are scored too
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(refit_claimed_until=None)
    services.campaign_refit(campaign_id=campaign.pk)
    row = CampaignQuality.objects.get(campaign_id=campaign.pk)
    assert row.model_version == 1
    assert row.stats["model_cap"] is not None
    voted = ItemConsensus.objects.filter(campaign_id=campaign.pk, model_version="1").first()
    assert voted is not None
    assert voted.votes["model"]["version"] == 1
    # Unlabeled items are queued by the model's certainty, after every item in progress.
    priorities = Item.objects.filter(pk__in=[i.pk for i in items[100:]]).values_list(
        "priority", flat=True
    )
    assert all(-1000 < p <= 0 for p in priorities)
    # A second training is a new version and replaces the predictions.
    CampaignQuality.objects.filter(campaign_id=campaign.pk).update(train_claimed_until=None)
    assert services.model_train(campaign_id=campaign.pk).version == 2  # type: ignore[union-attr]
    assert set(
        ItemPrediction.objects.filter(campaign_id=campaign.pk).values_list("version", flat=True)
    ) == {2}


@pytest.mark.django_db
def test_an_image_campaign_trains_on_blobs_from_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    campaign = CampaignFactory.create(
        task_type=TaskType.IMAGE_CLASSIFICATION,
        label_schema={"classes": [{"name": s} for s in SHAPES]},
    )
    rng = np.random.default_rng(5)
    truth = [SHAPES[i % 3] for i in range(45)]
    items_upload(
        campaign=campaign,
        files=[
            SimpleUploadedFile(f"{i}.png", shape_png(shape, rng)) for i, shape in enumerate(truth)
        ],
    )
    items = list(Item.objects.filter(campaign=campaign).order_by("id"))
    by_name = {f"{i}.png": shape for i, shape in enumerate(truth)}
    ItemConsensus.objects.bulk_create(
        ItemConsensusFactory.build(
            item=item,
            label=by_name[item.filename],
            confidence=0.99,
            method="test",
            is_complete=True,
        )
        for item in items[:36]
    )
    version = services.model_train(campaign_id=campaign.pk)
    assert version is not None
    assert version.kind == IMAGE
    assert version.trained_on == 36
    assert ModelVersion.objects.filter(campaign_id=campaign.pk).count() == 1
    assert ItemPrediction.objects.filter(campaign_id=campaign.pk).count() == 45
    right = sum(
        p.label == by_name[Item.objects.get(pk=p.item_id).filename]
        for p in ItemPrediction.objects.filter(item_id__in=[i.pk for i in items[36:]])
    )
    assert right >= 6  # of 9 unseen images
    # Features are cached by CID: a second training decodes no image at all.
    from quality.models import ImageFeatures
    from quality.services import training

    assert ImageFeatures.objects.count() == 45
    first = training.inputs(campaign=campaign, kind=IMAGE, item_ids=[i.pk for i in items])
    real = training.get_store()
    reads: list[str] = []

    class CountingStore:
        def read_bytes(self, cid: str) -> bytes:
            reads.append(cid)
            return real.read_bytes(cid)

    monkeypatch.setattr(training, "get_store", lambda: CountingStore())
    again = training.inputs(campaign=campaign, kind=IMAGE, item_ids=[i.pk for i in items])
    assert reads == []
    assert again[0] == first[0]
    np.testing.assert_array_equal(again[1], first[1])
    # Vectors of an older feature version are recomputed and replaced, not trusted.
    ImageFeatures.objects.update(version=0)
    training.inputs(campaign=campaign, kind=IMAGE, item_ids=[i.pk for i in items])
    assert len(reads) == 45
    assert set(ImageFeatures.objects.values_list("version", flat=True)) == {FEATURES_VERSION}


@pytest.mark.django_db
def test_too_little_to_learn() -> None:
    campaign, _ = text_campaign(n_items=5)
    assert services.model_train(campaign_id=campaign.pk) is None
    bbox = CampaignFactory.create(task_type=TaskType.IMAGE_BBOX)
    assert services.model_train(campaign_id=bbox.pk) is None
