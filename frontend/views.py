"""Server-rendered pages. Their scripts talk to the same JSON API as every other client."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import User
from core.errors import NotFound, PermissionDenied
from labeling import selectors as labeling_selectors
from labeling.models import Campaign, TaskType

EN_DASH = "\u2013"
# Reward amounts are stored in token base units; the page also shows them in whole tokens,
# assuming an ERC-20 with the usual 18 decimals (KyodoToken's).
TOKEN_DECIMALS = 18
RECENT_IMPORTS = 10


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    redirect_authenticated_user = True


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # guaranteed by @login_required
    return request.user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    campaigns = list(labeling_selectors.campaign_list_for(user=user)[:100])
    managed = {
        c.pk for c in campaigns if labeling_selectors.campaign_can_manage(user=user, campaign=c)
    }
    return render(request, "frontend/home.html", {"campaigns": campaigns, "managed": managed})


def _campaign_for_page(*, user: User, campaign_id: int) -> Campaign:
    # The selector raises API errors; a page answers with Django's 404 / 403 instead of a 500.
    try:
        return labeling_selectors.campaign_get_for(user=user, campaign_id=campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from exc


def _campaign_to_manage(*, user: User, campaign_id: int) -> Campaign:
    # Who may manage: labeling's one rule (campaign_check_can_manage), with the page's errors.
    try:
        return labeling_selectors.campaign_get_to_manage(user=user, campaign_id=campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from exc


def token_amount(units: int, decimals: int = TOKEN_DECIMALS) -> str:
    """Base units as whole tokens, exactly (integers only, no float): 10**16 -> "0.01"."""
    whole, fraction = divmod(units, 10**decimals)
    digits = f"{fraction:0{decimals}d}".rstrip("0")
    return f"{whole:,}.{digits}" if digits else f"{whole:,}"


def hotkey_hint(classes: list[dict[str, Any]]) -> str:
    """The page's hint: a range when the hotkeys are 1..n in order, else the keys; "" if none."""
    keys = [c["hotkey"] for c in classes if c.get("hotkey")]
    if not keys:
        return ""
    if len(keys) > 1 and keys == [str(n) for n in range(1, len(keys) + 1)]:
        return f"{keys[0]}{EN_DASH}{keys[-1]}"
    return " ".join(keys)


@login_required
def label(request: HttpRequest, campaign_id: int) -> HttpResponse:
    user = _user(request)
    campaign = _campaign_for_page(user=user, campaign_id=campaign_id)
    classes = campaign.label_schema["classes"]
    # Only what the page needs: the schema and counters. Never items, and so never a gold label.
    context = {
        "campaign": campaign,
        "classes": classes,
        "hotkeys": hotkey_hint(classes),
        "labeled": labeling_selectors.worker_progress(campaign=campaign, worker=user)["labeled"],
    }
    return render(request, "frontend/label.html", context)


def _upload_hint(task_type: str) -> str:
    if task_type in (TaskType.TEXT_CLASSIFICATION, TaskType.TEXT_SPANS):
        return "One CSV (a text column) or JSONL of texts, or a JSONL of existing CIDs."
    return "Images (several at once), or one zip of images, or one JSONL of existing CIDs."


def _progress_context(progress: dict[str, int]) -> dict[str, Any]:
    """The counters as the page shows them; campaign.js renders the same from the API."""
    items, completed = progress["items"], progress["completed"]
    percent = 100 * completed / items if items else 0.0
    return {
        "raw": progress,
        "items": f"{items:,}",
        "completed": f"{completed:,}",
        "open": f"{items - completed:,}",
        "labels": f"{progress['labels']:,}",
        # One decimal, never rounded up to 100 before the last item is done (as campaign.js).
        "percent": f"{int(percent * 10) / 10:g}",
    }


@login_required
def campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    """The requester's view of a campaign: its settings, progress and uploads. Owner or staff."""
    campaign = _campaign_to_manage(user=_user(request), campaign_id=campaign_id)
    reward = campaign.reward_per_label or 0  # never null in the table; typed as the field
    budget = campaign.budget
    affordable = labeling_selectors.campaign_labels_affordable(campaign=campaign)
    is_text = campaign.task_type in (TaskType.TEXT_CLASSIFICATION, TaskType.TEXT_SPANS)
    # Never items: the page shows counters, so no gold label can reach it.
    context = {
        "campaign": campaign,
        "classes": campaign.label_schema["classes"],
        "progress": _progress_context(labeling_selectors.campaign_progress(campaign=campaign)),
        "reward_tokens": token_amount(reward),
        "budget_tokens": None if budget is None else token_amount(budget),
        # A budget that pays nothing per label has no label count to show.
        "budget_labels": affordable if reward else None,
        "target_percent": f"{campaign.target_confidence * 100:.4g}",
        "gold_percent": f"{campaign.gold_ratio * 100:.4g}",
        "is_text": is_text,
        "accept": ".csv,.jsonl,.ndjson,.txt" if is_text else "image/*,.zip,.jsonl,.ndjson",
        "upload_hint": _upload_hint(campaign.task_type),
        "imports": labeling_selectors.imports_of(campaign=campaign)[:RECENT_IMPORTS],
        "recent": RECENT_IMPORTS,
        "max_files": settings.DATA_UPLOAD_MAX_NUMBER_FILES,
    }
    return render(request, "frontend/campaign.html", context)
