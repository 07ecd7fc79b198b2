"""Settings for the betting integration server.

One module, read from the environment (and ``.env`` when present) through
django-environ. The embedded defaults (SQLite, local-memory cache, dev-only keys when
``DEBUG=1``) make ``make run`` work with nothing else installed; production differs
only by environment variables. ``.env.example`` lists every variable.
"""

from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from betting_site import __version__
from betting_site.durations import parse_duration

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
VERSION = __version__

# --- Secrets ---------------------------------------------------------------------
# Development values are used only with DEBUG=1. With DEBUG=0 the settings refuse
# to load without real ones, so neither gunicorn nor manage.py can start unsafely.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0000"
_DEV_JWT_SIGNING_KEY = "dev-only-insecure-jwt-signing-key-do-not-use-in-production"
_DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktaW5zZWN1cmUtZmVybmV0LWtleS0wMDA="
_MIN_SECRET_LENGTH = 32


def _required_secret(name: str, dev_value: str) -> str:
    value = env.str(name, default="")
    if not value:
        if DEBUG:
            return dev_value
        raise ImproperlyConfigured(f"{name} must be set when DEBUG=0")
    if not DEBUG and (value == dev_value or len(value) < _MIN_SECRET_LENGTH):
        raise ImproperlyConfigured(
            f"{name} must be a random value of at least {_MIN_SECRET_LENGTH} "
            "characters when DEBUG=0"
        )
    return value


def _fernet_keys() -> list[str]:
    keys = env.list("FIELD_ENCRYPTION_KEYS", default=[])
    keys = [key.strip() for key in keys if key.strip()]
    if not keys:
        if DEBUG:
            return [_DEV_FIELD_ENCRYPTION_KEY]
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DEBUG=0")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # The key itself is never echoed: only its position in the list.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    if not DEBUG and _DEV_FIELD_ENCRYPTION_KEY in keys:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must not contain the development key when DEBUG=0"
        )
    return keys


def _duration(name: str, default: str):
    try:
        return parse_duration(env.str(name, default=default))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


SECRET_KEY = _required_secret("DJANGO_SECRET_KEY", _DEV_SECRET_KEY)
JWT_SIGNING_KEY = _required_secret("JWT_SIGNING_KEY", _DEV_JWT_SIGNING_KEY)
if JWT_SIGNING_KEY == SECRET_KEY:
    raise ImproperlyConfigured("JWT_SIGNING_KEY must differ from DJANGO_SECRET_KEY")
FIELD_ENCRYPTION_KEYS = _fernet_keys()
ADMIN_TOKEN = env.str("ADMIN_TOKEN", default="") or None

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

# --- Applications ----------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    # Its date_hierarchy tag replaces the admin's: no SELECT DISTINCT over a large
    # table to draw the date links (ModelAdmin.date_hierarchy_drilldown = False).
    "django_admin_lightweight_date_hierarchy",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "betting_site.apps.BettingSiteConfig",
    "accounts",
    "wallet",
    "betting",
    "provider",
    "auditlog",
]

MIDDLEWARE = [
    # Outermost: every response, including errors raised by later middleware,
    # carries the request id, and every error under /api/ is the envelope.
    "betting_site.api.middleware.RequestIdMiddleware",
    # 503, not 500, whichever layer found the database unreachable.
    "betting_site.api.middleware.DatabaseUnavailableMiddleware",
    # One line per request (user, status, duration); slow ones as warnings.
    "betting_site.api.middleware.RequestLogMiddleware",
    # Records every mutating /api/ request with its final (enveloped) response.
    "auditlog.middleware.InboundApiLogMiddleware",
    # Outside the envelope, so that an envelope replacing a response still gets
    # nosniff, Referrer-Policy, HSTS and X-Frame-Options.
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "betting_site.api.middleware.ApiErrorEnvelopeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "betting_site.urls"
WSGI_APPLICATION = "betting_site.wsgi.application"
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Data stores -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so concurrent writers
    # queue on the timeout instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a health check PostgreSQL does not count as a
        # transaction (betting_site/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "betting_site.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "betting_site.postgresql":
        # A database host that drops packets (rather than refusing) costs this
        # long, not the operating system's minutes, before the 503.
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
        )
        # Parameters sent apart from the SQL (the extended protocol), so that
        # psycopg prepares a statement run five times on a connection and
        # PostgreSQL stops parsing and planning it for every bet.
        DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = (
            env.bool("DB_SERVER_SIDE_BINDING", default=True)
        )
