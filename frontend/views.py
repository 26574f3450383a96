"""Server-rendered pages. The labeling page talks to the same JSON API as every other client."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import User
from core.errors import NotFound, PermissionDenied
from labeling import selectors as labeling_selectors
from labeling.models import Campaign

EN_DASH = "\u2013"


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    redirect_authenticated_user = True


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)  # guaranteed by @login_required
    return request.user


@login_required
def home(request: HttpRequest) -> HttpResponse:
    campaigns = labeling_selectors.campaign_list_for(user=_user(request))[:100]
    return render(request, "frontend/home.html", {"campaigns": campaigns})


def _campaign_for_page(*, user: User, campaign_id: int) -> Campaign:
    # The selector raises API errors; a page answers with Django's 404 / 403 instead of a 500.
    try:
        return labeling_selectors.campaign_get_for(user=user, campaign_id=campaign_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except PermissionDenied as exc:
        raise DjangoPermissionDenied(exc.message) from exc


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
