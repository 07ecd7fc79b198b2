from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from betting.apis import BalanceApi, BetListCreateApi
from betting_site.api.views import HealthApi, HealthLiveApi
from betting_site.metrics_view import metrics_view
from wallet.apis import TransactionListApi

admin.site.site_header = "Betting back office"
admin.site.site_title = "Betting back office"

# API paths are served with and without a trailing slash (never redirected); any
# unknown path under /api/ is answered 404 in the envelope by the middleware.
api_patterns: list[URLPattern | URLResolver] = [
    path("auth/", include("accounts.urls")),
    re_path(r"^bets/?$", BetListCreateApi.as_view(), name="bets"),
    path("bets/", include("betting.urls")),
    path("internal/", include("betting.internal_urls")),
    re_path(r"^balance/?$", BalanceApi.as_view(), name="balance"),
    re_path(r"^transactions/?$", TransactionListApi.as_view(), name="transactions"),
    # OpenAPI: the document (YAML, or JSON with ?format=json) and Swagger UI from
    # the sidecar's local static files; the split view serves its init script from
    # /api/docs?script, so the page runs under the strict script-src 'self'.
    re_path(r"^schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(
        r"^docs/?$",
        SpectacularSwaggerSplitView.as_view(url_name="schema"),
        name="docs",
    ),
    re_path(r"^health/?$", HealthApi.as_view(), name="health"),
    re_path(r"^health/live/?$", HealthLiveApi.as_view(), name="health-live"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    # Prometheus (METRICS_TOKEN optional); outside /api/: no envelope middleware,
    # no rate limit, no API log.
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
]