DATABASES["default"]["ATOMIC_REQUESTS"] = False  # services own their transactions
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="") or None
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="betting"),
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Passwords, i18n, static -----------------------------------------------------
_VALIDATORS = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{_VALIDATORS}.UserAttributeSimilarityValidator"},
    {"NAME": f"{_VALIDATORS}.MinimumLengthValidator"},
    {"NAME": f"{_VALIDATORS}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATORS}.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Request limits --------------------------------------------------------------
# Bodies under /api/ above this are answered 413 before they are read.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024
)

# --- REST framework and JWT ------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["betting_site.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["betting_site.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "betting_site.api.exceptions.exception_handler",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
}

JWT_ACCESS_TTL = _duration("JWT_ACCESS_TTL", "15m")
JWT_REFRESH_TTL = _duration("JWT_REFRESH_TTL", "7d")
JWT_ISSUER = env.str("JWT_ISSUER", default="betting-api")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="betting-client")
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "VERIFYING_KEY": "",
    "ISSUER": JWT_ISSUER,
    "AUDIENCE": JWT_AUDIENCE,
    "LEEWAY": 0,
    "ACCESS_TOKEN_LIFETIME": JWT_ACCESS_TTL,
    "REFRESH_TOKEN_LIFETIME": JWT_REFRESH_TTL,
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "AUTH_TOKEN_CLASSES": ("rest_framework_simplejwt.tokens.AccessToken",),
}

# --- Provider --------------------------------------------------------------------
EXTERNAL_API_URL = env.str("EXTERNAL_API_URL", default="http://127.0.0.1:8081/api")
EXTERNAL_API_CONNECT_TIMEOUT = env.float("EXTERNAL_API_CONNECT_TIMEOUT", default=3.0)
EXTERNAL_API_READ_TIMEOUT = env.float("EXTERNAL_API_READ_TIMEOUT", default=10.0)
EXTERNAL_USER_ID = env.str("EXTERNAL_USER_ID", default="") or None
EXTERNAL_SECRET_KEY = env.str("EXTERNAL_SECRET_KEY", default="") or None
# How long a successful POST /auth is trusted before the next call re-authenticates.
PROVIDER_SESSION_TTL = env.int("PROVIDER_SESSION_TTL", default=300)
# Reads (auth, balance read, GET /bet, check-balance, health) are retried this many
# times after the first attempt, with capped exponential backoff and full jitter.
PROVIDER_READ_RETRIES = env.int("PROVIDER_READ_RETRIES", default=2)
# Writes (POST /bet, POST /win, set-balance) are retried only when nothing was sent
# (the connection was never made) or on a 429: at most this many times.
PROVIDER_WRITE_RETRIES = env.int("PROVIDER_WRITE_RETRIES", default=2)
PROVIDER_BACKOFF_BASE = env.float("PROVIDER_BACKOFF_BASE", default=0.1)
PROVIDER_BACKOFF_MAX = env.float("PROVIDER_BACKOFF_MAX", default=2.0)
# Longest Retry-After (seconds) waited in-line before giving up as unreachable.
PROVIDER_RETRY_AFTER_MAX = env.float("PROVIDER_RETRY_AFTER_MAX", default=2.0)
# Circuit breaker per provider host: open after this many consecutive transport
# failures or 5xx, stay open this many seconds, then let one probe through.
PROVIDER_BREAKER_THRESHOLD = env.int("PROVIDER_BREAKER_THRESHOLD", default=5)
PROVIDER_BREAKER_RESET = env.float("PROVIDER_BREAKER_RESET", default=30.0)
PROVIDER_STAKE_MODE = env.str("PROVIDER_STAKE_MODE", default="debit_on_loss")
if PROVIDER_STAKE_MODE not in ("debit_on_loss", "debit_on_place"):
    raise ImproperlyConfigured(
        "PROVIDER_STAKE_MODE must be debit_on_loss or debit_on_place"
    )

# --- Betting and wallet ----------------------------------------------------------
BET_MIN_AMOUNT = env.int("BET_MIN_AMOUNT", default=1)
BET_MAX_AMOUNT = env.int("BET_MAX_AMOUNT", default=5)
if not 1 <= BET_MIN_AMOUNT <= BET_MAX_AMOUNT:
    raise ImproperlyConfigured("BET_MIN_AMOUNT must be >= 1 and <= BET_MAX_AMOUNT")
