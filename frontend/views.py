"""Server-rendered pages. The labeling page talks to the same JSON API as every other client."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling import selectors as labeling_selectors


class LoginView(auth_views.LoginView):
    template_name = "frontend/login.html"
    redirect_authenticated_user = True


@login_required
def home(request: HttpRequest) -> HttpResponse:
    campaigns = labeling_selectors.campaign_list_for(user=request.user)[:100]  # type: ignore[arg-type]
    return render(request, "frontend/home.html", {"campaigns": campaigns})


@login_required
def label(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = labeling_selectors.campaign_get_for(user=request.user, campaign_id=campaign_id)  # type: ignore[arg-type]
    return render(request, "frontend/label.html", {"campaign": campaign, "classes": campaign.label_schema["classes"]})
