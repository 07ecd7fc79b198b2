"""gunicorn settings for the bench: the production ``gunicorn.conf.py`` unchanged
(every value still comes from the same environment variables), plus a
``worker_exit`` hook that writes a worker's bench counters before it exits
(``max_requests`` recycles workers during a run)."""

import runpy
from pathlib import Path

_PRODUCTION = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
globals().update(
    {
        name: value
        for name, value in runpy.run_path(str(_PRODUCTION)).items()
        if not name.startswith("__")
    }
)


def worker_exit(server, worker):
    try:
        from bench import instrument

        instrument.flush()
    except Exception:  # noqa: S110 - a counter must never break a worker's exit
        pass
