"""Reads of the quality engine: for its API, and for labeling (next-task), rewards, datasets."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from accounts.models import User
from core.errors import NotFound, PermissionDenied
from labeling import selectors as labeling_selectors
from labeling import services as labeling_services
from labeling.models import ItemStatus, TaskType

from .models import CampaignQuality, ItemConsensus, WorkerSkill, WorkerStatus

# An annotation of a bounding-box item is accepted when its boxes score at least this F1 against
# the consensus boxes (quality.aggregation.boxes): most of its boxes match and it misses few.
BOX_F1_ACCEPT = 0.5


def item_consensus(*, item_id: int) -> ItemConsensus | None:
    return ItemConsensus.objects.filter(item_id=item_id).first()


def consensus_for_items(*, item_ids: Iterable[int]) -> dict[int, ItemConsensus]:
    return {c.item_id: c for c in ItemConsensus.objects.filter(item_id__in=list(item_ids))}


def completed_consensus_after(*, after_id: int, limit: int) -> list[ItemConsensus]:
    """Completed decisions in id order, for sweeps that must not miss a closed item."""
    return list(
        ItemConsensus.objects.filter(is_complete=True, id__gt=after_id).order_by("id")[:limit]
    )


# --- workers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerQualityStatus:
    worker_id: int
    campaign_id: int
    status: str  # WorkerStatus: probation, trusted, suspended
    reason: str  # why, when suspended; shown to the contributor
    may_label: bool
    accuracy: float | None  # P(answer right), from the last refit; None before any
    answers: int
    gold_seen: int
    gold_passed: int
    gold_accuracy: float | None  # (passed + 1) / (seen + 2): Laplace-smoothed
    spam_score: float | None


def worker_status(*, worker_id: int, campaign_id: int) -> WorkerQualityStatus:
    """A contributor's standing in a campaign (probation until the first refit has seen them)."""
    skill = WorkerSkill.objects.filter(worker_id=worker_id, campaign_id=campaign_id).first()
    if skill is None:
        return WorkerQualityStatus(
            worker_id, campaign_id, WorkerStatus.PROBATION, "", True, None, 0, 0, 0, None, None
        )
    return WorkerQualityStatus(
        worker_id=worker_id,
        campaign_id=campaign_id,
        status=skill.status,
        reason=skill.status_reason,
        may_label=skill.status != WorkerStatus.SUSPENDED,
        accuracy=skill.accuracy if skill.answers else None,
        answers=skill.answers,
        gold_seen=skill.gold_seen,
        gold_passed=skill.gold_passed,
        gold_accuracy=(skill.gold_passed + 1) / (skill.gold_seen + 2) if skill.gold_seen else None,
        spam_score=skill.spam_score if skill.answers else None,
    )


def worker_status_for(*, user: User, campaign_id: int) -> WorkerQualityStatus:
    """The caller's own standing in a campaign it may see (404/403 otherwise)."""
    labeling_selectors.campaign_get_for(user=user, campaign_id=campaign_id)
    return worker_status(worker_id=user.pk, campaign_id=campaign_id)


def worker_may_label(*, worker_id: int, campaign_id: int) -> bool:
    """False for a worker suspended in this campaign. One indexed lookup: fit for next-task."""
    return not WorkerSkill.objects.filter(
        worker_id=worker_id, campaign_id=campaign_id, status=WorkerStatus.SUSPENDED
    ).exists()


def worker_check_may_label(*, worker_id: int, campaign_id: int) -> None:
    """Raise 403 `worker_suspended` (with the reason) for a suspended worker; else nothing."""
    if worker_may_label(worker_id=worker_id, campaign_id=campaign_id):
        return
    reason = (
        WorkerSkill.objects.filter(worker_id=worker_id, campaign_id=campaign_id)
        .values_list("status_reason", flat=True)
        .first()
    )
    raise labeling_services.worker_blocked_error(campaign_id=campaign_id, reason=reason or "")


def suspended_workers(*, campaign_id: int) -> list[int]:
    """Ids of the campaign's suspended workers (their pending rewards are to be rejected)."""
    return list(
        WorkerSkill.objects.filter(campaign_id=campaign_id, status=WorkerStatus.SUSPENDED)
        .order_by("worker_id")
        .values_list("worker_id", flat=True)
    )


def worker_statuses(*, campaign_id: int, worker_ids: Iterable[int]) -> dict[int, str]:
    """Status of each of these workers in the campaign (probation when never refitted)."""
    ids = list(worker_ids)
    found = dict(
        WorkerSkill.objects.filter(campaign_id=campaign_id, worker_id__in=ids).values_list(
            "worker_id", "status"
        )
    )
    return {w: found.get(w, WorkerStatus.PROBATION) for w in ids}


def campaign_calibrated(*, campaign_id: int) -> bool:
    """Whether the campaign's refits can tell workers apart yet (docs/quality.md)."""
    return bool(CampaignQuality.objects.filter(campaign_id=campaign_id, calibrated=True).exists())


# --- rewards ----------------------------------------------------------------------------------


def annotation_verdicts(
    *, item_id: int, annotation_ids: Iterable[int] | None = None
) -> dict[int, tuple[bool, str]]:
    """`annotations_verdicts` of one item."""
    return annotations_verdicts(item_ids=[item_id], annotation_ids=annotation_ids)


