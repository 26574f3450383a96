"""Factories for the labeling app (campaigns, items, leases, labels, imports, blocks) and the
upload payloads tests send it (small images and zips of them)."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import factory
from django.utils import timezone
from PIL import Image

from accounts.models import Role
from labeling.models import (
    Annotation,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignLabelTally,
    ImportJob,
    ImportKind,
    Item,
    TaskType,
    WorkerBlock,
)

from ..accounts.factories import UserFactory

# How long a factory-made lease lasts: long enough that no test sees it expire by accident.
LEASE = timedelta(minutes=5)


class CampaignFactory(factory.django.DjangoModelFactory[Campaign]):
    class Meta:
        model = Campaign

    owner = factory.SubFactory(UserFactory, role=Role.REQUESTER)
    title = factory.Sequence(lambda n: f"Campaign {n}")
    task_type = TaskType.IMAGE_CLASSIFICATION
    label_schema = {
        "classes": [
            {"name": "cat", "hotkey": "1", "color": "#0072B2"},
            {"name": "dog", "hotkey": "2", "color": "#E69F00"},
            {"name": "bird", "hotkey": "3", "color": "#009E73"},
        ]
    }
    min_labels = 2
    max_labels = 3
    reward_per_label = 10**16  # token base units (0.01 of an 18-decimal token)


class CampaignLabelTallyFactory(factory.django.DjangoModelFactory[CampaignLabelTally]):
    class Meta:
        model = CampaignLabelTally

    campaign = factory.SubFactory(CampaignFactory)
    shard = 0
    labels = 0


class ItemFactory(factory.django.DjangoModelFactory[Item]):
    """An open image item. Its CID names no stored bytes: a test that reads them stores a blob."""

    class Meta:
        model = Item

    campaign = factory.SubFactory(CampaignFactory)
    cid = factory.Sequence(lambda n: f"bafkreifactoryitem{n:06d}")
    media_type = "image/png"


class TextItemFactory(ItemFactory):
    """An open text item, served inline."""

    media_type = "text/plain"
    text = factory.Sequence(lambda n: f"text {n}")
    size = factory.LazyAttribute(lambda o: len(o.text.encode()))


class AssignmentFactory(factory.django.DjangoModelFactory[Assignment]):
    """A live lease; `submitted=True` for the lease of a submitted label."""

    class Meta:
        model = Assignment

    class Params:
        submitted = factory.Trait(status=AssignmentStatus.SUBMITTED)

    item = factory.SubFactory(ItemFactory)
    worker = factory.SubFactory(UserFactory)
    campaign = factory.SelfAttribute("item.campaign")
    leased_until = factory.LazyFunction(lambda: timezone.now() + LEASE)


class AnnotationFactory(factory.django.DjangoModelFactory[Annotation]):
    """A class label with its submitted lease. The item's counters are left alone (the services
    keep them): a test that needs them updates them itself."""

    class Meta:
        model = Annotation

    item = factory.SubFactory(ItemFactory)
    worker = factory.SubFactory(UserFactory)
    assignment = factory.SubFactory(
        AssignmentFactory,
        item=factory.SelfAttribute("..item"),
        worker=factory.SelfAttribute("..worker"),
        submitted=True,
    )
    label = "cat"
    value = factory.LazyAttribute(lambda o: {"label": o.label})


class WorkerBlockFactory(factory.django.DjangoModelFactory[WorkerBlock]):
    class Meta:
        model = WorkerBlock

    campaign = factory.SubFactory(CampaignFactory)
    worker = factory.SubFactory(UserFactory)
    reason = ""


class ImportJobFactory(factory.django.DjangoModelFactory[ImportJob]):
    """A queued import of a zip of images; its source CID names no stored bytes."""

    class Meta:
        model = ImportJob

    campaign = factory.SubFactory(CampaignFactory)
    created_by = factory.SelfAttribute("campaign.owner")
    kind = ImportKind.IMAGES_ZIP
    source_cid = factory.Sequence(lambda n: f"bafkreifactorysource{n:06d}")
    source_name = factory.Sequence(lambda n: f"batch-{n}.zip")


def set_label_count(campaign: Campaign, labels: int) -> None:
    """Make the campaign's label count `labels` (its tally: one shard)."""
    CampaignLabelTally.objects.filter(campaign=campaign).delete()
    CampaignLabelTallyFactory.create(campaign=campaign, shard=0, labels=labels)


def png_bytes(seed: int = 0, size: tuple[int, int] = (16, 16), fmt: str = "PNG") -> bytes:
    """A small, valid, distinct image per seed."""
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    img.putpixel((seed % size[0], (seed // size[0]) % size[1]), (255 - (seed % 256), 0, 0))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()
