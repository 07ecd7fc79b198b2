"""The scheduler a deployment runs beside the servers: exactly one of it."""

import logging
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from betting_site.database import (
    describe_database,
    first_line,
    is_unreachable,
    replace_broken_connections,
)
from betting_site.durations import parse_duration

logger = logging.getLogger(__name__)

LOCK_KEY = "run_periodic:lock"


@dataclass
class Task:
    name: str
    every: float
    args: list[str] = field(default_factory=list)
    due: float = 0.0


def _seconds(value: str) -> float:
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Run settle_pending, reconcile and prune_logs on a schedule until stopped "
        "(SIGTERM or Ctrl-C finish the task in progress, then exit). Run exactly one "
        "per deployment: a lock in the shared cache (Redis) makes a second one wait. "
        "A failing task is logged and retried at its next turn; it never stops the "
        "others. reconcile only reports drift unless --reconcile-fix is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("--settle-every", default="1m")
        parser.add_argument("--reconcile-every", default="1h")
        parser.add_argument("--reconcile-fix", action="store_true")
        parser.add_argument("--prune-every", default="1d")
        parser.add_argument("--prune-older-than", default="30d")
        parser.add_argument(
            "--once", action="store_true", help="run each task once, then exit"
        )

    def handle(self, *args, **options):
        reconcile_args = ["--fix"] if options["reconcile_fix"] else []
        tasks = [
            Task("settle_pending", _seconds(options["settle_every"])),
            Task("reconcile", _seconds(options["reconcile_every"]), reconcile_args),
            Task(
                "prune_logs",
                _seconds(options["prune_every"]),
                ["--older-than", options["prune_older_than"]],
            ),
        ]
        stop = threading.Event()
        if not options["once"]:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        holder = uuid.uuid4().hex
        lock_ttl = int(min(task.every for task in tasks) * 3) + 60
        while not self._lock(holder, lock_ttl):
            if options["once"]:
                raise CommandError("Another run_periodic holds the lock", returncode=1)
            self.stdout.write("Another run_periodic is running; waiting for its lock")
            if stop.wait(30):
                return
        failures = 0
        runs = 0
        try:
            while not stop.is_set():
                now = time.monotonic()
                for task in tasks:
                    if stop.is_set() or task.due > now:
                        continue
                    runs += 1
                    failures += not self._run(task)
                    task.due = time.monotonic() + task.every
                    self._lock(holder, lock_ttl, renew=True)
                if options["once"]:
                    break
                stop.wait(max(1.0, min(t.due for t in tasks) - time.monotonic()))
        finally:
            try:
                if cache.get(LOCK_KEY) == holder:
                    cache.delete(LOCK_KEY)
            except Exception:  # the cache is down: the lock expires by itself
                logger.warning("run_periodic: could not free its lock in the cache")
        self.stdout.write(f"run_periodic stopped: {runs} task runs, {failures} failed.")
        if options["once"] and failures:
            raise CommandError(f"{failures} task(s) failed", returncode=1)

    @staticmethod
    def _lock(holder: str, ttl: int, *, renew: bool = False) -> bool:
        """Take (or with ``renew`` extend) the one-scheduler lock. With the cache
        (Redis) down the scheduler runs anyway, warned: every task is safe to run
        beside another scheduler's, and stopping settlement for a cache outage
        would be worse."""
        try:
            if renew:
                cache.set(LOCK_KEY, holder, timeout=ttl)
                return True
            return (
                cache.add(LOCK_KEY, holder, timeout=ttl)
                or cache.get(LOCK_KEY) == holder
            )
        except Exception as exc:
            logger.warning(
                "run_periodic: the cache is unreachable (%s): running without the "
                "one-scheduler lock",
                type(exc).__name__,
            )
            return True

    def _run(self, task: Task) -> bool:
        self.stdout.write(
            f"[{time.strftime('%H:%M:%S')}] {task.name} {' '.join(task.args)}"
        )
        # A connection the database dropped since the last run (a restart) is
        # replaced, not reused: this process outlives many of them.
        replace_broken_connections()
        try:
            call_command(task.name, *task.args, stdout=self.stdout, stderr=self.stderr)
        except CommandError as exc:
            logger.warning("run_periodic: %s ended with: %s", task.name, exc)
            return False
        except Exception as exc:
            if not is_unreachable(exc):
                logger.exception("run_periodic: %s crashed", task.name)
                return False
            # Not a crash: the next run tries again; one line, no traceback.
            logger.warning(
                "run_periodic: %s could not run: the %s is unreachable: %s",
                task.name,
                describe_database(),
                first_line(exc),
            )
            self.stderr.write(
                f"{task.name}: the {describe_database()} is unreachable; "
                "the next run tries again"
            )
            replace_broken_connections()
            return False
        return True
