from django.urls import re_path

from betting import apis

urlpatterns = [
    re_path(
        r"^recommended/?$", apis.BetRecommendedApi.as_view(), name="bets-recommended"
    ),
]
