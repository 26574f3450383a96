from django.urls import path

from . import apis

urlpatterns = [
    path(
        "items/<int:item_id>/explanation/",
        apis.ItemExplanationApi.as_view(),
        name="quality-item-explanation",
    ),
    path(
        "campaigns/<int:campaign_id>/me/",
        apis.WorkerStatusApi.as_view(),
        name="quality-worker-status",
    ),
]
