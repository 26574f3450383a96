from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labeling.media import MediaApi

api: list[URLPattern | URLResolver] = [
    path("auth/", include("accounts.urls")),
    path("", include("labeling.urls")),
    path("datasets/", include("datasets.urls")),
    path("rewards/", include("rewards.urls")),
    path("quality/", include("quality.urls")),
    path("storage/", include("storage.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api)),
    path("ipfs/<str:cid>", MediaApi.as_view(), name="ipfs-blob"),
    path("", include("frontend.urls")),
]
