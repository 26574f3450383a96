from __future__ import annotations

import io
import zipfile

import factory
from PIL import Image

from accounts.models import Role, User
from labeling.models import Campaign, CampaignLabelTally, TaskType

PASSWORD = "pw-for-tests-123"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    role = Role.CONTRIBUTOR
    password = factory.django.Password(PASSWORD)


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
    reward_per_label = 10**16


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


def set_label_count(campaign: Campaign, labels: int) -> None:
    """Make the campaign's label count `labels` (its tally: one shard)."""
    CampaignLabelTally.objects.filter(campaign=campaign).delete()
    CampaignLabelTally.objects.create(campaign=campaign, shard=0, labels=labels)
