"""Bench-only counters inside the server processes.

``bench.wsgi`` wraps the Django application with these counters when
``BENCH_STATS_DIR`` is set. Per kind of request (``POST /api/bets``,
``GET /api/health/live``...) each worker counts requests, wall and thread CPU time,
SQL statements sent through Django (the audit log's ``api_logs`` apart, and by
statement shape), their time, those sent in autocommit mode (each a transaction of
its own at PostgreSQL), transactions (``COMMIT``/``ROLLBACK``; psycopg sends
a ``BEGIN`` before each), connection health checks (Django's
``close_if_health_check_failed``; the project's backend sends nothing for them),
and provider calls (``send`` of the transports in ``provider.transport``,
whichever HTTP library they use) with their time.

Each worker writes its totals to ``BENCH_STATS_DIR/<pid>.json`` at most every
quarter second and when it exits; the bench reads every file before and after a
phase and takes the difference. Nothing here changes what the application does:
it only wraps calls to count and time them.
"""

import contextlib
import json
import os
import re
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

_DUMP_EVERY = 0.25
_local = threading.local()
_lock = threading.Lock()
_totals: dict[str, dict[str, Any]] = {}
_dir: str | None = None
_last_dump = 0.0
_dirty = False
_fingerprints: dict[str, str] = {}

_NUMBER = re.compile(r"/\d+(?=/|$)")
_VERB = re.compile(
    r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|SAVEPOINT|RELEASE SAVEPOINT|"
    r"ROLLBACK TO SAVEPOINT)\b",
    re.IGNORECASE,
)
# Table names quoted (the ORM) or not (the project's hand-written SQL).
_FROM = re.compile(r'\bFROM\s+"?(\w+)"?', re.IGNORECASE)
_TARGET = re.compile(r'^\s*(?:INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', re.I)
_SET = re.compile(r"\bSET\s+(.*?)\s+WHERE\b", re.IGNORECASE | re.DOTALL)
_COLUMN = re.compile(r'(?:^|,)\s*"?(\w+)"?\s*=')
# A data-modifying WITH: each part's verb and table.
_WITH_PART = re.compile(
    r'\b\w+\s+AS\s+\(\s*(INSERT INTO|UPDATE|DELETE FROM)\s+"?(\w+)"?', re.I
)
_FIELDS = (
    "requests",
    "wall",
    "cpu",
    "sql",
    "sql_time",
    "sql_apilog",
    "autocommit_sql",
    "commits",
    "commit_time",
    "rollbacks",
    "health_checks",
    "provider_calls",
    "provider_time",
)


def request_kind(method: str, path: str) -> str:
    """``POST /api/bets``, ``GET /api/bets/result/{id}``: one name per route."""
    path = _NUMBER.sub("/{id}", path.rstrip("/") or "/")
    return f"{method} {path}"


def fingerprint(sql: str) -> str:
    """The statement's shape: verb, table, and for an UPDATE the columns set."""
    known = _fingerprints.get(sql)
    if known is not None:
        return known
    verb_match = _VERB.match(sql)
    verb = verb_match.group(1).upper() if verb_match else sql.split(None, 1)[0].upper()
    if verb.endswith("SAVEPOINT"):
        shape = verb
    elif verb == "WITH" and _WITH_PART.search(sql):
        parts = _WITH_PART.findall(sql)
        shape = "WITH " + ",".join(
            f"{part.split()[0].upper()} {table}" for part, table in parts
        )
    elif verb == "SELECT":
        table = _FROM.search(_outer(sql))
        shape = f"SELECT {table.group(1) if table else '?'}"
        if "COUNT(" in sql.upper():
            shape += " count"
        if " EXISTS" in sql.upper():
            shape += " +exists"
        if sql.rstrip().upper().endswith("FOR UPDATE"):
            shape += " FOR UPDATE"
    else:
        table = _TARGET.match(sql)
        shape = f"{verb.split()[0]} {table.group(1) if table else '?'}"
        if verb == "UPDATE":
            assignments = _SET.search(sql)
            if assignments:
                columns = _COLUMN.findall(assignments.group(1))
                shape += " SET " + ",".join(columns)
    if len(_fingerprints) < 5000:
        _fingerprints[sql] = shape
    return shape


def _outer(sql: str) -> str:
    """The statement without its parenthesized subqueries (``EXISTS(SELECT ...)``),
    so that the table named is the one the statement reads."""
    out, depth, index = [], 0, 0
    while index < len(sql):
        if depth == 0 and sql.startswith("(SELECT", index):
            depth = 1
            index += 1
            continue
        char = sql[index]
        if depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _current() -> dict[str, Any] | None:
    return getattr(_local, "request", None)


