"""Bounding boxes: value validation in labeling.schema, consensus per item, verdicts."""

from __future__ import annotations

import pytest

from core.errors import ApplicationError
from labeling.models import Item, ItemStatus, TaskType
from labeling.schema import validate_value
from labeling.services import annotation_submit, task_lease_next
from quality import selectors, services
from quality.models import ItemConsensus

from ..labeling.factories import AnnotationFactory
from .helpers import text_campaign, workers

SCHEMA = {"classes": [{"name": "cat"}, {"name": "dog"}]}


def box(x: object = 0.1, y: object = 0.2, w: object = 0.3, h: object = 0.4, label: str = "cat"):
    return {"x": x, "y": y, "w": w, "h": h, "label": label}


def check(boxes: object) -> dict:
    return validate_value(task_type=TaskType.IMAGE_BBOX, schema=SCHEMA, boxes=boxes)


def test_valid_boxes_are_stored_as_fractions() -> None:
    assert check([box(), box(0.5, 0.5, 0.5, 0.5, "dog")]) == {
        "boxes": [box(), box(0.5, 0.5, 0.5, 0.5, "dog")]
    }
    assert check([]) == {"boxes": []}  # nothing to box
    assert check([box(x=1 / 3)])["boxes"][0]["x"] == 0.333333
    # Until the API passes `boxes`, a list sent as `label` is read as boxes.
    assert validate_value(task_type=TaskType.IMAGE_BBOX, schema=SCHEMA, label=[box()]) == {
        "boxes": [box()]
    }


@pytest.mark.parametrize(
    ("boxes", "needle"),
    [
        ("cat", "list"),
        ([box() | {"z": 1}], "exactly the keys"),
        ([{"x": 0, "y": 0, "w": 1}], "exactly the keys"),
        ([box(x=-0.1)], "between 0 and 1"),
        ([box(w=1.5)], "between 0 and 1"),
        ([box(x=float("nan"))], "between 0 and 1"),
        ([box(x=True)], "must be a number"),
        ([box(x="0.1")], "must be a number"),
        ([box(w=0)], "positive"),
        ([box(x=0.8, w=0.3)], "past the image edge"),
        ([box(label="horse")], "unknown class"),
        ([box()] * 201, "at most"),
    ],
)
def test_invalid_boxes_name_the_problem(boxes: object, needle: str) -> None:
    with pytest.raises(ApplicationError) as raised:
        check(boxes)
    assert needle in raised.value.message


def test_classification_and_boxes_do_not_mix() -> None:
    with pytest.raises(ApplicationError, match="not `label`"):
        validate_value(task_type=TaskType.IMAGE_BBOX, schema=SCHEMA, label="cat", boxes=[])
    with pytest.raises(ApplicationError, match="not `boxes`"):
        validate_value(task_type=TaskType.IMAGE_CLASSIFICATION, schema=SCHEMA, boxes=[box()])