def annotations_verdicts(
    *, item_ids: Iterable[int], annotation_ids: Iterable[int] | None = None
) -> dict[int, tuple[bool, str]]:
    """For each annotation of the items (or only `annotation_ids`): (accepted, reason). Reasons:

    - `item_open`: not decided yet (no reward either way). Gold items never close, and their
      annotations are judged at once against the known label;
    - `worker_suspended`: its worker is suspended in this campaign;
    - `agrees` / `disagrees`: with the consensus label; `agrees_gold` / `disagrees_gold`: with the
      known label of a gold item; `boxes_agree` / `boxes_disagree`: F1 >= BOX_F1_ACCEPT or not;
    - `worker_unproven`: it agrees, but in a calibrated campaign (or one with gold items) its
      worker is still on probation (not yet 90 % sure to be informative and right more often
      than chance). Not final: hold the reward as pending, pay it once `worker_statuses` says
      trusted, reject it if suspended (docs/quality.md, "Rewards").
    """
    ids = list(item_ids)
    items = labeling_selectors.items_with_campaign(item_ids=ids)
    rows = labeling_selectors.items_annotations(item_ids=ids)
    if annotation_ids is not None:
        rows = rows.filter(pk__in=list(annotation_ids))
    annotations = list(rows.only("id", "item_id", "worker_id", "label"))
    consensus = consensus_for_items(item_ids=ids)
    campaign_ids = {item.campaign_id for item in items.values()}
    statuses = dict(
        ((c, w), status)
        for c, w, status in WorkerSkill.objects.filter(
            campaign_id__in=campaign_ids, worker_id__in={a.worker_id for a in annotations}
        ).values_list("campaign_id", "worker_id", "status")
    )
    calibrated = set(
        CampaignQuality.objects.filter(campaign_id__in=campaign_ids, calibrated=True).values_list(
            "campaign_id", flat=True
        )
    )
    verdicts: dict[int, tuple[bool, str]] = {}
    for annotation in annotations:
        item = items[annotation.item_id]
        campaign = item.campaign
        decision = consensus.get(item.pk)
        gold = bool(item.gold_label) and item.gold_label in campaign.class_names
        decided = decision is not None and (
            decision.is_complete or item.status == ItemStatus.COMPLETE
        )
        if decision is None or not (decided or gold):
            verdicts[annotation.pk] = (False, "item_open")
            continue
        status = statuses.get((campaign.pk, annotation.worker_id), WorkerStatus.PROBATION)
        if status == WorkerStatus.SUSPENDED:
            verdicts[annotation.pk] = (False, "worker_suspended")
            continue
        if campaign.task_type == TaskType.IMAGE_BBOX:
            f1 = {a["worker_id"]: a["f1"] for a in decision.votes.get("annotators", [])}
            good = f1.get(annotation.worker_id, 0.0) >= BOX_F1_ACCEPT
            verdict = (good, "boxes_agree" if good else "boxes_disagree")
        elif gold:
            good = annotation.label == item.gold_label
            verdict = (good, "agrees_gold" if good else "disagrees_gold")
        else:
            good = annotation.label == decision.label
            verdict = (good, "agrees" if good else "disagrees")
        # Workers are judged once the campaign is calibrated, or from the start when it serves
        # gold items (their gold answers prove or condemn them before any fit can): until then
        # an agreeing label is all a campaign can go by.
        probation = campaign.gold_ratio > 0 or campaign.pk in calibrated
        if good and probation and status != WorkerStatus.TRUSTED:
            verdict = (False, "worker_unproven")
        verdicts[annotation.pk] = verdict
    return verdicts


# --- explanations -----------------------------------------------------------------------------


def item_explanation_for(*, user: User, item_id: int) -> dict[str, Any]:
    """How an item's label was decided, as the explanation API shows it to this user.

    Who may manage the campaign (labeling's one rule: staff, or its owner while a requester) sees
    any decided item with worker ids; anyone else who may see the campaign sees completed items
    only, with other annotators numbered in labeling order ("annotator 1", ...) and their own
    label marked `you`.
    """
    item = labeling_selectors.item_get(item_id=item_id)
    campaign = labeling_selectors.campaign_get_for(user=user, campaign_id=item.campaign_id)
    privileged = labeling_selectors.campaign_can_manage(user=user, campaign=campaign)
    consensus = item_consensus(item_id=item_id)
    if not privileged and (consensus is None or not consensus.is_complete):
        raise PermissionDenied(
            "explanations are shown once an item is completed", code="item_not_completed"
        )
    if consensus is None or not consensus.method:
        raise NotFound(f"item {item_id} has no decision yet", code="no_decision")
    votes = consensus.votes or {}
    annotators = []
    for number, entry in enumerate(votes.get("annotators", []), start=1):
        shown = {k: v for k, v in entry.items() if k != "worker_id"}
        shown["annotator"] = f"annotator {number}"
        shown["you"] = entry.get("worker_id") == user.pk
        if privileged:
            shown["worker_id"] = entry.get("worker_id")
        annotators.append(shown)
    posterior = dict(zip(votes.get("classes", []), votes.get("posterior", []), strict=False))
    return {
        "item_id": item_id,
        "campaign_id": item.campaign_id,
        "task_type": campaign.task_type,
        "label": consensus.label,
        "confidence": round(consensus.confidence, 6),
        "method": consensus.method,
        "is_complete": consensus.is_complete,
        "n_labels": consensus.n_labels,
        "posterior": posterior,
        "runner_up": votes.get("runner_up"),
        "prior_weight": votes.get("prior_weight"),
        "temperature": votes.get("temperature"),
        "gold": bool(votes.get("gold", False)),
        "annotators": annotators,
        "model": votes.get("model"),
        "boxes": votes.get("boxes"),
    }
