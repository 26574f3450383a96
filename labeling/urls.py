from django.urls import path

from . import apis

urlpatterns = [
    path("campaigns/", apis.CampaignListCreateApi.as_view(), name="campaign-list"),
    path("campaigns/<int:campaign_id>/", apis.CampaignDetailApi.as_view(), name="campaign-detail"),
    path("campaigns/<int:campaign_id>/items/", apis.ItemUploadApi.as_view(), name="campaign-items"),
    path(
        "campaigns/<int:campaign_id>/imports/",
        apis.ImportCreateApi.as_view(),
        name="campaign-imports",
    ),
    path("imports/<int:import_id>/", apis.ImportDetailApi.as_view(), name="import-detail"),
    path(
        "imports/<int:import_id>/rejected/",
        apis.ImportRejectedApi.as_view(),
        name="import-rejected",
    ),
    path("campaigns/<int:campaign_id>/next/", apis.NextTaskApi.as_view(), name="campaign-next"),
    path(
        "items/<int:item_id>/annotations/",
        apis.AnnotationCreateApi.as_view(),
        name="item-annotations",
    ),
]
