from django.urls import path

from . import apis

urlpatterns = [
    path("", apis.DatasetListApi.as_view(), name="dataset-list"),
    path("<int:campaign_id>/export", apis.DatasetExportApi.as_view(), name="dataset-export"),
    path("<int:campaign_id>/exports/", apis.ExportCreateApi.as_view(), name="export-create"),
    path("exports/<int:export_id>/", apis.ExportDetailApi.as_view(), name="export-detail"),
    path(
        "exports/<int:export_id>/download", apis.ExportDownloadApi.as_view(), name="export-download"
    ),
]
