"""gunicorn settings for the betting server (``gunicorn -c gunicorn.conf.py
betting_site.wsgi``). Every value can be changed through the environment.

Workers are ``gthread``: most of a request's time is spent waiting on the provider
(read timeout 10 s, a bet makes up to 4 calls, each retried), so threads keep a
worker useful while one request waits, and the main thread of each worker keeps
heart-beating to the arbiter however long a request takes.
"""

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    try:  # the CPUs this process may use (a container's cpuset), not the host's
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- Sockets ---------------------------------------------------------------------
# 0.0.0.0 inside a container; GUNICORN_BIND overrides it (e.g. 127.0.0.1:8000).
PORT = _int("PORT", 8000)
bind = [os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{PORT}"]
# Seconds an idle keep-alive connection is held: longer than the balancer's
# upstream keepalive_timeout (60 s in deploy/nginx.conf), so that the balancer
# always closes first and never reuses a connection gunicorn is closing.
keepalive = _int("GUNICORN_KEEPALIVE", 65)

# --- Workers ---------------------------------------------------------------------
worker_class = "gthread"
# The classic 2 x cores + 1, capped at 8: every process holds its own database
# connections (CONN_MAX_AGE) and memory, and threads already multiply concurrency.
workers = _int("WEB_CONCURRENCY", min(2 * _cpu_count() + 1, 8))
threads = _int("GUNICORN_THREADS", 4)
# A worker that does not heart-beat for this long is killed. With gthread the main
# thread beats while request threads wait, and while a stopping worker drains, so
# this catches a wedged process, not a slow request.
timeout = _int("GUNICORN_TIMEOUT", 60)
# On SIGTERM (deploys, max_requests) running requests get this long to finish, so
# a bet is not cut between placing and booking its result. 180 s covers the
# longest bet with the default settings (174 s: the 2 s lease wait, then auth,
# place, result and a balance read, each up to 3 attempts of 3 s connect + 10 s
# read with 2 s between them); `manage.py check --deploy` recomputes it from the
# settings (betting_site.E002). A worker exits as soon as its requests are done:
# this is only the ceiling. Give the container longer before SIGKILL (compose:
# stop_grace_period).
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 180)
# Recycle workers now and then (slow leaks), jittered so they do not all restart
# at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 10000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 1000)
# The heartbeat file in memory: a container's /tmp may be a slow overlay filesystem.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's own heartbeat files, not user data
if os.path.isdir(_SHM):
    worker_tmp_dir = _SHM

# --- Logging ---------------------------------------------------------------------
# One JSON object per line: access log on stdout, gunicorn's own log on stderr.
logger_class = "betting_site.gunicorn_logging.JsonLogger"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# Django logs through its own LOGGING setting; gunicorn must not capture stdout.
capture_output = False

# --- Control socket --------------------------------------------------------------
# gunicorn's runtime control socket (gunicornc) is off: containers are managed by
# their orchestrator, and its default path under $HOME need not be writable.
# GUNICORN_CONTROL_SOCKET=1 turns it on.
control_socket_disable = os.environ.get("GUNICORN_CONTROL_SOCKET", "0") != "1"

# --- Metrics (Prometheus multiprocess mode) --------------------------------------
# With PROMETHEUS_MULTIPROC_DIR set, every worker writes its counters there and a
# scrape of GET /metrics on any worker sums them all. Files of an earlier run would
# be summed too: the arbiter starts from an empty directory.


def _metrics_dir() -> str:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()


def on_starting(server) -> None:
    directory = _metrics_dir()
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def child_exit(server, worker) -> None:
    # A dead worker's counters stay (they are totals); its live gauges go.
    if _metrics_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir())
