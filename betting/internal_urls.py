from django.urls import re_path

from betting import internal_apis as apis

urlpatterns = [
    re_path(r"^auth/?$", apis.ProviderAuthApi.as_view(), name="internal-auth"),
    re_path(r"^bet/?$", apis.ProviderBetApi.as_view(), name="internal-bet"),
    re_path(r"^win/?$", apis.ProviderWinApi.as_view(), name="internal-win"),
    re_path(r"^balance/?$", apis.ProviderBalanceApi.as_view(), name="internal-balance"),
    re_path(
        r"^check-balance/?$",
        apis.ProviderBalanceCheckApi.as_view(),
        name="internal-check-balance",
    ),
]