def _sql_wrapper(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        current = _current()
        if current is not None:
            current["sql_time"] += time.perf_counter() - started
            shape = fingerprint(sql)
            if " api_logs" in shape:
                current["sql_apilog"] += 1
            else:
                current["sql"] += 1
            current["shapes"][shape] += 1
            if getattr(context.get("connection"), "autocommit", False):
                # Outside any transaction block: PostgreSQL commits it on its own.
                current["autocommit_sql"] += 1


def _count(field: str) -> None:
    current = _current()
    if current is not None:
        current[field] += 1


def install() -> None:
    """Hook the counters into Django's database layer and the provider transports."""
    global _dir
    _dir = os.environ.get("BENCH_STATS_DIR") or None
    if _dir is None:
        return
    os.makedirs(_dir, exist_ok=True)

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.signals import connection_created

    def on_connection(sender, connection, **kwargs):
        if _sql_wrapper not in connection.execute_wrappers:
            connection.execute_wrappers.append(_sql_wrapper)

    connection_created.connect(on_connection, weak=False)

    original_commit = BaseDatabaseWrapper._commit
    original_rollback = BaseDatabaseWrapper._rollback
    original_health = BaseDatabaseWrapper.close_if_health_check_failed

    def _commit(self):
        _count("commits")
        started = time.perf_counter()
        try:
            return original_commit(self)
        finally:
            current = _current()
            if current is not None:
                current["commit_time"] += time.perf_counter() - started

    def _rollback(self):
        _count("rollbacks")
        return original_rollback(self)

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
        ):
            _count("health_checks")
        return original_health(self)

    BaseDatabaseWrapper._commit = _commit
    BaseDatabaseWrapper._rollback = _rollback
    BaseDatabaseWrapper.close_if_health_check_failed = close_if_health_check_failed

    def on_call(method: str, url: str, seconds: float) -> None:
        current = _current()
        if current is not None:
            current["provider_calls"] += 1
            current["provider_time"] += seconds
            current["provider"][f"{method} {urlsplit(url).path}"] += 1

    patch_transports(on_call)
    threading.Thread(target=_flusher, name="bench-stats", daemon=True).start()


def transport_classes() -> list[type]:
    """The provider transports ``provider.transport`` defines (``RequestsTransport``,
    ``Urllib3Transport``...): the one seam every provider call goes through,
    whichever HTTP library is behind it."""
    from provider import transport

    return [
        value
        for name, value in vars(transport).items()
        if isinstance(value, type)
        and name.endswith("Transport")
        and value.__module__ == transport.__name__
        and value is not transport.Transport
        and callable(getattr(value, "send", None))
    ]


def patch_transports(on_call) -> None:
    """Call ``on_call(method, url, seconds)`` after every provider call sent
    through a project transport (the call itself is unchanged)."""
    for cls in transport_classes():
        original = cls.send
        if getattr(original, "_bench_patched", False):
            continue

        def send(self, method, url, *args, _original=original, **kwargs):
            started = time.perf_counter()
            try:
                return _original(self, method, url, *args, **kwargs)
            finally:
                on_call(method, url, time.perf_counter() - started)

        send._bench_patched = True
        cls.send = send


def _flusher() -> None:
    """Write idle workers' last counts too, so a phase's figures are complete a
    moment after it ends."""
    while True:
        time.sleep(_DUMP_EVERY * 2)
        if _dirty:
            flush()


def wrap(application):
    """The WSGI application, counting per request kind."""
    if _dir is None:
        return application

    def counted(environ, start_response):
        kind = request_kind(environ.get("REQUEST_METHOD", "?"), environ["PATH_INFO"])
        current = dict.fromkeys(_FIELDS, 0)
        current["shapes"] = Counter()
        current["provider"] = Counter()
        _local.request = current
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return application(environ, start_response)
        finally:
            current["requests"] = 1
            current["wall"] = time.perf_counter() - started
            current["cpu"] = time.thread_time() - cpu
            _local.request = None
            _add(kind, current)

    return counted


def _add(kind: str, current: dict[str, Any]) -> None:
    global _dirty
    with _lock:
        _dirty = True
        totals = _totals.get(kind)
        if totals is None:
            totals = _totals[kind] = dict.fromkeys(_FIELDS, 0)
            totals["shapes"] = Counter()
            totals["provider"] = Counter()
        for field in _FIELDS:
            totals[field] += current[field]
        totals["shapes"].update(current["shapes"])
        totals["provider"].update(current["provider"])
        due = time.monotonic() - _last_dump >= _DUMP_EVERY
    if due:
        flush()


def flush() -> None:
    """Write this process's totals (atomically: a reader never sees half a file)."""
    global _last_dump, _dirty
    if _dir is None:
        return
    with _lock:
        _last_dump = time.monotonic()
        _dirty = False
        data = {
            kind: {**totals, "shapes": dict(totals["shapes"])}
            | {"provider": dict(totals["provider"])}
            for kind, totals in _totals.items()
        }
    path = os.path.join(_dir, f"{os.getpid()}.json")
    temporary = f"{path}.{threading.get_ident()}.tmp"
    with contextlib.suppress(OSError):
        with open(temporary, "w") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)
