from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from PIL import Image

from accounts.models import User
from labeling.models import Campaign, Item, TaskType
from storage.services import get_store

from ..conftest import client_for
from .factories import CampaignFactory, png_bytes, zip_bytes

pytestmark = pytest.mark.django_db


def upload(client, campaign_id: int, **data):
    return client.post(f"/api/campaigns/{campaign_id}/items/", data, format="multipart")


def image(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_images_and_duplicates(campaign: Campaign) -> None:
    client = client_for(campaign.owner)
    first = upload(
        client,
        campaign.pk,
        files=[image("a.png", png_bytes(1)), image("b.jpg", png_bytes(2, fmt="JPEG"))],
    )
    assert first.status_code == 201
    assert first.json() == {"created": 2, "duplicates": 0, "rejected": []}
    # Same bytes under another name, twice in one upload and once already stored: all duplicates.
    again = upload(
        client,
        campaign.pk,
        files=[
            image("c.png", png_bytes(1)),
            image("d.png", png_bytes(3)),
            image("e.png", png_bytes(3)),
        ],
    )
    assert again.json() == {"created": 1, "duplicates": 2, "rejected": []}
    items = Item.objects.filter(campaign=campaign)
    assert items.count() == 3
    assert {i.media_type for i in items} == {"image/png", "image/jpeg"}
    store = get_store()
    for item in items:
        assert store.has(item.cid)
    # Each item's blob has a pin row; eager Celery has already made it good on LocalStore.
    from storage.models import Pin

    pins = {p.cid: p for p in Pin.objects.all()}
    assert set(pins) == {i.cid for i in items}
    assert {p.kind for p in pins.values()} == {"item"}
    campaign.refresh_from_db()
    assert campaign.item_count == 3


def test_zip_with_a_non_image_names_it(campaign: Campaign) -> None:
    data = zip_bytes(
        {
            "x/one.png": png_bytes(1),
            "x/two.png": png_bytes(2),
            "x/readme.txt": b"hello",
            "__MACOSX/._one.png": b"junk",
            "x/": b"",
        }
    )
    response = upload(client_for(campaign.owner), campaign.pk, files=[image("batch.zip", data)])
    assert response.status_code == 201
    body = response.json()
    assert body["created"] == 2
    assert [r["name"] for r in body["rejected"]] == ["batch.zip/x/readme.txt"]
    assert "not an image" in body["rejected"][0]["reason"]


def test_png_header_with_garbage_is_rejected_and_leaves_nothing(campaign: Campaign) -> None:
    garbage = b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 100
    response = upload(client_for(campaign.owner), campaign.pk, files=[image("bad.png", garbage)])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "all_files_rejected"
    assert error["rejected"][0]["name"] == "bad.png"
    assert "corrupt" in error["rejected"][0]["reason"]
    assert not Item.objects.exists()


def test_truncated_png_is_rejected(campaign: Campaign) -> None:
    data = png_bytes(5, size=(64, 64))
    response = upload(
        client_for(campaign.owner),
        campaign.pk,
        files=[image("cut.png", data[: len(data) // 2]), image("ok.png", png_bytes(6))],
    )
    assert response.status_code == 201
    assert response.json()["created"] == 1
    assert response.json()["rejected"][0]["name"] == "cut.png"


def test_name_does_not_decide_the_type(campaign: Campaign) -> None:
    response = upload(
        client_for(campaign.owner),
        campaign.pk,
        files=[image("real.txt", png_bytes(7)), image("fake.png", b"GIF? no, text")],
    )
    assert response.json()["created"] == 1
    assert Item.objects.get().media_type == "image/png"
    assert response.json()["rejected"][0]["name"] == "fake.png"


@override_settings(KYODO_MAX_IMAGE_BYTES=500)
def test_oversize_file_is_rejected(campaign: Campaign) -> None:
    big = png_bytes(1, size=(300, 300))
    assert len(big) > 500
    response = upload(client_for(campaign.owner), campaign.pk, files=[image("big.png", big)])
    assert response.status_code == 400
    assert "limit" in response.json()["error"]["rejected"][0]["reason"]


@override_settings(KYODO_MAX_IMAGE_PIXELS=100 * 100)
def test_decompression_bomb_is_rejected(campaign: Campaign) -> None:
    buf = io.BytesIO()
    Image.new("1", (4000, 4000)).save(buf, format="PNG")  # tiny file, 16 Mpx
    response = upload(
        client_for(campaign.owner), campaign.pk, files=[image("bomb.png", buf.getvalue())]
    )
    assert response.status_code == 400
    assert "pixels" in response.json()["error"]["rejected"][0]["reason"]


def text_campaign(owner: User) -> Campaign:
    return CampaignFactory.create(
        owner=owner,
        task_type=TaskType.TEXT_CLASSIFICATION,
        label_schema={
            "classes": [
                {"name": "pos", "hotkey": "1", "color": "#000000"},
                {"name": "neg", "hotkey": "2", "color": "#ffffff"},
            ]
        },
    )


def test_csv_and_jsonl_texts(requester: User) -> None:
    campaign = text_campaign(requester)
    client = client_for(requester)
    csv_file = SimpleUploadedFile(
        "t.csv", b"text,gold_label,source\nI love it,pos,web\nAwful,,web\nI love it,,x\n"
    )
    response = upload(client, campaign.pk, file=csv_file)
    assert response.status_code == 201, response.content
    assert response.json() == {"created": 2, "duplicates": 1, "rejected": []}
    jsonl = SimpleUploadedFile("t.jsonl", b'{"text": "Meh", "lang": "en"}\n\n{"text": "Awful"}\n')
    response = upload(client, campaign.pk, file=jsonl)
    assert response.json() == {"created": 1, "duplicates": 1, "rejected": []}
    gold = Item.objects.get(text="I love it")
    assert gold.gold_label == "pos"
    assert gold.metadata == {"source": "web"}
    assert Item.objects.get(text="Meh").metadata == {"lang": "en"}
    assert get_store().read_bytes(gold.cid) == b"I love it"


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.csv", b"", "empty"),
        ("header.csv", b"text\n", "nothing to import"),
        ("nocol.csv", b"body\nhello\n", "'text' column"),
        ("latin1.csv", "text\ncaf\xe9\n".encode("latin-1"), "UTF-8"),
        ("bad.jsonl", b'{"text": "ok"}\n{"text": \n', "invalid JSON"),
        ("arr.jsonl", b'["text"]\n', "JSON object"),
        ("gold.csv", b"text,gold_label\nhi,maybe\n", "gold_label"),
        ("blank.csv", b"text\n   \n", "empty"),
    ],
)
def test_bad_text_files_are_rejected_whole(
    requester: User, name: str, content: bytes, needle: str
) -> None:
    campaign = text_campaign(requester)
    client = client_for(requester)
    good_then_bad = SimpleUploadedFile(name, content)
    response = upload(client, campaign.pk, file=good_then_bad)
    assert response.status_code == 400, response.content
    assert needle in response.json()["error"]["message"] or needle in str(response.json()["error"])
    assert not Item.objects.exists()


def test_wrong_kind_and_unknown_fields(campaign: Campaign, requester: User) -> None:
    client = client_for(campaign.owner)
    response = upload(client, campaign.pk, file=SimpleUploadedFile("t.csv", b"text\nhi\n"))
    assert response.json()["error"]["code"] == "wrong_upload_kind"
    response = upload(client, campaign.pk, other=SimpleUploadedFile("x.png", png_bytes(1)))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_field"
    response = upload(client, campaign.pk)
    assert response.json()["error"]["code"] in ("no_files", "unknown_field")


def test_only_owner_uploads(campaign: Campaign, contributor: User, requester: User) -> None:
    response = upload(client_for(contributor), campaign.pk, files=[image("a.png", png_bytes(1))])
    assert response.status_code == 403
    other = CampaignFactory.create()
    response = upload(client_for(requester), other.pk, files=[image("a.png", png_bytes(1))])
    assert response.status_code == 403
    assert not Item.objects.exists()