@pytest.mark.django_db
def test_box_annotations_are_fused_closed_and_judged() -> None:
    campaign, (item,) = text_campaign(
        classes=("cat", "dog"),
        n_items=1,
        task_type=TaskType.IMAGE_BBOX,
        min_labels=2,
        max_labels=4,
    )
    alice, bob, carol = workers(3)
    shifted = box(x=0.11, y=0.21)
    for worker, boxes in ((alice, [box()]), (bob, [shifted, box(0.7, 0.7, 0.2, 0.2, "dog")])):
        assignment = task_lease_next(campaign=campaign, worker=worker)
        assert assignment is not None
        assert assignment.item_id == item.pk
        annotation_submit(worker=worker, item_id=item.pk, label=boxes)
        services.item_consensus_update(item_id=item.pk)
    decided = ItemConsensus.objects.get(item_id=item.pk)
    # Bob's extra dog has half the weight behind it: undecided, so the item stays open.
    assert decided.method == "weighted_box_fusion"
    assert decided.confidence == pytest.approx(0.5)
    assert not decided.is_complete
    task_lease_next(campaign=campaign, worker=carol)
    annotation_submit(worker=carol, item_id=item.pk, label=[box(x=0.09)])
    services.item_consensus_update(item_id=item.pk)
    decided = ItemConsensus.objects.get(item_id=item.pk)
    kept = [b for b in decided.votes["boxes"] if b["kept"]]
    assert len(kept) == 1
    assert kept[0]["label"] == "cat"
    assert kept[0]["x"] == pytest.approx(0.1, abs=0.01)
    assert decided.label == "1 boxes"
    assert decided.confidence == pytest.approx(2 / 3)
    assert not decided.is_complete  # 2/3 < 0.95 and 3 < max_labels
    verdicts = selectors.annotation_verdicts(item_id=item.pk)
    assert set(verdicts.values()) == {(False, "item_open")}
    Item.objects.filter(pk=item.pk).update(status=ItemStatus.COMPLETE)
    ItemConsensus.objects.filter(item_id=item.pk).update(is_complete=True)
    verdicts = selectors.annotation_verdicts(item_id=item.pk)
    by_worker = {a.worker_id: verdicts[a.pk] for a in item.annotations.all()}
    assert by_worker[alice.pk] == (True, "boxes_agree")
    assert by_worker[carol.pk] == (True, "boxes_agree")
    assert by_worker[bob.pk] == (True, "boxes_agree")  # F1 = 2 * 1 / (2 + 1) = 0.67
    # The campaign refit re-weights contributors by their box F1.
    summary = services.campaign_refit(campaign_id=campaign.pk)
    assert summary == {"workers": 3, "open_items": 0, "suspended": 0}


@pytest.mark.django_db
def test_the_annotation_api_accepts_boxes() -> None:
    from ..conftest import client_for

    campaign, (item,) = text_campaign(
        classes=("cat", "dog"), n_items=1, task_type=TaskType.IMAGE_BBOX
    )
    (worker,) = workers(1)
    client = client_for(worker)
    assert client.get(f"/api/campaigns/{campaign.pk}/next/").json()["item_id"] == item.pk
    bad = client.post(f"/api/items/{item.pk}/annotations/", {"label": [box(w=2)]}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_boxes"
    # Today the boxes travel as `label`; `{"boxes": [...]}` once the API passes it through.
    done = client.post(f"/api/items/{item.pk}/annotations/", {"label": [box()]}, format="json")
    assert done.status_code == 201, done.content
    assert item.annotations.get().value == {"boxes": [box()]}


@pytest.mark.django_db
def test_box_refit_suspends_a_contributor_whose_boxes_nobody_else_draws() -> None:
    from labeling.models import WorkerBlock
    from quality.models import WorkerSkill

    campaign, items = text_campaign(
        classes=("cat", "dog"),
        n_items=12,
        task_type=TaskType.IMAGE_BBOX,
        min_labels=5,
        max_labels=5,
    )
    honest = workers(3)
    (spammer,) = workers(1)
    for i, item in enumerate(items):
        for n, worker in enumerate([*honest, spammer]):
            value = (
                [box(x=0.6, y=0.05, w=0.1, h=0.1, label="dog")]
                if worker == spammer
                else [box(x=0.1 + 0.005 * n, y=0.2 + 0.001 * i)]
            )
            AnnotationFactory.create(item=item, worker=worker, value={"boxes": value}, label="")
    services.campaign_refit(campaign_id=campaign.pk)
    status = dict(
        WorkerSkill.objects.filter(campaign_id=campaign.pk).values_list("worker_id", "status")
    )
    assert status[spammer.pk] == "suspended"
    assert all(status[w.pk] != "suspended" for w in honest)
    assert WorkerBlock.objects.filter(campaign_id=campaign.pk, worker_id=spammer.pk).exists()
