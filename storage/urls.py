from django.urls import path

from . import apis

urlpatterns = [
    path("pins/", apis.PinListApi.as_view(), name="storage-pins"),
]
