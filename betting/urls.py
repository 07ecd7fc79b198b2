from django.urls import re_path

from betting import apis

urlpatterns = [
    re_path(
        r"^recommended/?$", apis.BetRecommendedApi.as_view(), name="bets-recommended"
    ),
    re_path(
        r"^result/(?P<bet_id>[0-9]{1,18})/?$",
        apis.BetResultApi.as_view(),
        name="bets-result",
    ),
    re_path(r"^(?P<bet_id>[0-9]{1,18})/?$", apis.BetDetailApi.as_view(), name="bet"),
]
