from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from labeling.media import MediaApi

from .error_views import api_not_found

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
    # Anything else under these prefixes (a path no endpoint has, an id that is not a number)
    # is a JSON 404 in the API's error shape, not Django's HTML page.
    re_path(r"^(api|ipfs)/", api_not_found),
    path("", include("frontend.urls")),
]

handler400 = "config.error_views.bad_request"
handler404 = "config.error_views.not_found"
