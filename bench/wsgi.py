"""The server's WSGI application, with the bench counters (``bench.instrument``)
when ``BENCH_STATS_DIR`` is set; otherwise exactly ``betting_site.wsgi``.

With ``BENCH_FLOOR=1`` (set by the bench's stack only) the URLconf is
``bench.urls``: the production URLs plus the bench-only ``POST /bench/floor``
(``bench.floor``). The production settings and URLconf are not changed."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")

from bench import instrument

instrument.install()

if os.environ.get("BENCH_FLOOR") == "1":
    from django.conf import settings

    settings.ROOT_URLCONF = "bench.urls"

from betting_site.wsgi import application as _django_application  # noqa: E402

application = instrument.wrap(_django_application)
