"""The server's WSGI application, with the bench counters (``bench.instrument``)
when ``BENCH_STATS_DIR`` is set; otherwise exactly ``betting_site.wsgi``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "betting_site.settings")

from bench import instrument

instrument.install()

from betting_site.wsgi import application as _django_application  # noqa: E402

application = instrument.wrap(_django_application)
