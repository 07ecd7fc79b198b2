"""System checks that refuse an unsafe production configuration.

Missing secrets already stop the settings module from loading; these catch what
is legal Python but wrong to deploy (run by ``manage.py check --deploy``).
"""

import runpy
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_production_settings(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if settings.DEBUG:
        return problems
    if "*" in settings.ALLOWED_HOSTS:
        problems.append(
            Warning(
                "ALLOWED_HOSTS contains '*'",
                hint="List the host names the server answers for.",
                id="betting_site.W001",
            )
        )
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        problems.append(
            Warning(
                "SQLite is the embedded default, not a production database",
                hint="Set DATABASE_URL to a PostgreSQL database.",
                id="betting_site.W002",
            )
        )
    if not settings.REDIS_URL:
        problems.append(
            Warning(
                "REDIS_URL is unset: the cache, rate limits and breaker state are "
                "per process",
                hint="Set REDIS_URL so that every worker shares them.",
                id="betting_site.W003",
            )
        )
    plain_origins = [
        origin
        for origin in getattr(settings, "CORS_ALLOWED_ORIGINS", [])
        if not origin.startswith("https://")
    ]
    if plain_origins:
        problems.append(
            Warning(
                "CLIENT_URL allows origins that are not HTTPS: "
                + ", ".join(plain_origins),
                hint="A production client is served over HTTPS: list https:// "
                "origins only.",
                id="betting_site.W004",
            )
        )
    if settings.ADMIN_TOKEN is not None and len(settings.ADMIN_TOKEN) < 32:
        problems.append(
            Error(
                "ADMIN_TOKEN is shorter than 32 characters",
                hint="Use a long random value, or leave it unset.",
                id="betting_site.E001",
            )
        )
    return problems


@register(deploy=True)
def check_graceful_timeout(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """gunicorn's ``graceful_timeout`` (as ``gunicorn.conf.py`` reads it from this
    environment) must cover the longest bet: on SIGTERM a worker waits that long
    for its running requests, then is killed, and a bet killed between sending
    POST /bet and booking its answer is left ``unknown``."""
    from betting.services.placement import bet_longest

    conf_file = settings.BASE_DIR / "gunicorn.conf.py"
    if not conf_file.exists():
        return []
    graceful = float(runpy.run_path(str(conf_file)).get("graceful_timeout", 30))
    longest = bet_longest()
    if graceful >= longest:
        return []
    return [
        Error(
            f"gunicorn's graceful_timeout ({graceful:g} s) is shorter than the "
            f"longest bet ({longest:g} s: the lease wait and four provider calls "
            "at their timeouts, with their retries)",
            hint=f"Set GUNICORN_GRACEFUL_TIMEOUT to at least {longest:g}, or lower "
            "EXTERNAL_API_*_TIMEOUT or PROVIDER_*_RETRIES.",
            id="betting_site.E002",
        )
    ]