BALANCE_SYNC_TTL = env.int("BALANCE_SYNC_TTL", default=30)
# The per-user provider lease: its lifetime (renewed before every provider call, so
# it only has to outlive one call with its retries) and how long a second operation
# of the same user waits for it before answering 409 BET_IN_PROGRESS.
PROVIDER_LEASE_TTL = env.int("PROVIDER_LEASE_TTL", default=60)
# How long a lease's holder has shown it is alive: its process's keeper thread
# (betting.keeper) moves this forward every LEASE_KEEPER_INTERVAL while it holds
# the lease, so a holder that died (SIGKILL, OOM) frees it this many seconds
# later instead of PROVIDER_LEASE_TTL later. Not below 2 keeper intervals.
PROVIDER_LEASE_ALIVE = env.float("PROVIDER_LEASE_ALIVE", default=4.0)
LEASE_KEEPER_INTERVAL = env.float("LEASE_KEEPER_INTERVAL", default=1.0)
LEASE_KEEPER_THREAD = env.bool("LEASE_KEEPER_THREAD", default=True)
if PROVIDER_LEASE_ALIVE < 2 * LEASE_KEEPER_INTERVAL or LEASE_KEEPER_INTERVAL <= 0:
    raise ImproperlyConfigured(
        "PROVIDER_LEASE_ALIVE must be at least twice LEASE_KEEPER_INTERVAL (> 0)"
    )
BET_LOCK_WAIT = env.float("BET_LOCK_WAIT", default=2.0)
# A POST /bet that timed out may still be processed when it reaches the provider
# late. Its unknown bet (debit_on_place) is decided from the balance only this many
# seconds later; until then a new bet of the user gets 409 with Retry-After.
BET_UNKNOWN_GRACE = env.float(
    "BET_UNKNOWN_GRACE", default=3 * EXTERNAL_API_READ_TIMEOUT
)
if BET_UNKNOWN_GRACE < 0:
    raise ImproperlyConfigured("BET_UNKNOWN_GRACE must not be negative")

# --- Rate limits, CORS, proxies (enforced by the operations issue) ---------------
RATE_LIMIT_GLOBAL = env.str("RATE_LIMIT_GLOBAL", default="100/15m")
RATE_LIMIT_AUTH = env.str("RATE_LIMIT_AUTH", default="10/15m")
RATE_LIMIT_BETS = env.str("RATE_LIMIT_BETS", default="20/1m")
CLIENT_URL = env.list("CLIENT_URL", default=[])
TRUST_PROXY_HEADERS = env.bool("TRUST_PROXY_HEADERS", default=False)

# --- Transport security ----------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
# /api/health/live must answer a load balancer's plain-HTTP probe.
SECURE_REDIRECT_EXEMPT = [r"^api/health/live/?$"]

# --- Logging ---------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
SLOW_REQUEST_SECONDS = env.float("SLOW_REQUEST_SECONDS", default=1.0)
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "betting_site.logging.RequestIdFilter"},
        "unreachable": {"()": "betting_site.logging.UnreachableDatabaseFilter"},
        "redact": {"()": "betting_site.logging.RedactingFilter"},
    },
    "formatters": {
        "json": {"()": "betting_site.logging.JsonFormatter"},
        "console": {
            "format": (
                "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"
            )
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "console",
            "filters": ["request_id", "unreachable", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # Our envelope handlers log every 5xx once, with the request id.
        "django.request": {
            "handlers": ["console"],
            "level": "ERROR",
            "propagate": False,
        },
    },
}

# --- Static files (whitenoise) ---
# gunicorn serves /static/ itself through whitenoise (no separate file server):
# right after SecurityMiddleware, so HTTPS redirects and security headers still
# apply. With DEBUG=0 the files are the hashed, compressed copies `collectstatic`
# wrote to STATIC_ROOT (the Docker image runs it at build time), unless
# STATIC_MANIFEST=0 (the test suite, or a DEBUG=0 run without collectstatic): then
# Django's plain storage is kept and whitenoise finds the files per request.
_WHITENOISE_MIDDLEWARE = "whitenoise.middleware.WhiteNoiseMiddleware"
if _WHITENOISE_MIDDLEWARE not in MIDDLEWARE:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        _WHITENOISE_MIDDLEWARE,
    )
STATIC_MANIFEST = not DEBUG and env.bool("STATIC_MANIFEST", default=True)
if STATIC_MANIFEST:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        },
    }
else:
    WHITENOISE_USE_FINDERS = True
    WHITENOISE_AUTOREFRESH = True


