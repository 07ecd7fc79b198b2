"""Summarize a py-spy ``--format raw`` profile (collapsed stacks) of the gunicorn
processes: which parts of a request the busy samples fall in, and the functions
that dominate. ``python -m bench.profile_summary FILE`` prints the Markdown."""

import re
import sys
from collections import Counter
from typing import Any

PROJECT = (
    "accounts/",
    "betting/",
    "wallet/",
    "provider/",
    "auditlog/",
    "betting_site/",
)
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>[^()]*?)(?::\d+)?\)$")

# What the CPU was doing: each sample goes to the first of these met walking its
# stack from the innermost frame out (so the shares add up to 100%).
KINDS: list[tuple[str, tuple[str, ...]]] = [
    ("bench counters (bench/instrument.py, measuring only)", ("(bench/",)),
    ("module imports (worker boot after max_requests)", ("importlib._bootstrap",)),
    ("psycopg: sending SQL, reading results", ("(psycopg/", "(psycopg_binary/")),
    ("Django ORM: building queries, making model objects", ("(django/db/models/",)),
    ("Django database backend, transactions", ("(django/db/",)),
    (
        "HTTP client to the provider (requests, urllib3)",
        ("(requests/", "(urllib3/", "(http/client.py", "(socket.py", "(ssl.py"),
    ),
    ("Redis client (cache, breaker, provider sessions)", ("(redis/", "(django_redis/")),
    ("JWT", ("(jwt/", "(rest_framework_simplejwt/")),
    ("JSON encoding/decoding", ("(json/", "(simplejson/")),
    ("logging", ("(logging/",)),
    ("metrics (prometheus)", ("(prometheus_client/", "(django_prometheus/")),
    ("DRF", ("(rest_framework/",)),
    ("Django request handling, middleware, URLs, utils", ("(django/",)),
    (
        "third-party middleware (cors, csp, whitenoise, ratelimit)",
        ("(corsheaders/", "(csp/", "(whitenoise/", "(django_ratelimit/"),
    ),
    ("project code itself", tuple(f"({prefix}" for prefix in PROJECT)),
    ("gunicorn (HTTP parsing, workers)", ("(gunicorn/",)),
]
# Features of a request: share of samples whose stack passes through the frame.
FEATURES: list[tuple[str, tuple[str, ...]]] = [
    ("POST /api/bets: bet_place", ("bet_place (betting/services/placement.py)",)),
    ("  resolve the previous open bet", ("open_bets_resolve (betting/",)),
    (
        "  claim the lease, hold the stake, record the bet (_bet_record)",
        ("_bet_open_with_lease (betting/", "_bet_open (betting/"),
    ),
    (
        "  save the provider bet id (_bet_record_placed)",
        ("_bet_record_placed (betting/",),
    ),
    ("  book the result (_bet_complete)", ("_bet_complete (betting/",)),
    (
        "  read the provider balance after the result (_provider_balance_read)",
        ("_provider_balance_read (betting/",),
    ),
    ("  provider lease: claim, renew, release", ("(betting/lease.py",)),
    ("provider calls (ProviderClient._execute)", ("ProviderClient._execute (",)),
    (
        "  outbound audit log rows (api_log_record in the client)",
        ("ProviderClient._attempt (provider/client.py);api_log_record (",),
    ),
    ("  circuit breaker (cache reads and writes)", ("(provider/breaker.py",)),
    ("  provider session check (cache)", ("(provider/sessions.py",)),
    ("  signing", ("(provider/signing.py",)),
    (
        "Idempotency-Key claim and store",
        (
            "_claim (betting/idempotency.py",
            "_store (betting/idempotency.py",
            "_finish (betting/idempotency.py",
            "_release (betting/idempotency.py",
        ),
    ),
    (
        "inbound audit log row (InboundApiLogMiddleware._record)",
        ("InboundApiLogMiddleware._record (",),
    ),
    (
        "JWT authentication (token check, user query)",
        ("JWTAuthentication.authenticate (",),
    ),
    (
        "response rendering (BetSerializer, JSON)",
        ("(rest_framework/response.py", "(betting/serializers.py"),
    ),
    ("request log line (RequestLogMiddleware, logging)", ("(logging/__init__.py",)),
]


def _frames(stack: str) -> list[str]:
    frames = []
    for frame in stack.split(";"):
        if frame.startswith(("process ", "thread ")):
            continue
        match = _FRAME.match(frame)
        if match:
            frames.append(f"{match['name']} ({_short(match['path'])})")
        else:
            frames.append(frame)
    return frames


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


# The bench's WSGI wrapper and SQL counter wrap every request: not a cost.
_PASS_THROUGH = ("wrap.<locals>.counted (bench/", "_sql_wrapper (bench/")


def _kind(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in KINDS:
            if any(marker in frame for marker in markers):
                return name
    return "other (standard library, interpreter)"


def summarize(raw: str, top: int = 30) -> dict[str, Any]:
    total = 0
    kinds: Counter[str] = Counter()
    features: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [
            frame for frame in _frames(stack) if not frame.startswith(_PASS_THROUGH)
        ]
        if not frames:
            continue
        total += count
        kinds[_kind(frames)] += count
        text = ";".join(frames)
        for name, markers in FEATURES:
            if any(marker in text for marker in markers):
                features[name] += count
        for frame in set(frames):
            if any(f"({prefix}" in frame for prefix in PROJECT):
                inclusive[frame] += count
        leaves[frames[-1]] += count

    def shares(counter: Counter[str], limit: int) -> list[tuple[str, float]]:
        return [
            (name, round(100 * count / total, 1))
            for name, count in counter.most_common(limit)
        ]

    return {
        "samples": total,
        "kinds": shares(kinds, len(KINDS) + 1),
        "features": [
            (name, round(100 * features[name] / total, 1) if total else 0.0)
            for name, _ in FEATURES
        ],
        "project_functions_inclusive": shares(inclusive, top),
        "leaf_functions": shares(leaves, top),
    }


def markdown(summary: dict[str, Any], *, source: str = "") -> str:
    def table(rows: list[tuple[str, float]], header: str) -> list[str]:
        lines = [f"| {header} | share of samples |", "|---|---|"]
        lines += [f"| `{name}` | {share}% |" for name, share in rows]
        return lines

    out = [
        "# Profile of the gunicorn processes under POST /api/bets",
        "",
        f"py-spy --gil, {summary['samples']} samples of threads holding the GIL "
        "(running Python) across the master and every worker, 97 Hz"
        + (f"; raw collapsed stacks in `{source}` (not committed)" if source else "")
        + ". Shares are of all samples taken while a bets phase ran at 32 clients "
        "(`make bench`'s profile phase).",
        "",
        "## What the CPU was doing (innermost match; adds up to 100%)",
        "",
        *table(summary["kinds"], "kind of work"),
        "",
        "## Features of a request (inclusive: a sample counts in each it is in)",
        "",
        *table(summary["features"], "feature"),
        "",
        "## Project functions, inclusive",
        "",
        *table(summary["project_functions_inclusive"], "function"),
        "",
        "## Leaf functions (where the CPU was when sampled)",
        "",
        *table(summary["leaf_functions"], "function"),
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    with open(sys.argv[1]) as handle:
        print(markdown(summarize(handle.read()), source=sys.argv[1]))
