from django.urls import path

from . import apis

urlpatterns = [
    path("", apis.DatasetListApi.as_view(), name="dataset-list"),
    path("<int:campaign_id>/export", apis.DatasetExportApi.as_view(), name="dataset-export"),
]