# --- Rate limits (django-ratelimit) ---
# RATE_LIMIT_* above are enforced by betting_site.api.ratelimit.RateLimitMiddleware,
# just inside the envelope middleware; counts live in the default cache (Redis when
# REDIS_URL is set, so all workers share them). django_ratelimit is used as a
# library only (not in INSTALLED_APPS: its system check rejects the local-memory
# cache of development and tests).
MIDDLEWARE.insert(
    MIDDLEWARE.index("betting_site.api.middleware.ApiErrorEnvelopeMiddleware") + 1,
    "betting_site.api.ratelimit.RateLimitMiddleware",
)
RATELIMIT_ENABLE = True
RATELIMIT_USE_CACHE = "default"
RATELIMIT_CACHE_PREFIX = "rl:"
# A cache the library cannot read or write lets the request through (logged).
RATELIMIT_FAIL_OPEN = True


# --- CORS and content security policy ---
# CORS (django-cors-headers): only /api/, only the CLIENT_URL origins, bearer tokens
# rather than cookies (no credentials). CorsMiddleware sits right inside
# RequestIdMiddleware, so it answers a preflight OPTIONS itself (200, with the
# request id) before the envelope, the rate limits or a view can answer 404/405/429,
# and adds its headers to every other /api/ response, errors included.
INSTALLED_APPS += ["corsheaders", "csp"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("betting_site.api.middleware.RequestIdMiddleware") + 1,
    "corsheaders.middleware.CorsMiddleware",
)
CORS_ALLOWED_ORIGINS = [origin.strip().rstrip("/") for origin in CLIENT_URL]
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = ["X-Request-ID", "Retry-After", "Idempotent-Replayed"]
CORS_ALLOW_CREDENTIALS = False
# Content security policy (django-csp 4): one strict policy on every response. The
# admin (Django's and templates/admin/) loads scripts and styles from files only; its
# inline <script> tags are JSON data blocks, which CSP does not execute or block.
MIDDLEWARE.insert(
    MIDDLEWARE.index("corsheaders.middleware.CorsMiddleware") + 1,
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}


# --- OpenAPI (drf-spectacular) ---
# GET /api/schema (YAML, or JSON with ?format=json) and GET /api/docs (Swagger UI
# from drf-spectacular-sidecar's own static files: no CDN, works offline). Both are
# public; shared schema pieces live in betting_site.api.schema.
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "Betting integration API",
    "VERSION": VERSION,
    "DESCRIPTION": (
        "The betting integration server: authentication, bets placed with the "
        "provider, the wallet ledger, staff-only internal provider calls and "
        "health. Every error under /api/ is the ErrorEnvelope, with the request "
        "id also in the X-Request-ID header."
    ),
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The URL patterns take an optional trailing slash; the documented paths
    # are the contract's, without one.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "betting_site.api.schema.strip_trailing_slashes",
        # 405/406/413/429/500 on every operation they can answer.
        "betting_site.api.schema.add_common_error_responses",
    ],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "jwtAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "An access token from POST /api/auth/login.",
            },
            "adminToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The static ADMIN_TOKEN (internal endpoints only).",
            },
        }
    },
    "TAGS": [
        {"name": "auth", "description": "Login, token refresh, logout, profile."},
        {"name": "bets", "description": "Placing and reading the caller's bets."},
        {"name": "wallet", "description": "Balance and the ledger."},
        {"name": "internal", "description": "Staff calls to the provider."},
        {"name": "operations", "description": "Health checks."},
    ],
}


# --- Metrics (Prometheus) ---
# GET /metrics (betting_site.metrics): django-prometheus's request metrics plus the
# domain metrics, in the Prometheus text format. With METRICS_TOKEN set, a scrape
# needs "Authorization: Bearer <METRICS_TOKEN>" (401 otherwise); unset, /metrics is
# open and must stay on the private network (deploy/nginx.conf never forwards it).
# Under gunicorn, PROMETHEUS_MULTIPROC_DIR (an environment variable read by
# prometheus_client itself, not a setting) sums the counters of every worker.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="") or None
# prometheus_client turns multiprocess mode on when the variable merely exists: an
# empty one (a copied .env.example) would write into the working directory, and a
# missing directory would fail the first metric, so it is dropped or created here.
_METRICS_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="").strip()
if not _METRICS_DIR:
    env.ENVIRON.pop("PROMETHEUS_MULTIPROC_DIR", None)
else:
    try:
        Path(_METRICS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR cannot be created: {exc.strerror}"
        ) from None
INSTALLED_APPS += ["django_prometheus"]
# Outermost and innermost, so request latency covers every other middleware and
# the responses of all of them (envelopes, 429s, redirects) are counted.
MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    *MIDDLEWARE,
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]
# Prometheus scrapes each replica over plain HTTP on the private network.
SECURE_REDIRECT_EXEMPT = [*SECURE_REDIRECT_EXEMPT, r"^metrics/?$"]
