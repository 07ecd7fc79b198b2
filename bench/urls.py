"""The bench server's URLconf: the production URLs plus ``POST /bench/floor``
(``bench.floor``). ``bench/wsgi.py`` makes it ``ROOT_URLCONF`` only when
``BENCH_FLOOR=1``; production never loads it."""

from django.urls import path

from bench.floor import floor_view
from betting_site.urls import urlpatterns as production_urlpatterns

urlpatterns = [
    path("bench/floor", floor_view, name="bench-floor"),
    *production_urlpatterns,
]
